// One function per subcommand; each returns the process exit status.
#ifndef VQGPT_CLI_COMMANDS_H
#define VQGPT_CLI_COMMANDS_H

typedef int (*vqgpt_command_fn)(int argc, char **argv);

int cmd_encode(int argc, char **argv);
int cmd_decode(int argc, char **argv);
int cmd_reconstruct(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_train_vqgan(int argc, char **argv);
int cmd_train_gpt(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_train_tokenizer(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);

#endif

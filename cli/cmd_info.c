// `vqgpt info`: what a model file is (kind, shape, storage, card, training state), after
// loading it the way `sample` and the trainers do, so that it doubles as a check of a download.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/models.h"
#include "core/error.h"
#include "stage1_vqgan/vqgan.h"
#include "stage2_transformer/gpt.h"
#include "tokenizer/tokenizer.h"
#include "weights/json.h"
#include "weights/safetensors.h"

#define CMD "info"

// The storage of the parameters: one dtype, or "mixed" with the element share of each.
static void print_storage(const st_file *f) {
  size_t numel[ST_BOOL + 1] = {0}, total = 0, bytes = 0;
  for (size_t i = 0; i < f->n_tensors; i++) {
    numel[f->tensors[i].dtype] += f->tensors[i].numel;
    total += f->tensors[i].numel;
    bytes += f->tensors[i].nbytes;
  }
  printf("  file: %.1f MB, %zu tensors, %zu values (%.1f MB of data):", f->map_size / 1e6,
         f->n_tensors, total, bytes / 1e6);
  for (int t = 0; t <= ST_BOOL; t++) {
    double share = 100.0 * numel[t] / total;
    if (numel[t] && share < 0.1)
      printf(" %s <0.1%%", vqgpt_st_dtype_name((st_dtype)t));
    else if (numel[t])
      printf(" %s %.1f%%", vqgpt_st_dtype_name((st_dtype)t), share);
  }
  printf("\n");
}

// A checkpoint's training state: its step and what it carries beside the model.
static void print_train_state(const st_file *f) {
  const char *state = vqgpt_st_meta(f, "train_state");
  if (!state) {
    printf("  training state: none (a plain model file)\n");
    return;
  }
  json_value *v = vqgpt_json_parse(state, strlen(state));
  int64_t step = -1;
  if (v) vqgpt_json_get_int(v, "step", &step);
  vqgpt_json_free(v);
  bool disc = vqgpt_st_meta(f, "disc_config") != NULL;
  if (step >= 0)
    printf("  training state: checkpoint at step %lld (optimizer state%s)\n", (long long)step,
           disc ? " and discriminator" : "");
  else
    printf("  training state: present but unreadable\n");
}

static void print_vqgan(const vqgan *m) {
  const vqgan_config *c = vqgpt_vqgan_get_config(m);
  printf("  VQGAN: %d codes of %d (%s), downsampling f%d, trained resolution %d px\n", c->n_embed,
         c->embed_dim, c->quantizer == VQGAN_GUMBEL ? "Gumbel quantizer" : "nearest code",
         vqgpt_vqgan_factor(m), c->resolution);
  printf("  channels: ch %d, ch_mult [", c->ch);
  for (int i = 0; i < c->n_levels; i++) printf("%s%d", i ? ", " : "", c->ch_mult[i]);
  printf("], %d res blocks per level, z %d, attention at [", c->num_res_blocks, c->z_channels);
  for (int i = 0; i < c->n_attn; i++) printf("%s%d", i ? ", " : "", c->attn_resolutions[i]);
  printf("], %d -> %d image channels\n", c->in_channels, c->out_ch);
  printf("  codebook fingerprint: %016llx\n", (unsigned long long)vqgpt_vqgan_fingerprint(m));
}

static void print_gpt(const gpt *m) {
  const gpt_config *c = &m->cfg;
  printf("  GPT: %.2fM parameters, %d layers, %d heads, %d wide, block %d, vocabulary %d\n",
         m->n_params / 1e6, c->n_layer, c->n_head, c->n_embd, c->block_size, c->vocab_size);
  int gh, gw;
  if (vqgpt_gpt_trained_grid(c, &gh, &gw) == 0)
    printf("  codes: %d, trained grid %dx%d (larger grids use the sliding window)\n", c->n_codes,
           gh, gw);
  else
    printf("  codes: %d, trained grid unknown\n", c->n_codes);
  if (c->cond == GPT_COND_NONE) printf("  condition: none (start token %d)\n", c->sos_token);
  if (c->cond == GPT_COND_CLASS)
    printf("  condition: class, %d classes%s%s%s\n", c->n_classes,
           c->null_class ? " and a null class (guidance)" : "",
           m->card.class_names ? ", names " : "", m->card.class_names ? m->card.class_names : "");
  if (c->cond == GPT_COND_TEXT) {
    printf("  condition: text, prompts of up to %d tokens, tokenizer of %d pieces (%s)\n",
           c->text_len, c->text_vocab, m->card.tokenizer ? "inside" : "missing");
  }
  if (c->embd_pdrop > 0 || c->resid_pdrop > 0 || c->attn_pdrop > 0)
    printf("  training dropout: embd %g, resid %g, attn %g\n", c->embd_pdrop, c->resid_pdrop,
           c->attn_pdrop);
  printf("  sampling settings: %s\n", m->card.sampling ? m->card.sampling : "none stored");
  printf("  first stage: %s\n", m->card.vqgan ? m->card.vqgan : "not recorded");
}

static void print_tensors(const st_file *f) {
  for (size_t i = 0; i < f->n_tensors; i++) {
    const st_tensor *t = &f->tensors[i];
    printf("  %-40s %-4s [", t->name, vqgpt_st_dtype_name(t->dtype));
    for (int d = 0; d < t->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)t->shape[d]);
    printf("]\n");
  }
}

int cmd_info(int argc, char **argv) {
  const char *in = NULL;
  bool tensors = false;
  cli_opt opts[] = {
      {"in", OPT_STRING, &in, "model or checkpoint (.safetensors), required"},
      {"tensors", OPT_FLAG, &tensors, "also list every tensor with its type and shape"},
  };
  cli_status st =
      cli_parse(CMD, "What a model file is; loads it fully, so a damaged file is an error.", argc,
                argv, opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  if (!cli_require(CMD, "in", in)) return 1;
  st_file f;
  if (vqgpt_st_open(&f, in)) return cli_fail(CMD, "%s", vqgpt_last_error());
  const char *format = vqgpt_st_meta(&f, "format");
  vqgan *vq = NULL;
  gpt *g = NULL;
  int rc = 0;
  // The loaders of the commands that use these files: what they refuse, info refuses.
  if (format && !strcmp(format, "taming-vqgan"))
    rc = (vq = vqgpt_vqgan_load(in)) ? 0 : -1;
  else if (format && !strcmp(format, "taming-gpt"))
    rc = (g = vqgpt_gpt_load(in)) ? 0 : -1;
  if (!rc && g && g->cfg.cond == GPT_COND_TEXT) {
    vqgpt_tokenizer *tok = cli_gpt_tokenizer(g, in);
    if (!tok) rc = -1;
    vqgpt_tokenizer_free(tok);
  }
  if (rc) {
    vqgpt_st_close(&f);
    vqgpt_gpt_free(g);
    return cli_fail(CMD, "%s", vqgpt_last_error());
  }
  printf("%s: %s\n", in, format ? format : "safetensors without a \"format\" (not a vqgpt model)");
  print_storage(&f);
  if (vq) print_vqgan(vq);
  if (g) print_gpt(g);
  if (vq || g) print_train_state(&f);
  if (tensors) print_tensors(&f);
  vqgpt_vqgan_free(vq);
  vqgpt_gpt_free(g);
  vqgpt_st_close(&f);
  return 0;
}

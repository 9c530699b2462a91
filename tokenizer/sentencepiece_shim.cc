// The only C++ in vqgpt: SentencePiece's processor and trainer behind the C functions of
// sentencepiece_shim.h. Each entry point catches every exception (SentencePiece reports
// errors as util::Status, but std::bad_alloc and friends can still escape it).
#include "tokenizer/sentencepiece_shim.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <unordered_map>
#include <vector>

extern "C" {
#include "core/error.h"
}

struct tokenizer_spm {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

// SentencePiece's messages start with the source location and the failed check
// ("./src/x.cc(660) [a == b] Vocabulary size too high ..."): keep the sentence after it, or
// say `otherwise` when there is none.
std::string readable(const sentencepiece::util::Status &status, const char *otherwise) {
  std::string m = status.message();
  size_t check = m.find(") [");
  if (check != std::string::npos) {
    size_t end = m.find("] ", check);
    m = end == std::string::npos ? "" : m.substr(end + 2);
  }
  return m.find_first_not_of(' ') == std::string::npos ? otherwise : m;
}

int fail(const char *source, const std::string &what) {
  return vqgpt_file_error(source, false, "%s", what.c_str());
}

int fail_exception(const char *source) {
  try {
    throw;
  } catch (const std::bad_alloc &) {
    return fail(source, "out of memory");
  } catch (const std::exception &e) {
    return fail(source, std::string("SentencePiece failed: ") + e.what());
  } catch (...) {
    return fail(source, "SentencePiece failed");
  }
}

// Feeds the trainer lines the C side has already read and checked.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  LineIterator(const char *const *lines, size_t n) : lines_(lines), n_(n) { load(); }
  bool done() const override { return i_ >= n_; }
  void Next() override {
    i_++;
    load();
  }
  const std::string &value() const override { return value_; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  void load() {
    if (i_ < n_) value_ = lines_[i_];
  }
  const char *const *lines_;
  size_t n_, i_ = 0;
  std::string value_;
};

}  // namespace

extern "C" tokenizer_spm *vqgpt_tokenizer_spm_load(const void *data, size_t n, const char *source,
                                                   tokenizer_spm_info *info) {
  tokenizer_spm *sp = nullptr;
  try {
    sp = new tokenizer_spm;
    auto status = sp->processor.LoadFromSerializedProto(
        absl::string_view(static_cast<const char *>(data), n));
    if (!status.ok()) {
      fail(source, "not a SentencePiece model: " + readable(status, "malformed"));
      delete sp;
      return nullptr;
    }
    info->vocab_size = sp->processor.GetPieceSize();
    info->pad_id = sp->processor.pad_id();
    info->unk_id = sp->processor.unk_id();
    info->bos_id = sp->processor.bos_id();
    info->eos_id = sp->processor.eos_id();
    return sp;
  } catch (...) {
    delete sp;
    fail_exception(source);
    return nullptr;
  }
}

extern "C" void vqgpt_tokenizer_spm_free(tokenizer_spm *sp) { delete sp; }

extern "C" int vqgpt_tokenizer_spm_encode(const tokenizer_spm *sp, const char *text, size_t n,
                                          int32_t *ids, int max_ids, int *n_ids) {
  try {
    std::vector<int> out;
    auto status = sp->processor.Encode(absl::string_view(text, n), &out);
    if (!status.ok())
      return vqgpt_error("cannot tokenize the prompt: %s",
                         readable(status, "internal error").c_str());
    *n_ids = static_cast<int>(out.size());
    for (size_t i = 0; i < out.size() && i < static_cast<size_t>(max_ids); i++) ids[i] = out[i];
    return 0;
  } catch (...) {
    return fail_exception("tokenizer");
  }
}

extern "C" char *vqgpt_tokenizer_spm_decode(const tokenizer_spm *sp, const int32_t *ids, int n) {
  try {
    std::vector<int> in(ids, ids + n);
    std::string text;
    auto status = sp->processor.Decode(in, &text);
    if (!status.ok()) {
      vqgpt_error("cannot decode token ids: %s", readable(status, "internal error").c_str());
      return nullptr;
    }
    char *out = static_cast<char *>(std::malloc(text.size() + 1));
    if (!out) {
      vqgpt_error("out of memory");
      return nullptr;
    }
    std::memcpy(out, text.c_str(), text.size() + 1);
    return out;
  } catch (...) {
    fail_exception("tokenizer");
    return nullptr;
  }
}

extern "C" int vqgpt_tokenizer_spm_train(const char *const *lines, size_t n_lines, int vocab_size,
                                         int max_line_bytes, const char *source, void **model,
                                         size_t *n) {
  *model = nullptr;
  *n = 0;
  try {
    // BPE: it reaches the requested vocabulary exactly or says which size the text allows.
    // One thread and no sentence sampling: the same text gives the same model, byte for byte.
    // nmt_nfkc_cf folds case, so "A Red Bag" and "a red bag" are the same prompt.
    const std::unordered_map<std::string, std::string> options = {
        {"model_type", "bpe"},
        {"vocab_size", std::to_string(vocab_size)},
        {"normalization_rule_name", "nmt_nfkc_cf"},
        {"character_coverage", "1.0"},
        {"pad_id", "0"},
        {"unk_id", "1"},
        {"bos_id", "2"},
        {"eos_id", "3"},
        {"num_threads", "1"},
        {"input_sentence_size", "0"},
        {"shuffle_input_sentence", "false"},
        {"max_sentence_length", std::to_string(max_line_bytes)},
        {"minloglevel", "3"},  // prints nothing (below FATAL): errors come back as a status
    };
    LineIterator it(lines, n_lines);
    std::string proto;
    auto status = sentencepiece::SentencePieceTrainer::Train(options, &it, &proto);
    if (!status.ok())
      return fail(source, "cannot train a tokenizer: " + readable(status, "internal error"));
    *model = std::malloc(proto.size() ? proto.size() : 1);
    if (!*model) return fail(source, "out of memory");
    std::memcpy(*model, proto.data(), proto.size());
    *n = proto.size();
    return 0;
  } catch (...) {
    return fail_exception(source);
  }
}

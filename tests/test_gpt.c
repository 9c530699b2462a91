// The GPT against the reference fixtures (gpt_tiny): logits, loss, every parameter gradient,
// greedy continuation through the KV cache; KV-cache logits against the full forward;
// save/load round trip (F32, F16, BF16); initialisation; a finite-difference check of the
// whole model with dropout on; bad inputs.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/blas.h"
#include "core/error.h"
#include "core/rng.h"
#include "sampling/sampler.h"
#include "stage2_transformer/gpt.h"
#include "test_util.h"
#include "weights/safetensors.h"

#define NB 2
#define NT 33

static void test_parity(void) {
  gpt *m = vqgpt_gpt_load(fixture_path("gpt_tiny.safetensors"));
  CHECKF(m != NULL, "vqgpt_gpt_load: %s", vqgpt_last_error());
  if (!m) return;
  st_file io;
  if (vqgpt_st_open(&io, fixture_path("gpt_tiny_io.safetensors"))) {
    CHECKF(0, "vqgpt_st_open: %s", vqgpt_last_error());
    vqgpt_gpt_free(m);
    return;
  }
  const gpt_config *c = &m->cfg;
  CHECK(c->vocab_size == 80 && c->block_size == 33 && c->n_layer == 2 && c->n_head == 4 &&
        c->n_embd == 32 && c->cond == GPT_COND_NONE && c->sos_token == 0 && c->n_codes == 80);
  int V = c->vocab_size, T = NT - 1;
  int32_t idx[NB * NT], greedy[NB * NT], in[NB * (NT - 1)], tgt[NB * (NT - 1)];
  int64_t sh_idx[2] = {NB, NT}, sh_logits[3] = {NB, NT - 1, 80}, sh_loss[1] = {1};
  float *ref_logits = malloc(sizeof(float) * NB * T * V), ref_loss;
  CHECK(vqgpt_st_read_i32(&io, "idx", idx, 2, sh_idx) == 0);
  CHECK(vqgpt_st_read_i32(&io, "greedy", greedy, 2, sh_idx) == 0);
  CHECK(vqgpt_st_read_f32(&io, "logits", ref_logits, 3, sh_logits) == 0);
  CHECK(vqgpt_st_read_f32(&io, "loss", &ref_loss, 1, sh_loss) == 0);
  for (int b = 0; b < NB; b++)
    for (int t = 0; t < T; t++) {
      in[b * T + t] = idx[b * NT + t];
      tgt[b * T + t] = idx[b * NT + t + 1];
    }

  CHECKF(vqgpt_gpt_forward(m, in, tgt, NB, T, false, 0, 0) == 0, "forward: %s", vqgpt_last_error());
  CHECK_CLOSE(m->a.logits, ref_logits, (size_t)NB * T * V, 1e-4, "logits");
  CHECK_CLOSE(&m->loss, &ref_loss, 1, 1e-4, "loss");
  CHECKF(vqgpt_gpt_backward(m) == 0, "backward: %s", vqgpt_last_error());
  int n_grads = 0;
  char name[128];
  for (size_t i = 0; i < m->n_tensors; i++) {
    const gpt_tensor_info *t = &m->tensors[i];
    float *ref = malloc(t->numel * sizeof(float));
    snprintf(name, sizeof name, "grad.%s", t->name);
    if (vqgpt_st_read_f32(&io, name, ref, t->ndim, t->shape) == 0) {
      CHECK_CLOSE(m->grads + t->offset, ref, t->numel, 1e-3, name);
      n_grads++;
    } else {
      CHECKF(0, "%s", vqgpt_last_error());
    }
    free(ref);
  }
  CHECK(n_grads == 37);

  // KV cache: step-by-step logits match the full forward (no targets this time).
  CHECK(vqgpt_gpt_forward(m, in, NULL, NB, T, false, 0, 0) == 0);
  gpt_kv kv;
  CHECK(vqgpt_gpt_kv_init(&kv, m, NB) == 0);
  float *step_logits = malloc(sizeof(float) * NB * V), worst = 0, maxref = 0;
  for (int t = 0; t < T; t++) {
    int32_t tok[NB] = {in[t], in[T + t]};
    CHECK(vqgpt_gpt_step(m, &kv, tok, step_logits) == 0);
    for (int b = 0; b < NB; b++)
      for (int v = 0; v < V; v++) {
        float r = m->a.logits[((size_t)b * T + t) * V + v];
        worst = fmaxf(worst, fabsf(step_logits[b * V + v] - r));
        maxref = fmaxf(maxref, fabsf(r));
      }
  }
  CHECKF(worst / maxref < 1e-5, "KV-cache logits differ from the full forward: %g", worst / maxref);
  // A batched prefill of every prefix length gives the full forward's logits at its last
  // position, and leaves a cache that incremental steps continue correctly.
  for (int Tp = 1; Tp <= T; Tp += 7) {
    int32_t pre[NB * T];
    for (int b = 0; b < NB; b++) memcpy(pre + b * Tp, in + b * T, Tp * sizeof(int32_t));
    CHECK(vqgpt_gpt_prefill(m, &kv, pre, Tp, step_logits) == 0);
    worst = 0;
    for (int b = 0; b < NB; b++)
      for (int v = 0; v < V; v++)
        worst = fmaxf(
            worst, fabsf(step_logits[b * V + v] - m->a.logits[((size_t)b * T + Tp - 1) * V + v]));
    CHECKF(worst / maxref < 1e-5, "prefill of %d: logits differ by %g", Tp, worst / maxref);
    if (Tp < T) {
      int32_t tok[NB] = {in[Tp], in[T + Tp]};
      CHECK(vqgpt_gpt_step(m, &kv, tok, step_logits) == 0);
      worst = 0;
      for (int b = 0; b < NB; b++)
        for (int v = 0; v < V; v++)
          worst = fmaxf(worst,
                        fabsf(step_logits[b * V + v] - m->a.logits[((size_t)b * T + Tp) * V + v]));
      CHECKF(worst / maxref < 1e-5, "step after prefill of %d: logits differ by %g", Tp,
             worst / maxref);
    }
  }
  CHECK(vqgpt_gpt_prefill(m, &kv, in, T + 2, step_logits) != 0);
  vqgpt_gpt_kv_free(&kv);

  // Greedy continuation through the KV-cached sampler matches the reference exactly.
  sampling_params sp;
  vqgpt_sampling_params_default(&sp);
  sp.greedy = true;
  int32_t cond[NB] = {idx[0], idx[NT]}, out[NB * (NT - 1)];
  sampler_job job;
  vqgpt_sampler_job_sequence(&job, m, NB, cond, NT - 1);
  job.sp = sp;
  CHECKF(vqgpt_sampler_run(m, &job, out, NULL, NULL) == 0, "sampler: %s", vqgpt_last_error());
  int mismatches = 0;
  for (int b = 0; b < NB; b++)
    for (int t = 0; t < NT - 1; t++) mismatches += out[b * (NT - 1) + t] != greedy[b * NT + t + 1];
  CHECKF(mismatches == 0, "greedy continuation: %d tokens differ", mismatches);
  CHECK(greedy[0] == idx[0]);
  // One position more than the block size can hold is a clear error.
  job.grid_w = job.window_w = NT + 1;
  CHECK(vqgpt_sampler_run(m, &job, out, NULL, NULL) != 0);
  CHECK(strstr(vqgpt_last_error(), "block_size") != NULL);

  free(step_logits);
  free(ref_logits);
  vqgpt_st_close(&io);
  vqgpt_gpt_free(m);
}

// F32 -> F16 / BF16 bits, round to nearest even (finite inputs in range).
static uint16_t to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  int e = (int)((x >> 23) & 0xff) - 127 + 15;
  uint32_t mant = x & 0x7fffff;
  if (e <= 0) {  // subnormal half
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000;
    int shift = 14 - e;
    uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t h = sign | ((uint32_t)e << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return (uint16_t)h;
}
static float from_f16(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v = e == 0 ? ldexpf((float)mant, -24) : ldexpf((float)(mant | 0x400), (int)e - 25);
  uint32_t x;
  memcpy(&x, &v, 4);
  x |= sign;
  memcpy(&v, &x, 4);
  return v;
}
static uint16_t to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  x += 0x7fff + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}
static float from_bf16(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  float v;
  memcpy(&v, &x, 4);
  return v;
}

static void test_save_load(void) {
  gpt_config cfg = {.vocab_size = 30,
                    .block_size = 10,
                    .n_layer = 2,
                    .n_head = 2,
                    .n_embd = 8,
                    .cond = GPT_COND_CLASS,
                    .n_classes = 5,
                    .grid_h = 3,
                    .grid_w = 3};
  vqgpt_gpt_config_defaults(&cfg);
  uint64_t rng = 7;
  gpt *m = vqgpt_gpt_create(&cfg, &rng);
  CHECK(m != NULL);
  if (!m) return;
  // reference initialisation
  const gpt_tensor_info *hw = vqgpt_gpt_find_tensor(m, "head.weight"),
                        *pe = vqgpt_gpt_find_tensor(m, "pos_emb"),
                        *lw = vqgpt_gpt_find_tensor(m, "blocks.1.ln2.weight"),
                        *qb = vqgpt_gpt_find_tensor(m, "blocks.0.attn.query.bias");
  CHECK(hw && pe && lw && qb && vqgpt_gpt_find_tensor(m, "blocks.1.attn.mask") == NULL);
  if (hw && pe && lw && qb) {
    double s2 = 0;
    for (size_t i = 0; i < hw->numel; i++)
      s2 += m->params[hw->offset + i] * m->params[hw->offset + i];
    CHECKF(fabs(sqrt(s2 / hw->numel) - 0.02) < 0.003, "head init std %g", sqrt(s2 / hw->numel));
    int ok = 1;
    for (size_t i = 0; i < pe->numel; i++) ok &= m->params[pe->offset + i] == 0.0f;
    for (size_t i = 0; i < lw->numel; i++) ok &= m->params[lw->offset + i] == 1.0f;
    for (size_t i = 0; i < qb->numel; i++) ok &= m->params[qb->offset + i] == 0.0f;
    CHECK(ok);
    CHECK(hw->decay && !pe->decay && !lw->decay && !qb->decay &&
          vqgpt_gpt_find_tensor(m, "blocks.0.mlp.2.weight")->decay &&
          !vqgpt_gpt_find_tensor(m, "tok_emb.weight")->decay);
  }
  char path[64];
  snprintf(path, sizeof path, "/tmp/vqgpt_test_gpt_%d.safetensors", (int)getpid());
  CHECKF(vqgpt_gpt_save(m, path) == 0, "vqgpt_gpt_save: %s", vqgpt_last_error());
  gpt *r = vqgpt_gpt_load(path);
  CHECKF(r != NULL, "vqgpt_gpt_load: %s", vqgpt_last_error());
  if (r) {
    CHECK(r->n_params == m->n_params && memcmp(r->params, m->params, m->n_params * 4) == 0);
    CHECK(r->cfg.cond == GPT_COND_CLASS && r->cfg.n_classes == 5 && r->cfg.grid_h == 3 &&
          r->cfg.grid_w == 3 && r->cfg.n_codes == 30);
    vqgpt_gpt_free(r);
  }
  // Half-precision files load, converted to float.
  for (int kind = 0; kind < 2; kind++) {
    st_writer *w = vqgpt_st_writer_new();
    uint16_t *half = malloc(m->n_params * 2);
    for (size_t i = 0; i < m->n_params; i++)
      half[i] = kind ? to_bf16(m->params[i]) : to_f16(m->params[i]);
    char *json = vqgpt_gpt_config_to_json(&m->cfg);
    vqgpt_st_writer_meta(w, "format", "taming-gpt");
    vqgpt_st_writer_meta(w, "config", json);
    for (size_t i = 0; i < m->n_tensors; i++) {
      const gpt_tensor_info *t = &m->tensors[i];
      vqgpt_st_writer_add(w, t->name, kind ? ST_BF16 : ST_F16, t->ndim, t->shape, half + t->offset);
    }
    int64_t mask_shape[4] = {1, 1, 10, 10};
    static float mask[100];
    vqgpt_st_writer_add(w, "blocks.0.attn.mask", ST_F32, 4, mask_shape, mask);  // a buffer, ignored
    CHECKF(vqgpt_st_writer_save(w, path) == 0, "save half: %s", vqgpt_last_error());
    vqgpt_st_writer_free(w);
    r = vqgpt_gpt_load(path);
    CHECKF(r != NULL, "load %s: %s", kind ? "BF16" : "F16", vqgpt_last_error());
    if (r) {
      int ok = 1;
      for (size_t i = 0; i < m->n_params; i++)
        ok &= r->params[i] == (kind ? from_bf16(half[i]) : from_f16(half[i]));
      CHECKF(ok, "%s values", kind ? "BF16" : "F16");
      vqgpt_gpt_free(r);
    }
    free(json);
    free(half);
  }
  unlink(path);
  vqgpt_gpt_free(m);
}

// Whole-model gradient with every dropout on, against central differences.
typedef struct {
  gpt *m;
  int32_t *in, *tgt;
  int B, T;
} model_ctx;
static double model_loss(void *p) {
  model_ctx *c = p;
  vqgpt_gpt_forward(c->m, c->in, c->tgt, c->B, c->T, true, 99, 0);
  return c->m->loss;
}

static void test_model_fd(void) {
  gpt_config cfg = {.vocab_size = 13,
                    .block_size = 7,
                    .n_layer = 2,
                    .n_head = 2,
                    .n_embd = 8,
                    .embd_pdrop = 0.1f,
                    .resid_pdrop = 0.1f,
                    .attn_pdrop = 0.1f};
  vqgpt_gpt_config_defaults(&cfg);
  uint64_t rng = 3;
  gpt *m = vqgpt_gpt_create(&cfg, &rng);
  CHECK(m != NULL);
  if (!m) return;
  // Larger weights than the 0.02 init make every path matter to the loss.
  for (size_t i = 0; i < m->n_params; i++) m->params[i] += 0.3f * vqgpt_rng_normal(&rng);
  int B = 2, T = 6;
  int32_t in[12], tgt[12];
  for (int i = 0; i < 12; i++) {
    in[i] = (int32_t)vqgpt_rng_below(&rng, 13);
    tgt[i] = i % 6 == 0 ? -1 : (int32_t)vqgpt_rng_below(&rng, 13);
  }
  model_ctx c = {m, in, tgt, B, T};
  model_loss(&c);
  CHECK(vqgpt_gpt_alloc_grads(m) == 0);
  vqgpt_gpt_zero_grad(m);
  CHECK(vqgpt_gpt_backward(m) == 0);
  float *grads = malloc(m->n_params * 4);
  memcpy(grads, m->grads, m->n_params * 4);
  double e = fd_check(model_loss, &c, m->params, grads, m->n_params, 400, 1e-2f);
  CHECKF(e < 2e-2, "whole-model gradient with dropout: %g", e);
  // Dropout really is on in training mode and off otherwise.
  vqgpt_gpt_forward(m, in, tgt, B, T, true, 99, 0);
  float l_train = m->loss;
  vqgpt_gpt_forward(m, in, tgt, B, T, false, 99, 0);
  CHECK(l_train != m->loss);
  free(grads);
  vqgpt_gpt_free(m);
}

static void test_bad_inputs(void) {
  CHECK(vqgpt_gpt_load(fixture_path("vqgan_tiny.safetensors")) == NULL);
  CHECK(strstr(vqgpt_last_error(), "not a GPT") != NULL);
  CHECK(vqgpt_gpt_load("/nonexistent/g.safetensors") == NULL);
  gpt_config cfg;
  CHECK(vqgpt_gpt_config_parse(
            &cfg, "{\"vocab_size\":10,\"block_size\":4,\"n_layer\":1,\"n_head\":3,\"n_embd\":8}",
            "x") != 0);
  CHECK(strstr(vqgpt_last_error(), "n_head") != NULL);
  CHECK(vqgpt_gpt_config_parse(
            &cfg, "{\"vocab_size\":10,\"block_size\":4,\"n_layer\":1,\"n_head\":2}", "x") != 0);
  CHECK(vqgpt_gpt_config_parse(&cfg,
                               "{\"vocab_size\":10,\"block_size\":4,\"n_layer\":1,\"n_head\":2,\"n_"
                               "embd\":8,\"cond\":\"class\"}",
                               "x") != 0);
  CHECK(vqgpt_gpt_config_parse(&cfg,
                               "{\"vocab_size\":10,\"block_size\":4,\"n_layer\":1,\"n_head\":2,\"n_"
                               "embd\":8,\"sos_token\":10}",
                               "x") != 0);
  CHECK(vqgpt_gpt_config_parse(&cfg,
                               "{\"vocab_size\":10,\"block_size\":4,\"n_layer\":1,\"n_head\":2,\"n_"
                               "embd\":8,\"cond\":\"class\",\"n_classes\":3,\"grid\":[2,2]}",
                               "x") == 0);
  CHECK(cfg.cond == GPT_COND_CLASS && cfg.n_classes == 3 && cfg.grid_h == 2 && cfg.n_codes == 10);
  uint64_t rng = 1;
  gpt *m = vqgpt_gpt_create(&cfg, &rng);
  CHECK(m != NULL);
  if (!m) return;
  int32_t bad[2] = {3, 10}, ok[2] = {3, 4};
  CHECK(vqgpt_gpt_forward(m, bad, NULL, 1, 2, false, 0, 0) != 0);
  CHECK(vqgpt_gpt_forward(m, ok, NULL, 1, 5, false, 0, 0) != 0);  // T > block_size
  CHECK(vqgpt_gpt_backward(m) != 0);                              // no loss yet
  gpt_kv kv;
  CHECK(vqgpt_gpt_kv_init(&kv, m, 1) == 0);
  float logits[10];
  for (int i = 0; i < 4; i++) CHECK(vqgpt_gpt_step(m, &kv, ok, logits) == 0);
  CHECK(vqgpt_gpt_step(m, &kv, ok, logits) != 0);  // context full
  vqgpt_gpt_kv_free(&kv);
  vqgpt_gpt_free(m);
}

// Greedy tokens of a model through the KV-cached sampler (B sequences of T after cond).
static int greedy_run(const gpt *m, const int32_t *cond, int B, int T, int32_t *out) {
  sampler_job job;
  vqgpt_sampler_job_sequence(&job, m, B, cond, T);
  job.sp.greedy = true;
  return vqgpt_sampler_run(m, &job, out, NULL, NULL);
}

// gpt_tiny saved as F16 and BF16, loaded for sampling (half-precision weights) and as float32:
// the same step logits bit for bit, prefill logits to 1e-5, the same greedy tokens; half the
// weight memory; full forwards, training and saving refused.
static void test_half_weights(void) {
  gpt *m = vqgpt_gpt_load(fixture_path("gpt_tiny.safetensors"));
  if (!m) return;
  const gpt_config *c = &m->cfg;
  int V = c->vocab_size, T = NT - 1;
  gpt *f32_model = vqgpt_gpt_load_for_sampling(fixture_path("gpt_tiny.safetensors"));
  CHECK(f32_model && !f32_model->half_weights);  // a float32 file stays float32
  vqgpt_gpt_free(f32_model);
  char path[64];
  snprintf(path, sizeof path, "/tmp/vqgpt_test_gpt_half_%d.safetensors", (int)getpid());
  for (int kind = 0; kind < 2; kind++) {
    CHECK(vqgpt_gpt_save_as(m, path, kind ? ST_BF16 : ST_F16) == 0);
    gpt *a = vqgpt_gpt_load(path), *h = vqgpt_gpt_load_for_sampling(path);
    CHECKF(a && h, "load: %s", vqgpt_last_error());
    if (!a || !h) {
      vqgpt_gpt_free(a);
      vqgpt_gpt_free(h);
      continue;
    }
    CHECK(h->half_weights && h->half_fmt == (kind ? HALF_BF16 : HALF_F16));
    CHECK(!h->p.qkv_w && !h->p.head_w && !h->p.tok_emb && h->h.fc_w && h->p.ln1_w);
    CHECK(h->n_params == a->n_params && !memcmp(&h->cfg, &a->cfg, sizeof h->cfg));
    gpt_kv ka, kh;
    CHECK(vqgpt_gpt_kv_init(&ka, a, NB) == 0 && vqgpt_gpt_kv_init(&kh, h, NB) == 0);
    float la[NB * 80], lh[NB * 80];
    int32_t tok[NB * NT];
    uint64_t rng = 3;
    for (int i = 0; i < NB * NT; i++) tok[i] = (int32_t)vqgpt_rng_below(&rng, (uint64_t)V);
    int identical = 1;
    for (int t = 0; t < T; t++) {
      int32_t step[NB] = {tok[t], tok[NT + t]};
      CHECK(vqgpt_gpt_step(a, &ka, step, la) == 0 && vqgpt_gpt_step(h, &kh, step, lh) == 0);
      identical &= !memcmp(la, lh, sizeof la);
    }
    CHECKF(identical, "kind %d: half-weight step logits differ from float32's", kind);
    for (int Tp = 1; Tp <= T; Tp += 5) {  // NB * Tp > 16 rows takes the tiled sgemm path
      CHECK(vqgpt_gpt_prefill(a, &ka, tok, Tp, la) == 0 &&
            vqgpt_gpt_prefill(h, &kh, tok, Tp, lh) == 0);
      double e = rel_err(lh, la, (size_t)NB * V);
      CHECKF(e < 1e-5, "kind %d: prefill of %d differs by %g", kind, Tp, e);
    }
    vqgpt_gpt_kv_free(&ka);
    vqgpt_gpt_kv_free(&kh);
    int32_t cond[NB] = {0, 0}, ga[NB * (NT - 1)], gh[NB * (NT - 1)];
    CHECK(greedy_run(a, cond, NB, T, ga) == 0 && greedy_run(h, cond, NB, T, gh) == 0);
    CHECKF(!memcmp(ga, gh, sizeof ga), "kind %d: greedy tokens differ", kind);
    int32_t in[4] = {1, 2, 3, 4};
    CHECK(vqgpt_gpt_forward(h, in, NULL, 1, 4, false, 0, 0) != 0 &&
          strstr(vqgpt_last_error(), "sampling"));
    CHECK(vqgpt_gpt_alloc_grads(h) != 0);
    CHECK(vqgpt_gpt_save(h, path) != 0 && strstr(vqgpt_last_error(), "sampling"));
    vqgpt_gpt_free(a);
    vqgpt_gpt_free(h);
  }
  unlink(path);
  vqgpt_gpt_free(m);
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  test_parity();
  test_half_weights();
  test_save_load();
  test_model_fd();
  test_bad_inputs();
  return test_finish("test_gpt");
}

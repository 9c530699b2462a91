// The reference VQModel constructor parameters, parsed from a file's config metadata.
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "stage1_vqgan/vqgan.h"
#include "weights/json.h"

#define CONFIG_MAX_CHANNELS 65536

static int get_positive(const json_value *obj, const char *key, int *out, const char *source,
                        int max) {
  int64_t v;
  if (!vqgpt_json_get_int(obj, key, &v))
    return vqgpt_error("%s: config: missing integer '%s'", source, key);
  if (v < 1 || v > max)
    return vqgpt_error("%s: config: '%s' = %lld is out of range", source, key, (long long)v);
  *out = (int)v;
  return 0;
}

static int get_int_list(const json_value *obj, const char *key, int *out, int *n, int min_count,
                        const char *source) {
  int64_t v[VQGAN_MAX_LEVELS];
  int count = vqgpt_json_get_int_array(obj, key, v, VQGAN_MAX_LEVELS);
  if (count < min_count)
    return vqgpt_error("%s: config: '%s' must be a list of 1 to %d integers", source, key,
                       VQGAN_MAX_LEVELS);
  for (int i = 0; i < count; i++) {
    if (v[i] < 1 || v[i] > CONFIG_MAX_CHANNELS)
      return vqgpt_error("%s: config: '%s' has an out-of-range entry", source, key);
    out[i] = (int)v[i];
  }
  *n = count;
  return 0;
}

// GroupNorm(32) needs every normalised channel count to be a multiple of 32. Products are
// formed in 64 bits: both factors may be up to CONFIG_MAX_CHANNELS.
static int check_consistent(const vqgan_config *c, const char *source) {
  if (c->ch % 32)
    return vqgpt_error("%s: config: ch = %d is not a multiple of 32 (GroupNorm)", source, c->ch);
  for (int i = 0; i < c->n_levels; i++) {
    int64_t channels = (int64_t)c->ch * c->ch_mult[i];
    if (channels > CONFIG_MAX_CHANNELS)
      return vqgpt_error("%s: config: ch * ch_mult[%d] = %lld channels, more than the %d supported",
                         source, i, (long long)channels, CONFIG_MAX_CHANNELS);
  }
  if (c->n_levels > 1 && (c->resolution >> (c->n_levels - 1)) < 1)
    return vqgpt_error("%s: config: resolution %d is too small for %d levels", source,
                       c->resolution, c->n_levels);
  if (c->double_z)
    return vqgpt_error("%s: config: double_z is true, which a VQGAN's quant_conv cannot take",
                       source);
  return 0;
}

// "quantizer": absent or "nearest" (VectorQuantizer2), or "gumbel" (GumbelQuantize).
static int parse_quantizer(const json_value *root, vqgan_quantizer *q, const char *source) {
  const json_value *v = vqgpt_json_get(root, "quantizer");
  *q = VQGAN_NEAREST;
  if (!v) return 0;
  const char *s = vqgpt_json_get_string(root, "quantizer");
  if (s && strcmp(s, "nearest") == 0) return 0;
  if (s && strcmp(s, "gumbel") == 0) {
    *q = VQGAN_GUMBEL;
    return 0;
  }
  return vqgpt_error("%s: config: 'quantizer' must be \"nearest\" or \"gumbel\"", source);
}

int vqgpt_vqgan_config_parse(vqgan_config *cfg, const char *json, const char *source) {
  memset(cfg, 0, sizeof *cfg);
  if (!json) return vqgpt_error("%s: no 'config' in the metadata", source);
  json_value *root = vqgpt_json_parse(json, strlen(json));
  if (!root) return vqgpt_error("%s: config is not valid JSON (%s)", source, vqgpt_last_error());
  int rc = -1;
  const json_value *dd = vqgpt_json_get(root, "ddconfig");
  if (root->type != JSON_OBJECT || !dd || dd->type != JSON_OBJECT) {
    vqgpt_error("%s: config: expected an object with 'ddconfig'", source);
    goto done;
  }
  if (get_positive(root, "embed_dim", &cfg->embed_dim, source, CONFIG_MAX_CHANNELS) ||
      get_positive(root, "n_embed", &cfg->n_embed, source, 1 << 24) ||
      get_positive(dd, "ch", &cfg->ch, source, CONFIG_MAX_CHANNELS) ||
      get_positive(dd, "out_ch", &cfg->out_ch, source, 64) ||
      get_positive(dd, "in_channels", &cfg->in_channels, source, 64) ||
      get_positive(dd, "z_channels", &cfg->z_channels, source, CONFIG_MAX_CHANNELS) ||
      get_positive(dd, "resolution", &cfg->resolution, source, 1 << 16) ||
      get_int_list(dd, "ch_mult", cfg->ch_mult, &cfg->n_levels, 1, source))
    goto done;
  int64_t nrb;
  if (!vqgpt_json_get_int(dd, "num_res_blocks", &nrb) || nrb < 0 || nrb > 64) {
    vqgpt_error("%s: config: 'num_res_blocks' missing or out of range", source);
    goto done;
  }
  cfg->num_res_blocks = (int)nrb;
  const json_value *attn = vqgpt_json_get(dd, "attn_resolutions");
  if (attn && attn->count > 0 &&
      get_int_list(dd, "attn_resolutions", cfg->attn_resolutions, &cfg->n_attn, 1, source))
    goto done;
  if (!attn || attn->type != JSON_ARRAY) {
    vqgpt_error("%s: config: 'attn_resolutions' must be a list", source);
    goto done;
  }
  vqgpt_json_get_bool(dd, "double_z", &cfg->double_z);
  if (parse_quantizer(root, &cfg->quantizer, source)) goto done;
  rc = check_consistent(cfg, source);
done:
  vqgpt_json_free(root);
  return rc;
}

int vqgpt_vqgan_config_factor(const vqgan_config *cfg) { return 1 << (cfg->n_levels - 1); }

// Multi-head causal self-attention core of minGPT's CausalSelfAttention (the key/query/value
// and output projections are linear layers done by the caller):
//   att[b,h,i,j] = softmax_{j<=i}( q[b,i,h,:] . k[b,j,h,:] / sqrt(hs) ),  hs = C / H
//   out[b,i,h,:] = sum_j dropout(att[b,h,i,j]) v[b,j,h,:]
// Attention dropout draws its mask from vqgpt_rng_hash(seed, index) so backward can regenerate it;
// the index of att[b,h,i,j] is that of the (B, H, T, T) layout with b counted from b0, so a
// data-parallel rank's rows b0.. of a batch get the masks of the whole batch (b0 = 0: alone).
#ifndef VQGPT_CAUSAL_ATTENTION_H
#define VQGPT_CAUSAL_ATTENTION_H

#include <stdint.h>

// qkv: (B, T, 3C), each token's row is [q | k | v], head h at columns h*hs..(h+1)*hs of each.
// out: (B, T, C). att: (B, H, T, T) softmax probabilities before dropout, saved for backward
// (entries above the diagonal are zero). pdrop in [0, 1). scratch: (B, H, T, T) floats, used
// only when pdrop > 0 (may be NULL otherwise).
void vqgpt_causal_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                                    int H, float pdrop, uint64_t seed, int b0, float *scratch);

// dqkv (B, T, 3C) is overwritten (=). scratch: (B, H, T, T) floats.
void vqgpt_causal_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                     const float *att, int B, int T, int C, int H, float pdrop,
                                     uint64_t seed, int b0, float *scratch);

// n new queries of one (sequence, head) at positions start..start+n-1 against that sequence's
// cached keys and values at positions 0..start+n-1 (the new ones included); query i sees keys
// 0..start+i. q: (n, hs) with row stride ldq; k, v: (start+n, hs) contiguous; y: (n, hs) with
// row stride ldy. scratch: n * (start+n) floats. Single-threaded: callers run (sequence, head)
// pairs in parallel.
void vqgpt_causal_attention_extend(float *y, int ldy, const float *q, int ldq, const float *k,
                                   const float *v, int start, int n, int hs, float *scratch);

#endif

// LPIPS with VGG16 as the reference's perceptual loss (taming.modules.losses.lpips.LPIPS, eval
// mode): scaling layer, VGG16 feature slices 1..5 (relu1_2 .. relu5_3), per-pixel unit
// normalisation over channels, squared difference, 1x1 linear heads without bias, spatial mean,
// summed over the five layers. Weights are frozen: the only gradient is to the first input.
#ifndef VQGPT_LPIPS_H
#define VQGPT_LPIPS_H

typedef struct lpips lpips;

// Loads the reference state_dict names (net.slice{1..5}.{i}.weight/bias, lin{0..4}.model.1.weight,
// scaling_layer.shift/scale; F32/F16/BF16, each shape-checked and finite; format taming-lpips;
// no other tensor) and builds for up to B images of
// H x W (both at least 16, so that relu5_3 has a pixel). NULL on error.
lpips *vqgpt_lpips_load(const char *path, int B, int H, int W);
void vqgpt_lpips_free(lpips *m);

// x, y: (B, 3, H, W) in [-1, 1], B at most the built batch. value: (B) the distance of each
// pair (the reference's (B, 1, 1, 1) output). LPIPS is symmetric; x is the input whose gradient
// vqgpt_lpips_backward gives, so what x's branch needs for backward is kept.
int vqgpt_lpips_forward(lpips *m, const float *x, const float *y, int B, float *value);
// Backward of the last vqgpt_lpips_forward: dx (B, 3, H, W) = sum_b dvalue[b] * d value[b] / dx,
// overwritten (=).
int vqgpt_lpips_backward(lpips *m, const float *dvalue, float *dx);

#endif

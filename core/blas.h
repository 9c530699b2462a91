// The one place that talks to OpenBLAS: sgemm with the library's row-major convention,
// and the start-up step that makes OpenBLAS pick its fastest kernels.
#ifndef VQGPT_BLAS_H
#define VQGPT_BLAS_H

#include <stdbool.h>

// OpenBLAS reads OPENBLAS_CORETYPE once, when it is loaded, and on AVX-512 machines its
// auto-detection settles on the Haswell (AVX2) kernels, about half the speed of SkylakeX.
// Call first thing in main(): unless OPENBLAS_CORETYPE already names the wanted core
// (VQGPT_BLAS_CORETYPE if set, else SkylakeX on AVX-512 CPUs) and OMP_WAIT_POLICY is set, it
// sets them (the latter to PASSIVE) and re-executes the program so the loader and the OpenMP
// runtime see them. Returns only if no re-exec happened.
void vqgpt_blas_setup(char **argv);

// The core type OpenBLAS chose, for benchmarks and diagnostics.
const char *vqgpt_blas_corename(void);

// C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C, all row-major.
void vqgpt_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc);

#endif

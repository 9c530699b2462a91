// The one place that talks to OpenBLAS: sgemm with the library's row-major convention.
// OpenBLAS is loaded with dlopen at first use, after choosing its core type, so no program
// needs a start-up step or a re-execution to get the fast kernels.
#ifndef VQGPT_BLAS_H
#define VQGPT_BLAS_H

#include <stdbool.h>

// The core type OpenBLAS is loaded with (OPENBLAS_CORETYPE, set only while it loads), or
// NULL for OpenBLAS's own detection. In order: `project` (VQGPT_BLAS_CORETYPE) if set; else
// `user` (OPENBLAS_CORETYPE) if set, except Haswell on an AVX-512 CPU, the blanket value
// machine images export, which OpenBLAS's own detection also picks there at half the speed;
// else SkylakeX on AVX-512 CPUs.
const char *vqgpt_blas_choose_coretype(const char *project, const char *user, bool avx512);

// Loads OpenBLAS now rather than at the first product (argv is unused: kept for programs
// written for the re-executing version). Optional; never re-executes anything.
void vqgpt_blas_setup(char **argv);

// The core type OpenBLAS chose, for benchmarks and diagnostics.
const char *vqgpt_blas_corename(void);

// C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C, all row-major.
void vqgpt_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc);
// The same with plain loops: what vqgpt_sgemm falls back to when libopenblas cannot be loaded.
void vqgpt_sgemm_builtin(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                         const float *A, int lda, const float *B, int ldb, float beta, float *C,
                         int ldc);

#endif

// Data-parallel training across processes: the few MPI calls the trainers need, behind one
// interface. Built with MPI (CMake found it: VQGPT_HAVE_MPI) and started by a launcher
// (`mpirun -np N vqgpt ...`), the processes ("ranks") form one job; otherwise, or without
// vqgpt_dist_init, there is one rank and every call below is a no-op, so single-process code needs
// no #ifdef. MPI errors end the whole job (MPI's default error handler), so the calls return
// nothing.
#ifndef VQGPT_DIST_H
#define VQGPT_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Joins the job when the process was started by an MPI launcher; call once, early in main()
// (after anything that may re-execute the program). A plain run stays a single process.
// Fails (one line in vqgpt_last_error()) when a launcher started several processes but the
// build has no MPI: they would each train alone and overwrite each other's output.
int vqgpt_dist_init(int *argc, char ***argv);
// Leaves the job: with several ranks, a non-zero status aborts every rank (a rank that failed
// alone must not leave the others waiting in a collective call). No-op for one rank.
void vqgpt_dist_finalize(int status);
// True when this build can run data-parallel (linked with MPI).
bool vqgpt_dist_available(void);
int vqgpt_dist_rank(void);  // 0 .. vqgpt_dist_size() - 1
int vqgpt_dist_size(void);  // 1 without a launcher

// In place: x (n) becomes the sum over the ranks of every rank's x.
void vqgpt_dist_allreduce_sum_f32(float *x, size_t n);
void vqgpt_dist_allreduce_sum_f64(double *x, size_t n);
void vqgpt_dist_allreduce_sum_i64(int64_t *x, size_t n);
// all (vqgpt_dist_size(), n): rank r's `mine` (n) lands in row r on every rank.
void vqgpt_dist_allgather_f32(const float *mine, float *all, size_t n);
// buf (bytes) of rank `root` is copied to every rank.
void vqgpt_dist_bcast(void *buf, size_t bytes, int root);
// Waits until every rank has arrived, sleeping rather than spinning (a rank may wait here for
// minutes while rank 0 does work the others reuse).
void vqgpt_dist_barrier(void);

#endif

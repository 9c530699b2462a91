#include "core/dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/error.h"

// Started by a launcher: Open MPI's mpirun, or a PMI/PMIx one (MPICH's hydra, Slurm's srun).
static const char *launcher_size(void) {
  const char *n = getenv("OMPI_COMM_WORLD_SIZE");
  if (!n) n = getenv("PMI_SIZE");
  return n;
}

#ifdef VQGPT_HAVE_MPI
#include <mpi.h>

static bool joined;  // MPI_Init ran: the process belongs to a job (of one rank or more)
static int my_rank, n_ranks = 1;

int vqgpt_dist_init(int *argc, char ***argv) {
  if (joined || !(launcher_size() || getenv("PMIX_RANK"))) return 0;
  // Only the main thread calls MPI; OpenMP threads never do.
  int provided;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  joined = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
  return 0;
}

void vqgpt_dist_finalize(int status) {
  if (!joined) return;
  joined = false;
  if (status != 0 && n_ranks > 1) {
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status);
  }
  MPI_Finalize();
}

bool vqgpt_dist_available(void) { return true; }
int vqgpt_dist_rank(void) { return my_rank; }
int vqgpt_dist_size(void) { return n_ranks; }

// MPI counts are ints: long buffers go in pieces.
#define DIST_CHUNK ((size_t)1 << 30)

static void allreduce(void *x, size_t n, size_t elem, MPI_Datatype type) {
  if (n_ranks < 2) return;
  for (size_t i = 0; i < n; i += DIST_CHUNK) {
    size_t c = n - i < DIST_CHUNK ? n - i : DIST_CHUNK;
    MPI_Allreduce(MPI_IN_PLACE, (char *)x + i * elem, (int)c, type, MPI_SUM, MPI_COMM_WORLD);
  }
}

void vqgpt_dist_allreduce_sum_f32(float *x, size_t n) { allreduce(x, n, sizeof *x, MPI_FLOAT); }
void vqgpt_dist_allreduce_sum_f64(double *x, size_t n) { allreduce(x, n, sizeof *x, MPI_DOUBLE); }
void vqgpt_dist_allreduce_sum_i64(int64_t *x, size_t n) { allreduce(x, n, sizeof *x, MPI_INT64_T); }

void vqgpt_dist_allgather_f32(const float *mine, float *all, size_t n) {
  if (n_ranks < 2) {
    for (size_t i = 0; i < n; i++) all[i] = mine[i];
    return;
  }
  if (n > INT_MAX) {
    fprintf(stderr,
            "vqgpt: vqgpt_dist_allgather_f32: %zu floats per rank is more than MPI can send\n", n);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Allgather(mine, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, MPI_COMM_WORLD);
}

void vqgpt_dist_bcast(void *buf, size_t bytes, int root) {
  if (n_ranks < 2) return;
  for (size_t i = 0; i < bytes; i += DIST_CHUNK) {
    size_t c = bytes - i < DIST_CHUNK ? bytes - i : DIST_CHUNK;
    MPI_Bcast((char *)buf + i, (int)c, MPI_BYTE, root, MPI_COMM_WORLD);
  }
}

void vqgpt_dist_barrier(void) {
  if (n_ranks < 2) return;
  MPI_Request req;
  MPI_Ibarrier(MPI_COMM_WORLD, &req);
  for (int done = 0;;) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (done) break;
    nanosleep(&(struct timespec){0, 2000000}, NULL);  // 2 ms
  }
}

#else  // one process

int vqgpt_dist_init(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *n = launcher_size();
  if (n && atoi(n) > 1)
    return vqgpt_error(
        "started as one of %s processes by an MPI launcher, but this vqgpt was "
        "built without MPI (install libopenmpi-dev and rebuild)",
        n);
  return 0;
}
void vqgpt_dist_finalize(int status) { (void)status; }
bool vqgpt_dist_available(void) { return false; }
int vqgpt_dist_rank(void) { return 0; }
int vqgpt_dist_size(void) { return 1; }
void vqgpt_dist_allreduce_sum_f32(float *x, size_t n) {
  (void)x;
  (void)n;
}
void vqgpt_dist_allreduce_sum_f64(double *x, size_t n) {
  (void)x;
  (void)n;
}
void vqgpt_dist_allreduce_sum_i64(int64_t *x, size_t n) {
  (void)x;
  (void)n;
}
void vqgpt_dist_allgather_f32(const float *mine, float *all, size_t n) {
  for (size_t i = 0; i < n; i++) all[i] = mine[i];
}
void vqgpt_dist_bcast(void *buf, size_t bytes, int root) {
  (void)buf;
  (void)bytes;
  (void)root;
}
void vqgpt_dist_barrier(void) {}

#endif

// NumPy .npy files for code grids: int32 arrays of 1 to 3 dims in C order ([h, w] for one
// image, [n, h, w] for several). Writes format 1.0 ('<i4'); reads format 1.0, 2.0 and 3.0
// headers with '<i4' or '<i8' data (the latter range-checked into int32), little-endian and
// fortran_order False only. Errors read "<path>: <problem>".
#ifndef VQGPT_NPY_H
#define VQGPT_NPY_H

#include <stdint.h>

#define NPY_MAX_DIMS 3

// On success *data is a malloc'd array of shape[0] * ... * shape[*ndim - 1] values (never
// NULL, even for an empty array) that the caller frees; shape entries past *ndim are 0.
// On failure returns -1 with *data = NULL and *ndim = 0.
int vqgpt_npy_read_i32(const char *path, int32_t **data, int *ndim, int64_t shape[NPY_MAX_DIMS]);

// Writes data (ndim of 1..3, C order) as '<i4' to a temporary file beside path, fsyncs and
// renames it over path; on failure the old file is untouched and no temporary is left.
int vqgpt_npy_write_i32(const char *path, const int32_t *data, int ndim, const int64_t *shape);

#endif

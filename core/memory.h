// A memory budget for the large allocations (activations, KV caches, decoded images): a
// request over it is refused with a clear message before anything is allocated, instead of
// the machine swapping or the kernel killing the process. The budget is $VQGPT_MAX_MEMORY
// (GiB) if set, else three quarters of the physical memory.
#ifndef VQGPT_MEMORY_H
#define VQGPT_MEMORY_H

#include <stddef.h>

size_t vqgpt_memory_budget(void);
// 0 if `bytes` fits the budget; else an error naming `what`, the size and how to raise it.
int vqgpt_memory_check(size_t bytes, const char *what);

#endif

// Below this many elements (or multiply-adds, where said) a loop runs on one thread: waking
// and joining the OpenMP team costs more than it saves, and much more when other processes
// share the cores and a spinning thread waits for a descheduled one.
#ifndef VQGPT_PARALLEL_H
#define VQGPT_PARALLEL_H

#define VQGPT_PAR_MIN ((size_t)32768)

#endif

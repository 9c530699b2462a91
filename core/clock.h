// Wall-clock seconds for progress lines and benchmarks.
#ifndef VQGPT_CLOCK_H
#define VQGPT_CLOCK_H

// Seconds on a monotonic clock (unaffected by changes of the system time).
double vqgpt_seconds(void);

#endif

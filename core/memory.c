#include "core/memory.h"

#include <stdlib.h>
#include <unistd.h>

#include "core/error.h"

size_t vqgpt_memory_budget(void) {
  const char *env = getenv("VQGPT_MAX_MEMORY");
  if (env && *env) {
    char *end;
    double gib = strtod(env, &end);
    if (end != env && !*end && gib > 0 && gib < 1e6) return (size_t)(gib * (1 << 30));
  }
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return (size_t)8 << 30;
  return (size_t)pages * (size_t)page / 4 * 3;
}

int vqgpt_memory_check(size_t bytes, const char *what) {
  size_t budget = vqgpt_memory_budget();
  if (bytes <= budget) return 0;
  return vqgpt_error(
      "%s needs %.3g GiB, over the memory budget of %.3g GiB (VQGPT_MAX_MEMORY=GIB "
      "raises it)",
      what, bytes / 1073741824.0, budget / 1073741824.0);
}

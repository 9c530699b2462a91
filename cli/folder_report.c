#include "cli/folder_report.h"

#include <stdio.h>

#include "data/dataset.h"

// A file name may hold any byte but '/' and NUL; a newline must not break the log's lines.
static void put_line(const char *s) {
  for (; *s; s++) fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, stderr);
  fputc('\n', stderr);
}

void cli_report_folder(const char *command, const char *dir, const image_folder *f) {
  for (size_t i = 0; i < f->n_skipped; i++) {
    fprintf(stderr, "vqgpt %s: warning: skipped ", command);
    put_line(f->skipped[i]);
  }
  if (f->n_skipped)
    fprintf(stderr,
            "%s: skipped %zu of %zu image files that cannot be read (at most %.0f%% may be)\n", dir,
            f->n_skipped, f->n_skipped + f->n_images, IMAGE_DATASET_MAX_BAD_SHARE * 100);
  if (f->n_duplicates)
    fprintf(stderr,
            "%s: %zu more path%s (links) to images already listed; each image is used once\n", dir,
            f->n_duplicates, f->n_duplicates == 1 ? "" : "s");
}

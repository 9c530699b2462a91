// Image folders as data sets: every PNG/JPEG below a directory (recursive, sorted for
// reproducibility), with class labels from the first-level sub-folder names.
//
// Files are chosen by name (.png, .jpg, .jpeg, any case; hidden names skipped); the decoder
// checks the contents. Symbolic links are followed, but every directory is entered once and
// every image counted once (by device and inode): a link loop, a link to a folder already
// scanned or a second link to an image adds nothing. Traversal is in sorted name order, so
// the first path to an image, in that order, is the one kept.
#ifndef VQGPT_FOLDER_H
#define VQGPT_FOLDER_H

#include <stddef.h>

typedef struct {
  char **paths;  // n_images
  int *labels;   // n_images: index into class_names
  size_t n_images;
  char **class_names;  // sorted sub-folder names; images directly in the root get class 0 "."
  int n_classes;
  // Image-named entries that are not readable regular files (a FIFO, a broken link, ...), one
  // line each, "<path>: <reason>"; not in paths. Callers report them (only the CLI prints).
  char **skipped;
  size_t n_skipped;
  size_t n_duplicates;  // further paths to an image already listed, not counted
} image_folder;

int vqgpt_image_folder_scan(image_folder *f, const char *dir);
void vqgpt_image_folder_free(image_folder *f);

#endif

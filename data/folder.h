// Image folders as data sets: every PNG/JPEG below a directory (recursive, sorted for
// reproducibility), with class labels from the first-level sub-folder names.
#ifndef VQGPT_FOLDER_H
#define VQGPT_FOLDER_H

#include <stddef.h>

typedef struct {
  char **paths;        // n_images
  int *labels;         // n_images: index into class_names
  size_t n_images;
  char **class_names;  // sorted sub-folder names; images directly in the root get class 0 "."
  int n_classes;
} image_folder;

int image_folder_scan(image_folder *f, const char *dir);
void image_folder_free(image_folder *f);

#endif

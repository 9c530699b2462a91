#include "data/folder.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/error.h"

typedef struct {
  char **items;
  size_t n, cap;
} str_list;

static int list_push(str_list *l, const char *s) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    char **p = realloc(l->items, cap * sizeof *p);
    if (!p) return -1;
    l->items = p;
    l->cap = cap;
  }
  if (!(l->items[l->n] = strdup(s))) return -1;
  l->n++;
  return 0;
}

static void list_free(str_list *l) {
  for (size_t i = 0; i < l->n; i++) free(l->items[i]);
  free(l->items);
  memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_image_name(const char *name) {
  const char *dot = strrchr(name, '.');
  if (!dot) return 0;
  static const char *exts[] = {".png", ".jpg", ".jpeg", ".bmp", ".tga", ".ppm", ".pgm"};
  for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
    if (!strcasecmp(dot, exts[i])) return 1;
  return 0;
}

// Collects image files below dir (depth-limited so a link cycle cannot recurse forever).
static int collect(str_list *out, const char *dir, int depth) {
  if (depth > 32) return 0;
  DIR *d = opendir(dir);
  if (!d) return vqgpt_error("%s: cannot read directory: %s", dir, strerror(errno));
  struct dirent *e;
  int rc = 0;
  while (!rc && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    size_t n = strlen(dir) + strlen(e->d_name) + 2;
    char *p = malloc(n);
    if (!p) {
      rc = vqgpt_error("out of memory scanning %s", dir);
      break;
    }
    snprintf(p, n, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(p, &st) == 0) {
      if (S_ISDIR(st.st_mode))
        rc = collect(out, p, depth + 1);
      else if (S_ISREG(st.st_mode) && is_image_name(e->d_name) && list_push(out, p))
        rc = vqgpt_error("out of memory scanning %s", dir);
    }
    free(p);
  }
  closedir(d);
  return rc;
}

// The first path component below root: the class name, or "." for files in root itself.
static const char *class_of(const char *path, size_t root_len, char *buf, size_t cap) {
  const char *rel = path + root_len + 1;
  const char *slash = strchr(rel, '/');
  if (!slash) return ".";
  size_t n = (size_t)(slash - rel) < cap - 1 ? (size_t)(slash - rel) : cap - 1;
  memcpy(buf, rel, n);
  buf[n] = '\0';
  return buf;
}

int image_folder_scan(image_folder *f, const char *dir) {
  memset(f, 0, sizeof *f);
  size_t root_len = strlen(dir);
  while (root_len > 1 && dir[root_len - 1] == '/') root_len--;
  char *root = strndup(dir, root_len);
  if (!root) return vqgpt_error("out of memory");
  str_list files = {0}, classes = {0};
  int rc = collect(&files, root, 0);
  if (!rc && files.n == 0) rc = vqgpt_error("%s: no PNG or JPEG images found", dir);
  if (!rc) qsort(files.items, files.n, sizeof(char *), cmp_str);
  char buf[1024];
  for (size_t i = 0; !rc && i < files.n; i++) {
    const char *c = class_of(files.items[i], root_len, buf, sizeof buf);
    if (classes.n == 0 || strcmp(classes.items[classes.n - 1], c) != 0) {
      int seen = 0;
      for (size_t j = 0; j < classes.n; j++) seen |= !strcmp(classes.items[j], c);
      if (!seen && list_push(&classes, c)) rc = vqgpt_error("out of memory");
    }
  }
  if (!rc) qsort(classes.items, classes.n, sizeof(char *), cmp_str);
  int *labels = rc ? NULL : malloc(files.n * sizeof *labels);
  if (!rc && !labels) rc = vqgpt_error("out of memory");
  for (size_t i = 0; !rc && i < files.n; i++) {
    const char *c = class_of(files.items[i], root_len, buf, sizeof buf);
    char **hit = bsearch(&c, classes.items, classes.n, sizeof(char *), cmp_str);
    labels[i] = (int)(hit - classes.items);
  }
  free(root);
  if (rc) {
    free(labels);
    list_free(&files);
    list_free(&classes);
    return rc;
  }
  f->paths = files.items;
  f->n_images = files.n;
  f->labels = labels;
  f->class_names = classes.items;
  f->n_classes = (int)classes.n;
  return 0;
}

void image_folder_free(image_folder *f) {
  for (size_t i = 0; i < f->n_images; i++) free(f->paths[i]);
  for (int i = 0; i < f->n_classes; i++) free(f->class_names[i]);
  free(f->paths);
  free(f->labels);
  free(f->class_names);
  memset(f, 0, sizeof *f);
}

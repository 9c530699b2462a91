#include "data/folder.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/regular_file.h"

// Real trees are far shallower; this only bounds the recursion.
#define MAX_DEPTH 64

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

// The files and directories seen, by (device, inode): an open-addressing hash set.
typedef struct {
  dev_t dev;
  ino_t ino;
  bool used;
} file_id;

typedef struct {
  file_id *slots;
  size_t cap, n;  // cap: a power of two
} id_set;

static size_t id_hash(dev_t dev, ino_t ino) {
  uint64_t h = ((uint64_t)dev * 0x9E3779B97F4A7C15ULL) ^ (uint64_t)ino;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ULL;
  return (size_t)(h ^ (h >> 32));
}

static file_id *id_slot(file_id *slots, size_t cap, dev_t dev, ino_t ino) {
  size_t i = id_hash(dev, ino) & (cap - 1);
  while (slots[i].used && !(slots[i].dev == dev && slots[i].ino == ino)) i = (i + 1) & (cap - 1);
  return &slots[i];
}

// 1 when added, 0 when already there, -1 out of memory.
static int id_set_add(id_set *s, dev_t dev, ino_t ino) {
  if (2 * (s->n + 1) > s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 256;
    file_id *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < s->cap; i++)
      if (s->slots[i].used) *id_slot(slots, cap, s->slots[i].dev, s->slots[i].ino) = s->slots[i];
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
  }
  file_id *slot = id_slot(s->slots, s->cap, dev, ino);
  if (slot->used) return 0;
  *slot = (file_id){dev, ino, true};
  s->n++;
  return 1;
}

typedef struct {
  str_list files, skipped;
  id_set seen;  // directories entered and images listed
  size_t n_duplicates;
} scan_state;

static bool is_image_name(const char *name) {
  const char *dot = strrchr(name, '.');
  return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int skip(scan_state *s, const char *path, const char *fmt, ...) {
  char reason[256], line[4352];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  snprintf(line, sizeof line, "%s: %s", path, reason);
  return list_push(&s->skipped, line) ? vqgpt_error("out of memory scanning %s", path) : 0;
}

static int visible(const struct dirent *e) { return e->d_name[0] != '.'; }

static int by_name(const struct dirent **a, const struct dirent **b) {
  return strcmp((*a)->d_name, (*b)->d_name);
}

static int scan_dir(scan_state *s, const char *dir, int depth);

static int scan_entry(scan_state *s, const char *dir, const char *name, int depth) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  if (!p) return vqgpt_error("out of memory scanning %s", dir);
  snprintf(p, n, "%s/%s", dir, name);
  bool image = is_image_name(name);
  struct stat st;
  int rc = 0, added;
  if (stat(p, &st) != 0) {  // follows links; a broken one fails here
    if (image) rc = skip(s, p, "cannot open: %s", strerror(errno));
  } else if (S_ISDIR(st.st_mode)) {
    if ((added = id_set_add(&s->seen, st.st_dev, st.st_ino)) < 0)
      rc = vqgpt_error("out of memory scanning %s", dir);
    else if (added)
      rc = scan_dir(s, p, depth + 1);
  } else if (!image) {
    // not ours
  } else if (!S_ISREG(st.st_mode)) {
    rc = skip(s, p, "is %s, not a regular file", vqgpt_file_kind(st.st_mode));
  } else if ((added = id_set_add(&s->seen, st.st_dev, st.st_ino)) < 0 ||
             (added && list_push(&s->files, p))) {
    rc = vqgpt_error("out of memory scanning %s", dir);
  } else if (!added) {
    s->n_duplicates++;
  }
  free(p);
  return rc;
}

// Collects image files below dir, entries in name order.
static int scan_dir(scan_state *s, const char *dir, int depth) {
  if (depth > MAX_DEPTH) return vqgpt_error("%s: folders nested more than %d deep", dir, MAX_DEPTH);
  struct dirent **entries;
  int n = scandir(dir, &entries, visible, by_name);
  if (n < 0) return vqgpt_error("%s: cannot read directory: %s", dir, strerror(errno));
  int rc = 0;
  for (int i = 0; i < n; i++) {
    if (!rc) rc = scan_entry(s, dir, entries[i]->d_name, depth);
    free(entries[i]);
  }
  free(entries);
  return rc;
}

static int scan_root(scan_state *s, const char *root) {
  struct stat st;
  if (stat(root, &st) != 0)
    return vqgpt_error("%s: cannot read directory: %s", root, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return vqgpt_error("%s: not a directory", root);
  if (id_set_add(&s->seen, st.st_dev, st.st_ino) < 0) return vqgpt_error("out of memory");
  return scan_dir(s, root, 0);
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

int vqgpt_image_folder_scan(image_folder *f, const char *dir) {
  memset(f, 0, sizeof *f);
  size_t root_len = strlen(dir);
  while (root_len > 1 && dir[root_len - 1] == '/') root_len--;
  char *root = strndup(dir, root_len);
  if (!root) return vqgpt_error("out of memory");
  scan_state s = {0};
  str_list classes = {0};
  int rc = scan_root(&s, root);
  free(s.seen.slots);
  if (!rc && s.files.n == 0 && s.skipped.n == 0)
    rc = vqgpt_error("%s: no PNG or JPEG images found", dir);
  if (!rc) qsort(s.files.items, s.files.n, sizeof(char *), cmp_str);
  char buf[1024];
  for (size_t i = 0; !rc && i < s.files.n; i++) {
    const char *c = class_of(s.files.items[i], root_len, buf, sizeof buf);
    if (classes.n == 0 || strcmp(classes.items[classes.n - 1], c) != 0) {
      int seen = 0;
      for (size_t j = 0; j < classes.n; j++) seen |= !strcmp(classes.items[j], c);
      if (!seen && list_push(&classes, c)) rc = vqgpt_error("out of memory");
    }
  }
  if (!rc) qsort(classes.items, classes.n, sizeof(char *), cmp_str);
  int *labels = rc ? NULL : malloc((s.files.n + 1) * sizeof *labels);
  if (!rc && !labels) rc = vqgpt_error("out of memory");
  for (size_t i = 0; !rc && i < s.files.n; i++) {
    const char *c = class_of(s.files.items[i], root_len, buf, sizeof buf);
    char **hit = bsearch(&c, classes.items, classes.n, sizeof(char *), cmp_str);
    labels[i] = (int)(hit - classes.items);
  }
  free(root);
  if (rc) {
    free(labels);
    list_free(&s.files);
    list_free(&s.skipped);
    list_free(&classes);
    return rc;
  }
  f->paths = s.files.items;
  f->n_images = s.files.n;
  f->labels = labels;
  f->class_names = classes.items;
  f->n_classes = (int)classes.n;
  f->skipped = s.skipped.items;
  f->n_skipped = s.skipped.n;
  f->n_duplicates = s.n_duplicates;
  return 0;
}

void vqgpt_image_folder_free(image_folder *f) {
  for (size_t i = 0; i < f->n_images; i++) free(f->paths[i]);
  for (int i = 0; i < f->n_classes; i++) free(f->class_names[i]);
  for (size_t i = 0; i < f->n_skipped; i++) free(f->skipped[i]);
  free(f->paths);
  free(f->labels);
  free(f->class_names);
  free(f->skipped);
  memset(f, 0, sizeof *f);
}

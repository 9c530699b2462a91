#include "data/image.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// libpng before setjmp.h: its headers check for a conflicting setjmp.h.
#include <png.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

#include <stb_image_resize.h>
#include <stb_image_write.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/regular_file.h"

// Resize targets (--resize, training rescales) may exceed what is decoded; bounded separately.
#define IMAGE_MAX_RESIZE_PIXELS (1L << 28)
// Alpha is composited on this grey level (white).
#define IMAGE_BACKGROUND 255
// A progressive JPEG may hold any number of scans, each a full pass over the image: a small
// file could keep the decoder busy for hours. libjpeg-turbo's own tools suggest 500.
#define JPEG_MAX_SCANS 500
// libjpeg's working memory (coefficient buffers of progressive files) beyond the pixels.
#define JPEG_MAX_MEMORY (1L << 30)

// ---------------------------------------------------------------------------------------
// Format by magic bytes

typedef enum { FORMAT_PNG, FORMAT_JPEG, FORMAT_OTHER } image_format;

typedef struct {
  size_t offset, len;
  const char *magic, *name;
} look_alike;

// What a refused file looks like, for the error message; not an exhaustive list.
static const look_alike look_alikes[] = {
    {0, 6, "GIF87a", "a GIF image"},
    {0, 6, "GIF89a", "a GIF image"},
    {0, 4, "\x53\x80\xf6\x34", "a Softimage PIC image"},
    {0, 4, "II*\0", "a TIFF image"},
    {0, 4, "MM\0*", "a TIFF image"},
    {8, 4, "WEBP", "a WebP image"},
    {0, 4, "8BPS", "a Photoshop PSD image"},
    {0, 10, "#?RADIANCE", "a Radiance HDR image"},
    {0, 6, "#?RGBE", "a Radiance HDR image"},
    {0, 4, "qoif", "a QOI image"},
    {4, 4, "ftyp", "an ISO media file (HEIF/AVIF/MP4)"},
    {4, 4, "jP  ", "a JPEG 2000 image"},
    {0, 4, "\x89PNG", "a PNG with a damaged signature"},
    {0, 2, "\xff\xd8", "a JPEG with a damaged start"},
    {0, 6, "\x93NUMPY", "a NumPy .npy file"},
    {0, 4, "%PDF", "a PDF document"},
    {0, 4, "PK\x03\x04", "a ZIP archive"},
    {0, 2, "\x1f\x8b", "gzip data"},
    {0, 2, "BM", "a BMP image"},
    {0, 4, "\0\0\1\0", "a Windows icon"},
};

static bool looks_like_pnm(const uint8_t *b, size_t n) {
  return n >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7' &&
         (b[2] == ' ' || b[2] == '\n' || b[2] == '\r' || b[2] == '\t');
}

static bool looks_like_text(const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (b[i] < 0x20 ? !(b[i] == '\n' || b[i] == '\r' || b[i] == '\t') : b[i] == 0x7f) return false;
  return true;
}

// The format of the n first bytes of a file; for others, what they look like in `what`.
static image_format sniff(const uint8_t *b, size_t n, char *what, size_t cap) {
  if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return FORMAT_PNG;
  if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return FORMAT_JPEG;
  for (size_t i = 0; i < sizeof look_alikes / sizeof look_alikes[0]; i++) {
    const look_alike *l = &look_alikes[i];
    if (n >= l->offset + l->len && !memcmp(b + l->offset, l->magic, l->len)) {
      snprintf(what, cap, "%s", l->name);
      return FORMAT_OTHER;
    }
  }
  if (looks_like_pnm(b, n))
    snprintf(what, cap, "a PNM (PBM/PGM/PPM/PAM) image");
  else if (looks_like_text(b, n))
    snprintf(what, cap, "text");
  else
    snprintf(what, cap, "unknown data starting %02x %02x %02x %02x", b[0], n > 1 ? b[1] : 0,
             n > 2 ? b[2] : 0, n > 3 ? b[3] : 0);
  return FORMAT_OTHER;
}

static int check_size(const char *path, const char *format, unsigned long w, unsigned long h) {
  if (w < 1 || h < 1 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE ||
      (unsigned long long)w * h > (unsigned long long)IMAGE_MAX_PIXELS)
    return vqgpt_error(
        "%s: %s of %lux%lu pixels refused (the limits are %d per side and %ld "
        "pixels in all)",
        path, format, w, h, IMAGE_MAX_SIDE, IMAGE_MAX_PIXELS);
  return 0;
}

// RGBA (n pixels) -> RGB in place, alpha composited on the background.
static void composite_rgba(uint8_t *px, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const uint8_t *s = px + i * 4;
    unsigned a = s[3];
    for (int c = 0; c < 3; c++)
      px[i * 3 + c] = (uint8_t)((s[c] * a + IMAGE_BACKGROUND * (255 - a) + 127) / 255);
  }
}

// ---------------------------------------------------------------------------------------
// PNG (libpng)

static void png_on_error(png_structp png, png_const_charp msg) {
  // The message is left at once: after the jump only the clean-up runs.
  vqgpt_file_error((const char *)png_get_error_ptr(png), true, "corrupt or truncated PNG: %s", msg);
  png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
  (void)png;  // ancillary-chunk trouble (bad sRGB profile, ...) does not touch the pixels
  (void)msg;
}

// fread with an error on a short read (libpng's own says only "Read Error").
static void png_read_exact(png_structp png, png_bytep data, size_t n) {
  FILE *fp = png_get_io_ptr(png);
  if (fread(data, 1, n, fp) != n)
    png_error(png, ferror(fp) ? "read error" : "unexpected end of file");
}

static int load_png(image_rgb *img, FILE *fp, const char *path) {
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, (png_voidp)path, png_on_error, png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info) {
    png_destroy_read_struct(&png, NULL, NULL);
    return vqgpt_error("%s: out of memory for the PNG decoder", path);
  }
  // Set after setjmp and read after the jump: volatile, or their values would be indeterminate.
  uint8_t *volatile pixels = NULL;
  png_bytep *volatile rows = NULL;
  if (setjmp(png_jmpbuf(png))) {
    free(pixels);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return -1;  // png_on_error left the message
  }
  png_set_read_fn(png, fp, png_read_exact);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  if (check_size(path, "PNG", w, h)) {
    png_destroy_read_struct(&png, &info, NULL);
    return -1;
  }
  // Everything to 8-bit RGBA: palettes and tRNS expanded, 16 bits scaled, grey copied to R, G
  // and B, an opaque alpha added where there is none.
  png_set_expand(png);
  png_set_scale_16(png);
  png_set_gray_to_rgb(png);
  png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != (size_t)w * 4) png_error(png, "unexpected row layout");
  pixels = malloc((size_t)w * h * 4);
  rows = malloc(h * sizeof(png_bytep));
  if (!pixels || !rows) {
    free(pixels);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return vqgpt_error("%s: out of memory for %lux%lu pixels", path, (unsigned long)w,
                       (unsigned long)h);
  }
  for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * w * 4;
  png_read_image(png, rows);
  png_read_end(png, NULL);  // up to IEND: a file cut short after the pixels is refused too
  png_destroy_read_struct(&png, &info, NULL);
  free(rows);
  uint8_t *px = pixels;
  composite_rgba(px, (size_t)w * h);
  uint8_t *rgb = realloc(px, (size_t)w * h * 3);
  img->rgb = rgb ? rgb : px;
  img->w = (int)w;
  img->h = (int)h;
  return 0;
}

// ---------------------------------------------------------------------------------------
// JPEG (libjpeg-turbo)

typedef struct {
  struct jpeg_error_mgr mgr;  // first: libjpeg hands back a pointer to it
  struct jpeg_progress_mgr progress;
  jmp_buf jump;
  const char *path;
} jpeg_guard;

static void jpeg_on_error(j_common_ptr c) {
  jpeg_guard *g = (jpeg_guard *)c->err;
  char msg[JMSG_LENGTH_MAX];
  c->err->format_message(c, msg);
  vqgpt_file_error(g->path, true, "corrupt or truncated JPEG: %s", msg);
  longjmp(g->jump, 1);
}

// Warnings that mean pixels were lost (libjpeg fills them with grey and goes on) are errors
// here; the harmless ones (unknown JFIF revision, stray bytes between markers, ...) are not.
static void jpeg_on_message(j_common_ptr c, int level) {
  if (level >= 0) return;  // trace messages
  switch (c->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
      jpeg_on_error(c);
      break;
    default:
      break;
  }
}

static void jpeg_on_progress(j_common_ptr c) {
  j_decompress_ptr d = (j_decompress_ptr)c;
  if (c->is_decompressor && d->input_scan_number > JPEG_MAX_SCANS) {
    jpeg_guard *g = (jpeg_guard *)c->err;
    vqgpt_file_error(g->path, false, "JPEG with more than %d scans refused", JPEG_MAX_SCANS);
    longjmp(g->jump, 1);
  }
}

// Adobe's CMYK JPEGs store inverted ink values; others plain ones. No colour management.
static void cmyk_to_rgb(const uint8_t *cmyk, uint8_t *rgb, size_t n, bool inverted) {
  for (size_t i = 0; i < n; i++) {
    unsigned k = inverted ? cmyk[i * 4 + 3] : 255u - cmyk[i * 4 + 3];
    for (int c = 0; c < 3; c++) {
      unsigned v = inverted ? cmyk[i * 4 + c] : 255u - cmyk[i * 4 + c];
      rgb[i * 3 + c] = (uint8_t)((v * k + 127) / 255);
    }
  }
}

static int load_jpeg(image_rgb *img, FILE *fp, const char *path) {
  struct jpeg_decompress_struct cinfo;
  jpeg_guard g;
  cinfo.err = jpeg_std_error(&g.mgr);
  g.mgr.error_exit = jpeg_on_error;
  g.mgr.emit_message = jpeg_on_message;
  g.path = path;
  uint8_t *volatile pixels = NULL;
  uint8_t *volatile row = NULL;  // CMYK scanline
  if (setjmp(g.jump)) {
    free(pixels);
    free(row);
    jpeg_destroy_decompress(&cinfo);
    return -1;  // the handler left the message
  }
  jpeg_create_decompress(&cinfo);
  cinfo.mem->max_memory_to_use = JPEG_MAX_MEMORY;
  g.progress.progress_monitor = jpeg_on_progress;
  cinfo.progress = &g.progress;
  jpeg_stdio_src(&cinfo, fp);
  jpeg_read_header(&cinfo, TRUE);
  if (check_size(path, "JPEG", cinfo.image_width, cinfo.image_height)) {
    jpeg_destroy_decompress(&cinfo);
    return -1;
  }
  bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  if (cinfo.jpeg_color_space == JCS_GRAYSCALE || cinfo.jpeg_color_space == JCS_YCbCr ||
      cinfo.jpeg_color_space == JCS_RGB) {
    cinfo.out_color_space = JCS_RGB;
  } else if (cmyk) {
    cinfo.out_color_space = JCS_CMYK;
  } else {
    int components = cinfo.num_components;
    jpeg_destroy_decompress(&cinfo);
    return vqgpt_error("%s: JPEG with an unsupported colour space (%d components)", path,
                       components);
  }
  jpeg_start_decompress(&cinfo);
  size_t w = cinfo.output_width, h = cinfo.output_height;
  if (cinfo.output_components != (cmyk ? 4 : 3)) ERREXIT(&cinfo, JERR_CONVERSION_NOTIMPL);
  pixels = malloc(w * h * 3);
  if (cmyk) row = malloc(w * 4);
  if (!pixels || (cmyk && !row)) {
    free(pixels);
    free(row);
    jpeg_destroy_decompress(&cinfo);
    return vqgpt_error("%s: out of memory for %zux%zu pixels", path, w, h);
  }
  while (cinfo.output_scanline < h) {
    uint8_t *dst = pixels + (size_t)cinfo.output_scanline * w * 3;
    JSAMPROW line = cmyk ? row : dst;
    if (jpeg_read_scanlines(&cinfo, &line, 1) != 1) ERREXIT(&cinfo, JERR_INPUT_EOF);
    if (cmyk) cmyk_to_rgb(row, dst, w, cinfo.saw_Adobe_marker);
  }
  jpeg_finish_decompress(&cinfo);  // to EOI: a file cut short after the last row is refused too
  jpeg_destroy_decompress(&cinfo);
  free(row);
  img->rgb = pixels;
  img->w = (int)w;
  img->h = (int)h;
  return 0;
}

// ---------------------------------------------------------------------------------------

int vqgpt_image_load(image_rgb *img, const char *path) {
  memset(img, 0, sizeof *img);
  FILE *fp = vqgpt_fopen_regular(path, NULL);
  if (!fp) return -1;
  uint8_t head[16];
  size_t n = fread(head, 1, sizeof head, fp);
  char what[96];
  int rc;
  if (ferror(fp)) {
    rc = vqgpt_error("%s: cannot read: %s", path, strerror(errno));
  } else if (n == 0) {
    rc = vqgpt_error("%s: empty file, not a PNG or JPEG image", path);
  } else if (fseek(fp, 0, SEEK_SET) != 0) {
    rc = vqgpt_error("%s: cannot seek: %s", path, strerror(errno));
  } else {
    switch (sniff(head, n, what, sizeof what)) {
      case FORMAT_PNG:
        rc = load_png(img, fp, path);
        break;
      case FORMAT_JPEG:
        rc = load_jpeg(img, fp, path);
        break;
      default:
        rc = vqgpt_error("%s: not a PNG or JPEG file (looks like %s)", path, what);
        break;
    }
  }
  fclose(fp);
  return rc;
}

void vqgpt_image_free(image_rgb *img) {
  free(img->rgb);
  img->rgb = NULL;
  img->w = img->h = 0;
}

static void write_to_file(void *ctx, void *data, int size) {
  fwrite(data, 1, (size_t)size, (FILE *)ctx);
}

int vqgpt_image_save_png(const image_rgb *img, const char *path) {
  atomic_file af;
  if (vqgpt_atomic_file_open(&af, path)) return -1;
  if (!stbi_write_png_to_func(write_to_file, af.fp, img->w, img->h, 3, img->rgb, img->w * 3)) {
    vqgpt_atomic_file_abort(&af);
    return vqgpt_error("%s: PNG encoding failed", path);
  }
  return vqgpt_atomic_file_commit(&af);
}

static inline float to_model(uint8_t v) { return (float)v / 127.5f - 1.0f; }

static inline uint8_t to_pixel(float x) {
  if (!(x > -1.0f)) x = -1.0f;  // also maps NaN to black rather than undefined
  if (x > 1.0f) x = 1.0f;
  return (uint8_t)lrintf((x + 1.0f) * 127.5f);
}

void vqgpt_image_to_tensor(const image_rgb *img, float *x) {
  vqgpt_image_crop_to_tensor(img, 0, 0, img->w, img->h, 0, x);
}

void vqgpt_image_crop_to_tensor(const image_rgb *img, int x0, int y0, int size_w, int size_h,
                                int flip, float *x) {
  size_t plane = (size_t)size_w * size_h;
  for (int y = 0; y < size_h; y++)
    for (int i = 0; i < size_w; i++) {
      int sx = x0 + (flip ? size_w - 1 - i : i);
      const uint8_t *p = img->rgb + ((size_t)(y0 + y) * img->w + sx) * 3;
      for (int c = 0; c < 3; c++) x[c * plane + (size_t)y * size_w + i] = to_model(p[c]);
    }
}

void vqgpt_image_from_tensor(image_rgb *img, const float *x) {
  size_t plane = (size_t)img->w * img->h;
  for (size_t i = 0; i < plane; i++)
    for (int c = 0; c < 3; c++) img->rgb[i * 3 + c] = to_pixel(x[c * plane + i]);
}

int vqgpt_image_resize(image_rgb *out, const image_rgb *in, int w, int h) {
  memset(out, 0, sizeof *out);
  if (w <= 0 || h <= 0 || (long long)w * h > IMAGE_MAX_RESIZE_PIXELS)
    return vqgpt_error("invalid resize target %dx%d", w, h);
  out->rgb = malloc((size_t)w * h * 3);
  if (!out->rgb) return vqgpt_error("out of memory resizing to %dx%d", w, h);
  out->w = w;
  out->h = h;
  // The filter is not the identity at scale 1 (it shifts pixels by up to ~30 levels).
  if (w == in->w && h == in->h) {
    memcpy(out->rgb, in->rgb, (size_t)w * h * 3);
    return 0;
  }
  if (!stbir_resize_uint8(in->rgb, in->w, in->h, 0, out->rgb, w, h, 0, 3)) {
    vqgpt_image_free(out);
    return vqgpt_error("resize to %dx%d failed", w, h);
  }
  return 0;
}

int vqgpt_image_grid(image_rgb *out, const float *xs, int n, int h, int w, int cols) {
  const int border = 2;
  if (cols < 1) cols = 1;
  if (cols > n) cols = n;
  int rows = (n + cols - 1) / cols;
  out->w = cols * w + (cols + 1) * border;
  out->h = rows * h + (rows + 1) * border;
  out->rgb = malloc((size_t)out->w * out->h * 3);
  if (!out->rgb) return vqgpt_error("out of memory for a %dx%d grid", out->w, out->h);
  memset(out->rgb, 255, (size_t)out->w * out->h * 3);
  size_t plane = (size_t)h * w;
  for (int k = 0; k < n; k++) {
    int ox = border + (k % cols) * (w + border), oy = border + (k / cols) * (h + border);
    const float *x = xs + (size_t)k * 3 * plane;
    for (int y = 0; y < h; y++)
      for (int i = 0; i < w; i++)
        for (int c = 0; c < 3; c++)
          out->rgb[((size_t)(oy + y) * out->w + ox + i) * 3 + c] =
              to_pixel(x[c * plane + (size_t)y * w + i]);
  }
  return 0;
}

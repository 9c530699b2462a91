// Image input: PNG (libpng) and JPEG (libjpeg-turbo) in every layout the header promises,
// everything else refused by magic bytes, hostile files (found by fuzzing the old decoder)
// refused with one line, inputs that are not regular files refused without blocking, and
// image folders with links, loops and bad files; an image at the size asked for kept exact. All
// test images are made here.
#define _XOPEN_SOURCE 700  // nftw
#include <ftw.h>
#include <png.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/regular_file.h"
#include "data/dataset.h"
#include "data/folder.h"
#include "data/image.h"
#include "test_util.h"

// ---------------------------------------------------------------------------------------
// Writers

// A PNG of the given libpng colour type, bit depth and interlacing; `rows` packed as libpng
// takes them (16-bit samples big-endian). Palette and tRNS optional.
static void write_png(const char *path, int w, int h, int color, int depth, int interlace,
                      const uint8_t *data, const png_color *palette, int n_palette,
                      const uint8_t *trns, int n_trns) {
  FILE *fp = fopen(path, "wb");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  CHECK(fp && png && info);
  if (!fp || !png || !info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    if (fp) fclose(fp);
    CHECKF(0, "%s: writing failed", path);
    return;
  }
  png_init_io(png, fp);
  png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color, interlace,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (palette) png_set_PLTE(png, info, palette, n_palette);
  if (trns) png_set_tRNS(png, info, trns, n_trns, NULL);
  png_write_info(png, info);
  size_t rowbytes = png_get_rowbytes(png, info);
  png_bytep rows[64];
  for (int y = 0; y < h && y < 64; y++) rows[y] = (png_bytep)data + (size_t)y * rowbytes;
  png_write_image(png, rows);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  fclose(fp);
}

// A JPEG in memory (free() it) of w x h samples with `comps` components in colour space cs.
static unsigned char *make_jpeg(int w, int h, int comps, J_COLOR_SPACE cs, const uint8_t *px,
                                bool progressive, unsigned long *size) {
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char *buf = NULL;
  *size = 0;
  jpeg_mem_dest(&c, &buf, size);
  c.image_width = (JDIMENSION)w;
  c.image_height = (JDIMENSION)h;
  c.input_components = comps;
  c.in_color_space = cs;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 100, TRUE);
  if (progressive) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = (JSAMPROW)px + (size_t)c.next_scanline * w * comps;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  return buf;
}

// The standard CRC-32 of PNG chunks, for patched headers.
static uint32_t crc32_of(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
  }
  return ~c;
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

// A small RGB image with varied pixels.
static image_rgb pattern(int w, int h) {
  image_rgb img = {w, h, malloc((size_t)w * h * 3)};
  for (int i = 0; i < w * h * 3; i++) img.rgb[i] = (uint8_t)(i * 37 + (i / 3) * 11);
  return img;
}

// ---------------------------------------------------------------------------------------
// Checks

static void expect_load_error(const char *path, const char *what, const char *label) {
  image_rgb img;
  vqgpt_clear_error();
  int rc = vqgpt_image_load(&img, path);
  const char *e = vqgpt_last_error();
  CHECKF(rc == -1, "%s: accepted", label);
  if (rc == 0) vqgpt_image_free(&img);
  CHECKF(img.rgb == NULL, "%s: pixels left after an error", label);
  CHECKF(strstr(e, path) != NULL, "%s: error does not name the file: %s", label, e);
  CHECKF(strstr(e, what) != NULL, "%s: error lacks '%s': %s", label, what, e);
  CHECKF(strchr(e, '\n') == NULL, "%s: error is not one line: %s", label, e);
}

// Loads path and checks the size and the first pixels against want (n RGB triples).
static void expect_pixels(const char *path, int w, int h, const uint8_t *want, int n, int tol,
                          const char *label) {
  image_rgb img;
  int rc = vqgpt_image_load(&img, path);
  CHECKF(rc == 0, "%s: %s", label, vqgpt_last_error());
  if (rc) return;
  CHECKF(img.w == w && img.h == h, "%s: %dx%d, want %dx%d", label, img.w, img.h, w, h);
  for (int i = 0; i < n * 3 && img.w == w && img.h == h; i++)
    CHECKF(abs(img.rgb[i] - want[i]) <= tol, "%s: pixel %d channel %d is %d, want %d", label, i / 3,
           i % 3, img.rgb[i], want[i]);
  vqgpt_image_free(&img);
}

static uint8_t on_white(int c, int a) { return (uint8_t)((c * a + 255 * (255 - a) + 127) / 255); }

static void test_png_layouts(void) {
  // RGB through the project's own writer: exact round trip.
  image_rgb src = pattern(7, 5);
  pathbuf rgb = tmp_path("rgb.png");
  CHECK(vqgpt_image_save_png(&src, rgb.s) == 0);
  expect_pixels(rgb.s, 7, 5, src.rgb, 35, 0, "RGB PNG");

  // Interlaced (Adam7) gives the same pixels.
  pathbuf adam = tmp_path("adam7.png");
  write_png(adam.s, 7, 5, PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_ADAM7, src.rgb, NULL, 0, NULL, 0);
  expect_pixels(adam.s, 7, 5, src.rgb, 35, 0, "interlaced PNG");
  vqgpt_image_free(&src);

  // Grey -> R = G = B.
  uint8_t grey[4] = {0, 77, 200, 255}, grey_rgb[12];
  for (int i = 0; i < 12; i++) grey_rgb[i] = grey[i / 3];
  pathbuf g = tmp_path("grey.png");
  write_png(g.s, 2, 2, PNG_COLOR_TYPE_GRAY, 8, PNG_INTERLACE_NONE, grey, NULL, 0, NULL, 0);
  expect_pixels(g.s, 2, 2, grey_rgb, 4, 0, "grey PNG");

  // 1-bit grey: 0 and 255.
  uint8_t bits[1] = {0x40};  // pixels 0 1 0 0 (MSB first)
  uint8_t bits_rgb[12] = {0, 0, 0, 255, 255, 255, 0, 0, 0, 0, 0, 0};
  pathbuf b1 = tmp_path("grey1.png");
  write_png(b1.s, 4, 1, PNG_COLOR_TYPE_GRAY, 1, PNG_INTERLACE_NONE, bits, NULL, 0, NULL, 0);
  expect_pixels(b1.s, 4, 1, bits_rgb, 4, 0, "1-bit grey PNG");

  // Grey + alpha: composited on white.
  uint8_t ga[8] = {10, 0, 10, 255, 10, 128, 200, 64};
  uint8_t ga_rgb[12];
  for (int i = 0; i < 4; i++)
    for (int c = 0; c < 3; c++) ga_rgb[i * 3 + c] = on_white(ga[i * 2], ga[i * 2 + 1]);
  pathbuf gap = tmp_path("grey_alpha.png");
  write_png(gap.s, 4, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, PNG_INTERLACE_NONE, ga, NULL, 0, NULL, 0);
  expect_pixels(gap.s, 4, 1, ga_rgb, 4, 0, "grey+alpha PNG");
  CHECK(ga_rgb[0] == 255 && ga_rgb[3] == 10);

  // RGBA: a fully transparent pixel hiding red reads as white, not red.
  uint8_t rgba[12] = {255, 0, 0, 0, 0, 0, 255, 255, 0, 200, 0, 100};
  uint8_t rgba_rgb[9] = {
      255, 255, 255, 0, 0, 255, on_white(0, 100), on_white(200, 100), on_white(0, 100)};
  pathbuf ra = tmp_path("rgba.png");
  write_png(ra.s, 3, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, PNG_INTERLACE_NONE, rgba, NULL, 0, NULL, 0);
  expect_pixels(ra.s, 3, 1, rgba_rgb, 3, 0, "RGBA PNG");

  // Palette with tRNS: entry 0 transparent, entry 1 opaque green, entry 2 half-transparent blue.
  png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
  uint8_t trns[3] = {0, 255, 128};
  uint8_t idx[3] = {0, 1, 2};
  uint8_t pal_rgb[9] = {
      255, 255, 255, 0, 255, 0, on_white(0, 128), on_white(0, 128), on_white(255, 128)};
  pathbuf pp = tmp_path("palette.png");
  write_png(pp.s, 3, 1, PNG_COLOR_TYPE_PALETTE, 8, PNG_INTERLACE_NONE, idx, pal, 3, trns, 3);
  expect_pixels(pp.s, 3, 1, pal_rgb, 3, 0, "palette+tRNS PNG");

  // 16-bit RGB: scaled to 8 bits with rounding (v / 257).
  uint8_t s16[12] = {0x00, 0x00, 0xff, 0xff, 0x64, 0x64, 0x80, 0x00, 0x12, 0x34, 0xfe, 0xff};
  uint8_t s16_rgb[6] = {0, 255, 100, 128, 18, 254};
  pathbuf p16 = tmp_path("rgb16.png");
  write_png(p16.s, 2, 1, PNG_COLOR_TYPE_RGB, 16, PNG_INTERLACE_NONE, s16, NULL, 0, NULL, 0);
  expect_pixels(p16.s, 2, 1, s16_rgb, 2, 1, "16-bit PNG");

  // 16-bit grey + alpha, interlaced.
  uint8_t ga16[8] = {0x12, 0x34, 0x00, 0x00, 0x80, 0x80, 0xff, 0xff};
  uint8_t ga16_rgb[6] = {255, 255, 255, 128, 128, 128};
  pathbuf pga16 = tmp_path("ga16.png");
  write_png(pga16.s, 2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 16, PNG_INTERLACE_ADAM7, ga16, NULL, 0, NULL,
            0);
  expect_pixels(pga16.s, 2, 1, ga16_rgb, 2, 0, "16-bit grey+alpha interlaced PNG");
}

static void test_png_hostile(void) {
  image_rgb src = pattern(16, 16);
  pathbuf good = tmp_path("good.png");
  CHECK(vqgpt_image_save_png(&src, good.s) == 0);
  vqgpt_image_free(&src);
  size_t n;
  unsigned char *b = read_all(good.s, &n);
  CHECK(b && n > 60);
  if (!b) return;
  // Cut short: in the signature's wake, inside IHDR, inside IDAT, before IEND, inside IEND.
  size_t cuts[] = {10, 20, 40, n / 2, n - 12, n - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    pathbuf t = tmp_path("trunc.png");
    write_bytes(t.s, b, cuts[i]);
    char label[64];
    snprintf(label, sizeof label, "PNG cut at %zu of %zu bytes", cuts[i], n);
    expect_load_error(t.s, "PNG", label);
  }
  pathbuf t = tmp_path("trunc.png");
  write_bytes(t.s, b, n / 2);
  expect_load_error(t.s, "unexpected end of file", "truncated PNG message");

  // A flipped bit in the pixel data: the IDAT CRC no longer matches.
  unsigned char *c = malloc(n);
  memcpy(c, b, n);
  c[n - 20] ^= 0x10;
  pathbuf crc = tmp_path("crc.png");
  write_bytes(crc.s, c, n);
  expect_load_error(crc.s, "corrupt or truncated PNG", "PNG with a bad CRC");

  // Sizes beyond the limits (IHDR patched, CRC recomputed): refused before decoding.
  uint32_t sizes[][2] = {{IMAGE_MAX_SIDE + 1, 1}, {1, IMAGE_MAX_SIDE + 1}, {16000, 16000}};
  for (int i = 0; i < 3; i++) {
    memcpy(c, b, n);
    put_be32(c + 16, sizes[i][0]);
    put_be32(c + 20, sizes[i][1]);
    put_be32(c + 29, crc32_of(c + 12, 17));
    pathbuf big = tmp_path("big.png");
    write_bytes(big.s, c, n);
    expect_load_error(big.s, "refused (the limits are 16384 per side", "PNG over the size limit");
  }
  // A damaged signature (text-mode transfer turned \r\n into \n).
  memcpy(c, b, n);
  memmove(c + 4, c + 5, n - 5);
  pathbuf sig = tmp_path("sig.png");
  write_bytes(sig.s, c, n - 1);
  expect_load_error(sig.s, "not a PNG or JPEG file (looks like a PNG with a damaged signature)",
                    "damaged signature");
  free(c);
  free(b);
}

static void test_jpeg(void) {
  enum { W = 16, H = 16 };
  uint8_t rgb[W * H * 3], grey[W * H], cmyk[W * H * 4];
  for (int i = 0; i < W * H; i++) {
    int x = i % W, y = i / W;
    rgb[i * 3] = (uint8_t)(x * 16), rgb[i * 3 + 1] = (uint8_t)(y * 16), rgb[i * 3 + 2] = 128;
    grey[i] = (uint8_t)(x * 8 + y * 8);
    // Adobe-style inverted CMYK for pure red: C = 255 (no cyan), M = Y = 0 (full), K = 255.
    cmyk[i * 4] = 255, cmyk[i * 4 + 1] = 0, cmyk[i * 4 + 2] = 0, cmyk[i * 4 + 3] = 255;
  }
  unsigned long n;
  unsigned char *j = make_jpeg(W, H, 3, JCS_RGB, rgb, false, &n);
  pathbuf p = tmp_path("rgb.jpg");
  write_bytes(p.s, j, n);
  expect_pixels(p.s, W, H, rgb, W * H, 12, "RGB JPEG");

  unsigned long ng;
  unsigned char *jg = make_jpeg(W, H, 1, JCS_GRAYSCALE, grey, false, &ng);
  uint8_t grey_rgb[W * H * 3];
  for (int i = 0; i < W * H * 3; i++) grey_rgb[i] = grey[i / 3];
  pathbuf pg = tmp_path("grey.jpg");
  write_bytes(pg.s, jg, ng);
  expect_pixels(pg.s, W, H, grey_rgb, W * H, 6, "grey JPEG");
  free(jg);

  unsigned long nc;
  unsigned char *jc = make_jpeg(W, H, 4, JCS_CMYK, cmyk, false, &nc);
  uint8_t red[W * H * 3];
  for (int i = 0; i < W * H; i++) red[i * 3] = 255, red[i * 3 + 1] = 0, red[i * 3 + 2] = 0;
  pathbuf pc = tmp_path("cmyk.jpg");
  write_bytes(pc.s, jc, nc);
  expect_pixels(pc.s, W, H, red, W * H, 6, "CMYK JPEG");
  free(jc);

  // Progressive; and the same with its first scan (DC, the same bits each time) repeated 600
  // times: a small file that would keep the decoder busy (the limit is 500 scans).
  unsigned long np;
  unsigned char *jp = make_jpeg(W, H, 3, JCS_RGB, rgb, true, &np);
  pathbuf pp = tmp_path("progressive.jpg");
  write_bytes(pp.s, jp, np);
  expect_pixels(pp.s, W, H, rgb, W * H, 12, "progressive JPEG");
  size_t sos1 = 0, sos2 = 0;  // the first two SOS markers (0xff 0xda only occurs as a marker)
  for (size_t i = 2; i + 1 < np && !sos2; i++)
    if (jp[i] == 0xff && jp[i + 1] == 0xda) *(sos1 ? &sos2 : &sos1) = i;
  CHECK(sos1 && sos2);
  size_t scan = sos2 - sos1, many_n = np + 599 * scan;
  unsigned char *many = malloc(many_n);
  memcpy(many, jp, sos1);
  for (int k = 0; k < 600; k++) memcpy(many + sos1 + (size_t)k * scan, jp + sos1, scan);
  memcpy(many + sos1 + 600 * scan, jp + sos2, np - sos2);
  pathbuf pm = tmp_path("scans.jpg");
  write_bytes(pm.s, many, many_n);
  expect_load_error(pm.s, "JPEG with more than 500 scans refused", "JPEG with 600 scans");
  free(many);
  free(jp);

  // Truncated: in the headers, in the scan data, and only the final EOI marker missing.
  size_t sos = 2;
  while (sos + 4 < n && !(j[sos] == 0xff && j[sos + 1] == 0xda))
    sos += 2 + ((size_t)j[sos + 2] << 8 | j[sos + 3]);
  CHECK(sos + 64 < n);
  size_t in_scan = (sos + n) / 2;
  size_t cuts[] = {100, in_scan, n - 2};
  for (size_t i = 0; i < 3; i++) {
    pathbuf t = tmp_path("trunc.jpg");
    write_bytes(t.s, j, cuts[i]);
    char label[64];
    snprintf(label, sizeof label, "JPEG cut at %zu of %lu bytes", cuts[i], n);
    expect_load_error(t.s, "JPEG", label);
  }
  pathbuf t = tmp_path("trunc.jpg");
  write_bytes(t.s, j, in_scan);
  expect_load_error(t.s, "Premature end of JPEG file", "truncated JPEG message");

  // A Huffman table with more than 256 codes (it crashed stb_image) right after SOI.
  size_t dht_len = 2 + 1 + 16 + 272;
  unsigned char *h = malloc(n + 2 + dht_len);
  memcpy(h, j, 2);
  unsigned char *d = h + 2;
  d[0] = 0xff, d[1] = 0xc4, d[2] = (uint8_t)(dht_len >> 8), d[3] = (uint8_t)dht_len, d[4] = 0x00;
  for (int i = 0; i < 16; i++) d[5 + i] = 17;  // 16 * 17 = 272 codes
  for (int i = 0; i < 272; i++) d[21 + i] = (uint8_t)i;
  memcpy(d + 2 + dht_len, j + 2, n - 2);
  pathbuf bad = tmp_path("huffman.jpg");
  write_bytes(bad.s, h, n + 2 + dht_len);
  expect_load_error(bad.s, "Bogus Huffman table", "JPEG with 272 Huffman codes");
  free(h);

  // A frame header claiming 60000 x 60000 pixels: refused before decoding.
  unsigned char *big = malloc(n);
  memcpy(big, j, n);
  size_t sof = 2;
  while (sof + 9 < n && !(big[sof] == 0xff && (big[sof + 1] == 0xc0 || big[sof + 1] == 0xc2)))
    sof += 2 + ((size_t)big[sof + 2] << 8 | big[sof + 3]);
  CHECK(sof + 9 < n);
  if (sof + 9 < n) {
    big[sof + 5] = 60000 >> 8, big[sof + 6] = 60000 & 0xff;  // height
    big[sof + 7] = 60000 >> 8, big[sof + 8] = 60000 & 0xff;  // width
    pathbuf pb = tmp_path("big.jpg");
    write_bytes(pb.s, big, n);
    expect_load_error(pb.s, "JPEG of 60000x60000 pixels refused", "JPEG over the size limit");
  }
  free(big);
  free(j);
}

static void test_other_formats(void) {
  // Softimage PIC (crashed stb_image), also when named .png.
  uint8_t pic[128] = {0x53, 0x80, 0xf6, 0x34};
  memcpy(pic + 88, "PICT", 4);
  pathbuf p = tmp_path("x.png");
  write_bytes(p.s, pic, sizeof pic);
  expect_load_error(p.s, "not a PNG or JPEG file (looks like a Softimage PIC image)",
                    "Softimage PIC");
  // PPM with a negative width (gave a 0x0 image and a division by zero).
  const char ppm[] = "P6 -5 3 255\n";
  pathbuf q = tmp_path("neg.ppm");
  write_bytes(q.s, ppm, sizeof ppm - 1);
  expect_load_error(q.s, "looks like a PNM", "PPM with a negative width");
  const uint8_t gif[] = "GIF89a\x01\x00\x01\x00";
  pathbuf g = tmp_path("a.jpg");
  write_bytes(g.s, gif, sizeof gif - 1);
  expect_load_error(g.s, "looks like a GIF image", "GIF named .jpg");
  pathbuf bmp = tmp_path("a.bmp");
  write_bytes(bmp.s, "BM\x36\0\0\0", 6);
  expect_load_error(bmp.s, "looks like a BMP image", "BMP");
  pathbuf txt = tmp_path("t.png");
  write_bytes(txt.s, "hello\n", 6);
  expect_load_error(txt.s, "looks like text", "text");
  pathbuf bin = tmp_path("b.png");
  write_bytes(bin.s, "\x01\x02\x03", 3);
  expect_load_error(bin.s, "unknown data starting 01 02 03", "binary");
  pathbuf e = tmp_path("empty.png");
  write_bytes(e.s, "", 0);
  expect_load_error(e.s, "empty file", "empty file");
  expect_load_error(tmp_path("missing.png").s, "cannot open", "missing file");
}

static void test_not_regular(void) {
  pathbuf fifo = tmp_path("fifo.png");
  CHECK(mkfifo(fifo.s, 0600) == 0);
  // Would block forever in open() without O_NONBLOCK (ctest's timeout would catch it).
  expect_load_error(fifo.s, "is a named pipe, not a regular file", "FIFO");
  expect_load_error(tmpdir, "is a directory, not a regular file", "directory");
  expect_load_error("/dev/null", "is a character device, not a regular file", "device");
  struct stat st;
  CHECK(vqgpt_open_regular(fifo.s, &st) == -1);
  pathbuf f = tmp_path("plain");
  write_bytes(f.s, "abc", 3);
  int fd = vqgpt_open_regular(f.s, &st);
  CHECK(fd >= 0 && st.st_size == 3);
  if (fd >= 0) close(fd);
  FILE *fp = vqgpt_fopen_regular(f.s, NULL);
  CHECK(fp != NULL && fgetc(fp) == 'a');
  if (fp) fclose(fp);
  unlink(fifo.s);
  unlink(f.s);
}

// ---------------------------------------------------------------------------------------
// Folders

static void save_pattern(const char *path, int w, int h) {
  image_rgb img = pattern(w, h);
  CHECKF(vqgpt_image_save_png(&img, path) == 0, "%s: %s", path, vqgpt_last_error());
  vqgpt_image_free(&img);
}

static void test_folder_links(void) {
  pathbuf root = tmp_path("links");
  pathbuf sub = tmp_path("links/sub");
  CHECK(mkdir(root.s, 0700) == 0 && mkdir(sub.s, 0700) == 0);
  save_pattern(tmp_path("links/a.png").s, 8, 8);
  save_pattern(tmp_path("links/b.png").s, 8, 8);
  save_pattern(tmp_path("links/sub/c.png").s, 8, 8);
  CHECK(symlink(".", tmp_path("links/self").s) == 0);       // self-symlink
  CHECK(symlink("..", tmp_path("links/sub/up").s) == 0);    // back to the root
  CHECK(symlink("loop2", tmp_path("links/loop1").s) == 0);  // a link loop (ELOOP)
  CHECK(symlink("loop1", tmp_path("links/loop2").s) == 0);
  CHECK(symlink("sub", tmp_path("links/zsub").s) == 0);        // a second path to sub
  CHECK(symlink("a.png", tmp_path("links/link.png").s) == 0);  // a second path to a.png
  CHECK(link(tmp_path("links/b.png").s, tmp_path("links/hard.png").s) == 0);
  CHECK(symlink("gone.png", tmp_path("links/broken.png").s) == 0);
  CHECK(mkfifo(tmp_path("links/pipe.png").s, 0600) == 0);
  write_bytes(tmp_path("links/notes.txt").s, "x", 1);
  image_folder f;
  int rc = vqgpt_image_folder_scan(&f, root.s);
  CHECKF(rc == 0, "scan: %s", vqgpt_last_error());
  if (rc) return;
  CHECKF(f.n_images == 3, "%zu images, want 3 (each once)", f.n_images);
  CHECKF(f.n_duplicates == 2, "%zu duplicates, want 2 (link.png, hard.png)", f.n_duplicates);
  for (size_t i = 0; i < f.n_images && f.n_images == 3; i++) {
    const char *want[] = {"links/a.png", "links/b.png", "links/sub/c.png"};
    CHECKF(strstr(f.paths[i], want[i]) != NULL, "path %zu is %s", i, f.paths[i]);
  }
  CHECKF(f.n_classes == 2, "%d classes, want 2 (. and sub)", f.n_classes);
  CHECKF(f.n_skipped == 2, "%zu skipped, want 2 (broken.png, pipe.png)", f.n_skipped);
  for (size_t i = 0; i < f.n_skipped && f.n_skipped == 2; i++) {
    const char *want[] = {"broken.png: cannot open", "pipe.png: is a named pipe"};
    CHECKF(strstr(f.skipped[i], want[i]) != NULL, "skipped %zu: %s", i, f.skipped[i]);
  }
  vqgpt_image_folder_free(&f);
}

// A training set of one image in a new folder `name`, loaded at the image's own size.
static bool load_one_image_set(image_dataset *d, const char *name, const image_rgb *img) {
  char file[256];
  snprintf(file, sizeof file, "%s/a.png", name);
  CHECK(mkdir(tmp_path(name).s, 0700) == 0);
  CHECK(vqgpt_image_save_png(img, tmp_path(file).s) == 0);
  int rc = vqgpt_image_dataset_load(d, tmp_path(name).s, img->h, img->w, img->h);
  CHECKF(rc == 0, "%s", vqgpt_last_error());
  return rc == 0 && d->n == 1;
}

// Training crops at an image's own size are its pixels: the resampling filter is not the
// identity at scale 1, so images already at the size asked for must not go through it.
static void test_same_size_is_exact(void) {
  image_rgb img = pattern(24, 16), out;
  CHECK(vqgpt_image_resize(&out, &img, 24, 16) == 0);
  CHECKF(out.w == 24 && out.h == 16 && !memcmp(out.rgb, img.rgb, (size_t)24 * 16 * 3),
         "a resize to the same size changed the pixels");
  vqgpt_image_free(&out);
  image_dataset d;
  if (load_one_image_set(&d, "own_size", &img)) {
    float x[3 * 16 * 24], want[3 * 16 * 24];
    vqgpt_image_dataset_center_crop(&d, 0, x);
    vqgpt_image_to_tensor(&img, want);
    CHECKF(!memcmp(x, want, sizeof x), "a crop at the image's own size is not its pixels");
    vqgpt_image_dataset_free(&d);
  }
  vqgpt_image_free(&img);
}

// A random crop as large as the image is the image, mirrored about half the time when allowed
// and never when not; both settings make the same draws.
static void test_random_crop_mirroring(void) {
  image_rgb img = pattern(24, 16);
  image_dataset d;
  if (load_one_image_set(&d, "mirror", &img)) {
    enum { N = 3 * 16 * 24 };
    static float x[N], plain[N], mirrored[N];
    vqgpt_image_to_tensor(&img, plain);
    for (int c = 0; c < 3; c++)
      for (int y = 0; y < 16; y++)
        for (int i = 0; i < 24; i++)
          mirrored[(c * 16 + y) * 24 + i] = plain[(c * 16 + y) * 24 + 23 - i];
    uint64_t rng_on = 7, rng_off = 7;
    int n_mirrored = 0, n_other = 0;
    for (int k = 0; k < 64; k++) {
      vqgpt_image_dataset_random_crop(&d, 0, &rng_on, true, x);
      n_mirrored += !memcmp(x, mirrored, sizeof x);
      n_other += memcmp(x, mirrored, sizeof x) && memcmp(x, plain, sizeof x);
      vqgpt_image_dataset_random_crop(&d, 0, &rng_off, false, x);
      CHECKF(!memcmp(x, plain, sizeof x), "draw %d mirrored a crop that may not be", k);
    }
    CHECKF(n_mirrored >= 16 && n_mirrored <= 48 && n_other == 0,
           "%d of 64 crops mirrored, %d neither the image nor its mirror", n_mirrored, n_other);
    CHECKF(rng_on == rng_off, "the two settings made different draws");
    vqgpt_image_dataset_free(&d);
  }
  vqgpt_image_free(&img);
}

static void test_dataset_bad_files(void) {
  // Ten good images and one bad: the bad one is skipped and named.
  pathbuf few = tmp_path("few_bad");
  CHECK(mkdir(few.s, 0700) == 0);
  for (int i = 0; i < 10; i++) {
    char name[64];
    snprintf(name, sizeof name, "few_bad/img%d.png", i);
    save_pattern(tmp_path(name).s, 12 + i, 9);
  }
  uint8_t pic[128] = {0x53, 0x80, 0xf6, 0x34};
  write_bytes(tmp_path("few_bad/pic.png").s, pic, sizeof pic);
  image_dataset d;
  int rc = vqgpt_image_dataset_load(&d, few.s, 8, 0, 0);
  CHECKF(rc == 0, "one bad file of 11: %s", vqgpt_last_error());
  if (rc == 0) {
    CHECKF(d.n == 10 && d.folder.n_images == 10, "%zu images loaded, want 10", d.n);
    CHECKF(d.folder.n_skipped == 1 && strstr(d.folder.skipped[0], "pic.png: not a PNG or JPEG"),
           "skipped: %zu", d.folder.n_skipped);
    for (size_t i = 0; i < d.n; i++) {
      CHECK(strstr(d.folder.paths[i], "pic.png") == NULL);
      CHECK(d.images[i].h == 8 && d.images[i].w >= 8);
      float x[3 * 8 * 8];
      vqgpt_image_dataset_center_crop(&d, i, x);
    }
    vqgpt_image_dataset_free(&d);
  }
  // Mostly bad: a clear error naming the share and a file.
  pathbuf most = tmp_path("most_bad");
  CHECK(mkdir(most.s, 0700) == 0);
  save_pattern(tmp_path("most_bad/good.png").s, 8, 8);
  const char ppm[] = "P6 -5 3 255\n";
  write_bytes(tmp_path("most_bad/neg.png").s, ppm, sizeof ppm - 1);
  write_bytes(tmp_path("most_bad/pic.jpg").s, pic, sizeof pic);
  vqgpt_clear_error();
  rc = vqgpt_image_dataset_load(&d, most.s, 8, 0, 0);
  const char *e = vqgpt_last_error();
  CHECKF(rc == -1, "a folder of 2 bad files in 3 loaded");
  CHECKF(strstr(e, "2 of 3 image files cannot be read (more than 10%)") && strstr(e, "neg.png"),
         "error: %s", e);
  if (rc == 0) vqgpt_image_dataset_free(&d);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vqgpt_test_image_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  test_png_layouts();
  test_png_hostile();
  test_jpeg();
  test_other_formats();
  test_not_regular();
  test_folder_links();
  test_dataset_bad_files();
  test_same_size_is_exact();
  test_random_crop_mirroring();
  nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  return test_finish("test_image");
}

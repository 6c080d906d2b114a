// jpgen_png: libpng behind setjmp, for Swift (see include/jpgen_png.h).
#include "jpgen_png.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

// State shared with the callbacks; lives in the caller's frame, reached through a pointer, so
// nothing the error path needs is held in a register clobbered by longjmp.
typedef struct {
    char *error;
    char warning[JPGEN_PNG_ERROR_SIZE];  // the last warning, appended to an error (it often says why)
    // reading
    const unsigned char *data;
    size_t size;
    size_t position;
    // writing
    unsigned char *buffer;
    size_t length;
    size_t capacity;
    int out_of_memory;
    // owned allocations, freed on the error path
    unsigned char *pixels;
    png_bytep *rows;
} jpgen_state;

static void on_error(png_structp png, png_const_charp message) {
    jpgen_state *state = (jpgen_state *)png_get_error_ptr(png);
    if (state->warning[0]) {
        snprintf(state->error, JPGEN_PNG_ERROR_SIZE, "%s (%s)", message ? message : "libpng error", state->warning);
    } else {
        snprintf(state->error, JPGEN_PNG_ERROR_SIZE, "%s", message ? message : "libpng error");
    }
    png_longjmp(png, 1);
}

// Warnings (e.g. a bad CRC in an ancillary chunk) are not fatal; the last one is kept because
// libpng explains some errors only in a preceding warning ("Image width exceeds user limit").
static void on_warning(png_structp png, png_const_charp message) {
    jpgen_state *state = (jpgen_state *)png_get_error_ptr(png);
    snprintf(state->warning, JPGEN_PNG_ERROR_SIZE, "%s", message ? message : "");
}

static void read_from_memory(png_structp png, png_bytep out, size_t count) {
    jpgen_state *state = (jpgen_state *)png_get_io_ptr(png);
    if (count > state->size - state->position) {
        png_error(png, "unexpected end of file (truncated PNG)");
    }
    memcpy(out, state->data + state->position, count);
    state->position += count;
}

static char *copy_bytes(const char *src, size_t n) {
    char *p = (char *)malloc(n + 1);
    if (p) {
        if (n) memcpy(p, src, n);
        p[n] = 0;
    }
    return p;
}

static void collect_text(png_structp png, png_infop info, jpgen_png_image *out) {
    png_textp text = NULL;
    int count = png_get_text(png, info, &text, NULL);
    if (count <= 0 || !text) return;
    jpgen_png_text *grown = (jpgen_png_text *)realloc(out->texts, sizeof(jpgen_png_text) * (size_t)(out->text_count + count));
    if (!grown) png_error(png, "out of memory reading text chunks");
    out->texts = grown;
    for (int i = 0; i < count; i++) {
        int itxt = text[i].compression == PNG_ITXT_COMPRESSION_NONE || text[i].compression == PNG_ITXT_COMPRESSION_zTXt;
        size_t length = itxt ? text[i].itxt_length : text[i].text_length;
        if (!text[i].text) length = 0;
        jpgen_png_text *t = &out->texts[out->text_count];
        t->key = copy_bytes(text[i].key ? text[i].key : "", text[i].key ? strlen(text[i].key) : 0);
        t->text = copy_bytes(text[i].text ? text[i].text : "", length);
        t->text_length = length;
        t->is_utf8 = itxt;
        if (!t->key || !t->text) png_error(png, "out of memory reading text chunks");
        out->text_count++;
    }
}

void jpgen_png_free_image(jpgen_png_image *image) {
    if (!image) return;
    free(image->pixels);
    for (int i = 0; i < image->text_count; i++) {
        free((void *)image->texts[i].key);
        free((void *)image->texts[i].text);
    }
    free(image->texts);
    memset(image, 0, sizeof(*image));
}

// Walks the chunk list before libpng sees it: every chunk must fit in the file and IEND must be
// present. libpng allocates an ancillary chunk's declared length before reading it, so a forged
// 1.9 GB zTXt length in a 300-byte file was a 1.9 GB malloc (found by Fuzz/PNGDecodeFuzz); and a
// file cut short is refused here with a clear message rather than half-decoded.
static int check_chunk_lengths(const unsigned char *data, size_t size, char error[JPGEN_PNG_ERROR_SIZE]) {
    size_t position = 8;
    while (position + 12 <= size) {
        uint32_t length = (uint32_t)data[position] << 24 | (uint32_t)data[position + 1] << 16 |
                          (uint32_t)data[position + 2] << 8 | (uint32_t)data[position + 3];
        const unsigned char *type = data + position + 4;
        if (length > 0x7FFFFFFFu || (size_t)length > size - position - 12) {
            snprintf(error, JPGEN_PNG_ERROR_SIZE,
                     "truncated PNG: chunk at byte %zu declares %u bytes but only %zu remain",
                     position, length, size - position - 12);
            return -1;
        }
        if (memcmp(type, "IEND", 4) == 0) return 0;
        position += 12 + (size_t)length;
    }
    snprintf(error, JPGEN_PNG_ERROR_SIZE, "truncated PNG: the file ends before the IEND chunk");
    return -1;
}

int jpgen_png_decode_rgb8(const unsigned char *data, size_t size, uint32_t max_dimension,
                          jpgen_png_image *out, char error[JPGEN_PNG_ERROR_SIZE]) {
    memset(out, 0, sizeof(*out));
    error[0] = 0;
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        snprintf(error, JPGEN_PNG_ERROR_SIZE, "not a PNG file (bad signature)");
        return -1;
    }
    if (check_chunk_lengths(data, size, error) != 0) return -1;
    jpgen_state state;
    memset(&state, 0, sizeof(state));
    state.error = error;
    state.data = data;
    state.size = size;
    jpgen_state *volatile sp = &state;
    jpgen_png_image *volatile op = out;

    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, on_error, on_warning);
    if (!png) {
        snprintf(error, JPGEN_PNG_ERROR_SIZE, "cannot create libpng read struct");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    png_infop end_info = png_create_info_struct(png);
    if (!info || !end_info) {
        png_destroy_read_struct(&png, info ? &info : NULL, end_info ? &end_info : NULL);
        snprintf(error, JPGEN_PNG_ERROR_SIZE, "cannot create libpng info struct");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        free(sp->rows);
        free(sp->pixels);
        op->pixels = NULL;
        jpgen_png_free_image(op);
        png_destroy_read_struct(&png, &info, &end_info);
        return -1;
    }
    png_set_read_fn(png, &state, read_from_memory);
    png_set_user_limits(png, max_dimension, max_dimension);
    // Bound every ancillary-chunk allocation (text, iCCP; also their decompressed size): libpng
    // allocates a chunk's declared length before reading it, and Debian builds it unlimited, so a
    // forged 2 GB tEXt length would otherwise be a 2 GB malloc (found by Fuzz/PNGDecodeFuzz).
    png_set_chunk_malloc_max(png, 16u << 20);
    png_set_chunk_cache_max(png, 1000);
    png_read_info(png, info);

    uint32_t width = png_get_image_width(png, info);
    uint32_t height = png_get_image_height(png, info);
    int color_type = png_get_color_type(png, info);
    int bit_depth = png_get_bit_depth(png, info);
    out->color_type = color_type;
    out->bit_depth = bit_depth;

    // To RGB8: as PIL's Image.convert("RGB") does (alpha dropped, not composited).
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (bit_depth == 16) png_set_scale_16(png);
    if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_strip_alpha(png);  // also drops tRNS-derived alpha
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)width * 3) {
        png_error(png, "unsupported PNG pixel format after conversion to RGB8");
    }

    size_t stride = (size_t)width * 3;
    state.pixels = (unsigned char *)malloc(stride * height + 1);
    state.rows = (png_bytep *)malloc(sizeof(png_bytep) * (height ? height : 1));
    if (!state.pixels || !state.rows) png_error(png, "out of memory for pixels");
    for (uint32_t y = 0; y < height; y++) state.rows[y] = state.pixels + stride * y;
    png_read_image(png, state.rows);
    png_read_end(png, end_info);

    collect_text(png, info, out);
    collect_text(png, end_info, out);
    free(state.rows);
    state.rows = NULL;
    out->pixels = state.pixels;
    state.pixels = NULL;
    out->width = width;
    out->height = height;
    png_destroy_read_struct(&png, &info, &end_info);
    return 0;
}

static void write_to_memory(png_structp png, png_bytep data, size_t count) {
    jpgen_state *state = (jpgen_state *)png_get_io_ptr(png);
    if (count > state->capacity - state->length) {
        size_t capacity = state->capacity ? state->capacity : 65536;
        while (capacity - state->length < count) capacity *= 2;
        unsigned char *grown = (unsigned char *)realloc(state->buffer, capacity);
        if (!grown) png_error(png, "out of memory writing PNG");
        state->buffer = grown;
        state->capacity = capacity;
    }
    memcpy(state->buffer + state->length, data, count);
    state->length += count;
}

static void flush_memory(png_structp png) { (void)png; }

int jpgen_png_encode_rgb8(const unsigned char *pixels, uint32_t width, uint32_t height,
                          const jpgen_png_text *texts, int text_count, int compression_level,
                          unsigned char **out, size_t *out_size, char error[JPGEN_PNG_ERROR_SIZE]) {
    *out = NULL;
    *out_size = 0;
    error[0] = 0;
    jpgen_state state;
    memset(&state, 0, sizeof(state));
    state.error = error;
    jpgen_state *volatile sp = &state;
    png_textp volatile chunks = NULL;

    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &state, on_error, on_warning);
    if (!png) {
        snprintf(error, JPGEN_PNG_ERROR_SIZE, "cannot create libpng write struct");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(error, JPGEN_PNG_ERROR_SIZE, "cannot create libpng info struct");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        free(sp->buffer);
        free(sp->rows);
        free(chunks);
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_set_write_fn(png, &state, write_to_memory, flush_memory);
    png_set_compression_level(png, compression_level);
    png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (text_count > 0) {
        chunks = (png_textp)calloc((size_t)text_count, sizeof(png_text));
        if (!chunks) png_error(png, "out of memory for text chunks");
        for (int i = 0; i < text_count; i++) {
            chunks[i].key = (png_charp)texts[i].key;
            chunks[i].text = (png_charp)texts[i].text;
            if (texts[i].is_utf8) {
                chunks[i].compression = PNG_ITXT_COMPRESSION_NONE;
                chunks[i].itxt_length = texts[i].text_length;
                chunks[i].lang = (png_charp) "";
                chunks[i].lang_key = (png_charp) "";
            } else {
                chunks[i].compression = PNG_TEXT_COMPRESSION_NONE;
                chunks[i].text_length = texts[i].text_length;
            }
        }
        png_set_text(png, info, chunks, text_count);
    }
    png_write_info(png, info);
    size_t stride = (size_t)width * 3;
    state.rows = (png_bytep *)malloc(sizeof(png_bytep) * (height ? height : 1));
    if (!state.rows) png_error(png, "out of memory for rows");
    for (uint32_t y = 0; y < height; y++) state.rows[y] = (png_bytep)(pixels + stride * y);
    png_write_image(png, state.rows);
    png_write_end(png, NULL);

    free(state.rows);
    free(chunks);
    png_destroy_write_struct(&png, &info);
    *out = state.buffer;
    *out_size = state.length;
    return 0;
}

void jpgen_png_free(void *p) { free(p); }

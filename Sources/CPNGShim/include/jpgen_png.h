// jpgen_png: a small C layer over libpng for the Imaging module.
//
// libpng reports errors by longjmp to a setjmp point in the caller; Swift cannot call setjmp,
// so every libpng call happens inside these C functions, which set the jump point themselves and
// turn a libpng error into a return code plus a message. No pointer escapes on failure.
#ifndef JPGEN_PNG_H
#define JPGEN_PNG_H

#include <stddef.h>
#include <stdint.h>

#define JPGEN_PNG_ERROR_SIZE 256

typedef struct {
    const char *key;        // Latin-1 keyword, 1-79 bytes
    const char *text;       // UTF-8 (is_utf8 = 1, written as iTXt) or Latin-1 bytes (tEXt)
    size_t text_length;
    int is_utf8;
} jpgen_png_text;

typedef struct {
    uint32_t width;
    uint32_t height;
    unsigned char *pixels;  // RGB8, row-major, width * height * 3 bytes (free with jpgen_png_free_image)
    int text_count;
    jpgen_png_text *texts;  // keys and texts owned by this struct
    int color_type;         // of the file: PNG_COLOR_TYPE_*
    int bit_depth;          // of the file
} jpgen_png_image;

/// Decodes a PNG held in memory to RGB8 (palette/grey expanded, 16-bit scaled, alpha dropped),
/// with its tEXt/zTXt/iTXt chunks. Returns 0 on success, else -1 with `error` filled.
/// Images wider or taller than max_dimension are refused before any pixel memory is allocated.
int jpgen_png_decode_rgb8(const unsigned char *data, size_t size, uint32_t max_dimension,
                          jpgen_png_image *out, char error[JPGEN_PNG_ERROR_SIZE]);

void jpgen_png_free_image(jpgen_png_image *image);

/// Encodes RGB8 pixels (width * height * 3 bytes) as a PNG in memory, with text chunks
/// (iTXt when is_utf8, else tEXt) before the image data. On success returns 0 and sets *out and
/// *out_size (free *out with jpgen_png_free); else -1 with `error` filled.
int jpgen_png_encode_rgb8(const unsigned char *pixels, uint32_t width, uint32_t height,
                          const jpgen_png_text *texts, int text_count, int compression_level,
                          unsigned char **out, size_t *out_size, char error[JPGEN_PNG_ERROR_SIZE]);

void jpgen_png_free(void *p);

#endif

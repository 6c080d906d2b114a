// libFuzzer entry point for the PNG decoder of the Imaging module (Sources/CPNGShim/jpgen_png.c):
// every input must decode or return -1 with a message; a crash or sanitizer report is a finding.
// Built by `make fuzz-png` with clang -fsanitize=fuzzer,address; not part of the package.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "jpgen_png.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    jpgen_png_image image;
    char error[JPGEN_PNG_ERROR_SIZE];
    // A small dimension limit keeps each run cheap (the library uses 16384).
    if (jpgen_png_decode_rgb8(data, size, 512, &image, error) == 0) {
        volatile unsigned sum = 0;
        size_t n = (size_t)image.width * image.height * 3;
        for (size_t i = 0; i < n; i += 97) sum += image.pixels[i];
        for (int i = 0; i < image.text_count; i++) sum += (unsigned)strlen(image.texts[i].key) + (unsigned)image.texts[i].text_length;
        jpgen_png_free_image(&image);
    } else if (error[0] == 0) {
        __builtin_trap();  // a failure must say why
    }
    return 0;
}

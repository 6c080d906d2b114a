// SHA-256 block compression with the x86 SHA extensions (SHA-NI), when the CPU has them.
#ifndef JPGEN_CSHA256_H
#define JPGEN_CSHA256_H
#include <stddef.h>
#include <stdint.h>

// 1 when this CPU has the SHA, SSSE3 and SSE4.1 instructions the fast path uses, else 0.
int jpgen_sha256_hw_available(void);

// Compresses `blocks` 64-byte blocks of `data` into `state` (a, b, ..., h). Only call when available.
void jpgen_sha256_hw_blocks(uint32_t state[8], const uint8_t *data, size_t blocks);

#endif

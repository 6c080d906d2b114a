// The Winograd input and output transforms of Conv2dWinograd.swift with AVX-512, 16 tiles of one
// channel's tile row at a time (lanes = tiles). The Swift versions run on 128-bit vectors (the
// Kernels module is not built for AVX-512) and gather each tile's columns with scalar loads and
// stores; the input transform was 2% of an SDXL UNet step, a third as long as the products it feeds.
//
// For F(m x m, 3 x 3), alpha = m + 2, tile l of the row covers input columns m (tx0 + l) - 1 + j,
// j < alpha. Each input row of the tile row is loaded once (masked: zero outside the image), and
// its alpha column phases are taken apart with two-source permutes: phase j < m is every m-th
// value from j, phases m and m + 1 are phases 0 and 1 one tile on. The transform is B^T d B, with
// the arithmetic of winogradInput2/4 in Conv2dWinograd.swift, in the same order. The output
// transform A^T M A (winogradOutput2/4, same order) is interleaved back into the tiles' m columns
// of each output row with two rounds of permutes.
#include "ckernels.h"
#include "unroll.h"

#if defined(__x86_64__)
#include <immintrin.h>

// B^T d for F(4, 3) along p[0], p[s], ..., p[5s] (winogradInput4).
__attribute__((target("avx512f")))
static inline void input4(__m512 *p, int s) {
    __m512 d0 = p[0], d1 = p[s], d2 = p[2 * s], d3 = p[3 * s], d4 = p[4 * s], d5 = p[5 * s];
    __m512 four = _mm512_set1_ps(4.f), five = _mm512_set1_ps(5.f), two = _mm512_set1_ps(2.f);
    __m512 e = _mm512_sub_ps(d4, _mm512_mul_ps(four, d2)), f = _mm512_sub_ps(d3, _mm512_mul_ps(four, d1));
    __m512 g = _mm512_sub_ps(d4, d2), h = _mm512_mul_ps(two, _mm512_sub_ps(d3, d1));
    p[0] = _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(four, d0), _mm512_mul_ps(five, d2)), d4);
    p[s] = _mm512_add_ps(e, f);
    p[2 * s] = _mm512_sub_ps(e, f);
    p[3 * s] = _mm512_add_ps(g, h);
    p[4 * s] = _mm512_sub_ps(g, h);
    p[5 * s] = _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(four, d1), _mm512_mul_ps(five, d3)), d5);
}

// B^T d for F(2, 3) (winogradInput2).
__attribute__((target("avx512f")))
static inline void input2(__m512 *p, int s) {
    __m512 d0 = p[0], d1 = p[s], d2 = p[2 * s], d3 = p[3 * s];
    p[0] = _mm512_sub_ps(d0, d2);
    p[s] = _mm512_add_ps(d1, d2);
    p[2 * s] = _mm512_sub_ps(d2, d1);
    p[3 * s] = _mm512_sub_ps(d1, d3);
}

// The alpha column phases of one input row for 16 tiles: d[j] lane l = row[x0 + m l + j], zero where
// the column is outside 0 ..< w (or the whole row, when y is outside the image).
__attribute__((target("avx512f")))
static inline void row_phases(const float *row, long x0, long w, int m, __m512 *d) {
    // The row's values x0 .. x0 + 16 m + 2 (five or three vectors), masked to the image.
    __m512 b[5];
    int vectors = m == 4 ? 5 : 3;
    UNROLL
    for (int v = 0; v < 5; v++) {
        if (v >= vectors) break;
        long first = x0 + 16 * v;
        long lo = first < 0 ? -first : 0, hi = w - first < 16 ? w - first : 16;
        __mmask16 mask = hi <= lo ? 0 : (__mmask16)((((1u << (hi - lo)) - 1u) << lo) & 0xFFFFu);
        b[v] = _mm512_maskz_loadu_ps(mask, row + first);
    }
    if (m == 4) {
        // Lanes 0..7: tile l's value j (j = p or p + 1) for tiles 0..7 from b0:b1, 8..15 from b2:b3.
        const __m512i i01 = _mm512_set_epi32(29, 25, 21, 17, 13, 9, 5, 1, 28, 24, 20, 16, 12, 8, 4, 0);
        const __m512i i23 = _mm512_set_epi32(31, 27, 23, 19, 15, 11, 7, 3, 30, 26, 22, 18, 14, 10, 6, 2);
        __m512 lo01 = _mm512_permutex2var_ps(b[0], i01, b[1]), hi01 = _mm512_permutex2var_ps(b[2], i01, b[3]);
        __m512 lo23 = _mm512_permutex2var_ps(b[0], i23, b[1]), hi23 = _mm512_permutex2var_ps(b[2], i23, b[3]);
        d[0] = _mm512_shuffle_f32x4(lo01, hi01, 0x44);
        d[1] = _mm512_shuffle_f32x4(lo01, hi01, 0xEE);
        d[2] = _mm512_shuffle_f32x4(lo23, hi23, 0x44);
        d[3] = _mm512_shuffle_f32x4(lo23, hi23, 0xEE);
        // Phases 4 and 5: phases 0 and 1 one tile on; tile 16's values are b4's lanes 0 and 1.
        d[4] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(b[4]), _mm512_castps_si512(d[0]), 1));
        __m512 next1 = _mm512_permutexvar_ps(_mm512_set1_epi32(1), b[4]);
        d[5] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(next1), _mm512_castps_si512(d[1]), 1));
    } else {
        const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
        d[0] = _mm512_permutex2var_ps(b[0], even, b[1]);
        d[1] = _mm512_permutex2var_ps(b[0], odd, b[1]);
        d[2] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(b[2]), _mm512_castps_si512(d[0]), 1));
        __m512 next1 = _mm512_permutexvar_ps(_mm512_set1_epi32(1), b[2]);
        d[3] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(next1), _mm512_castps_si512(d[1]), 1));
    }
}

__attribute__((target("avx512f")))
void jpgen_winograd_input_tiles(const float *plane, long h, long w, int m, long ty, long tx0, long count,
                                float *dst, long stride) {
    int alpha = m + 2;
    __m512 d[36];
    long x0 = m * tx0 - 1;
    for (int i = 0; i < alpha; i++) {
        long y = m * ty - 1 + i;
        if (y < 0 || y >= h) {
            for (int j = 0; j < alpha; j++) d[i * alpha + j] = _mm512_setzero_ps();
        } else {
            row_phases(plane + y * w, x0, w, m, d + i * alpha);
        }
    }
    if (m == 4) {
        UNROLL
        for (int j = 0; j < 6; j++) input4(d + j, 6);
        UNROLL
        for (int i = 0; i < 6; i++) input4(d + i * 6, 1);
    } else {
        UNROLL
        for (int j = 0; j < 4; j++) input2(d + j, 4);
        UNROLL
        for (int i = 0; i < 4; i++) input2(d + i * 4, 1);
    }
    __mmask16 live = count >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1u);
    for (int q = 0; q < alpha * alpha; q++) _mm512_mask_storeu_ps(dst + q * stride, live, d[q]);
}
// A^T m for F(4, 3) along p[0], p[s], ..., p[5s] into p[0], ..., p[3s] (winogradOutput4).
__attribute__((target("avx512f")))
static inline void output4(__m512 *p, int s) {
    __m512 m0 = p[0], m1 = p[s], m2 = p[2 * s], m3 = p[3 * s], m4 = p[4 * s], m5 = p[5 * s];
    __m512 a = _mm512_add_ps(m1, m2), b = _mm512_sub_ps(m1, m2), c = _mm512_add_ps(m3, m4), d = _mm512_sub_ps(m3, m4);
    p[0] = _mm512_add_ps(_mm512_add_ps(m0, a), c);
    p[s] = _mm512_add_ps(b, _mm512_mul_ps(_mm512_set1_ps(2.f), d));
    p[2 * s] = _mm512_add_ps(a, _mm512_mul_ps(_mm512_set1_ps(4.f), c));
    p[3 * s] = _mm512_add_ps(_mm512_add_ps(b, _mm512_mul_ps(_mm512_set1_ps(8.f), d)), m5);
}

// A^T m for F(2, 3) (winogradOutput2).
__attribute__((target("avx512f")))
static inline void output2(__m512 *p, int s) {
    __m512 m0 = p[0], m1 = p[s], m2 = p[2 * s], m3 = p[3 * s];
    p[0] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
    p[s] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
}

// Stores `n` floats (n <= 16 * vectors) of v[0], v[1], ... at dst.
__attribute__((target("avx512f")))
static inline void store_span(float *dst, const __m512 *v, int vectors, long n) {
    for (int i = 0; i < vectors && n > 0; i++, n -= 16, dst += 16) {
        __mmask16 mask = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
        _mm512_mask_storeu_ps(dst, mask, v[i]);
    }
}

__attribute__((target("avx512f")))
void jpgen_winograd_output_tiles(const float *mm, long ldm, int m, float bias, long count, float *plane, long h,
                                 long w, long ty, long tx0) {
    int alpha = m + 2;
    __m512 v[36];
    for (int q = 0; q < alpha * alpha; q++) v[q] = _mm512_loadu_ps(mm + q * ldm);
    if (m == 4) {
        UNROLL
        for (int j = 0; j < 6; j++) output4(v + j, 6);
        UNROLL
        for (int i = 0; i < 4; i++) output4(v + i * 6, 1);
    } else {
        UNROLL
        for (int j = 0; j < 4; j++) output2(v + j, 4);
        UNROLL
        for (int i = 0; i < 2; i++) output2(v + i * 4, 1);
    }
    __m512 b = _mm512_set1_ps(bias);
    long x0 = m * tx0, rows = h - m * ty < m ? h - m * ty : m;
    long n = w - x0 < m * count ? w - x0 : m * count;   // this row's columns of these tiles
    for (long i = 0; i < rows; i++) {
        __m512 *y = v + i * alpha;   // y[j] lane l: out[m ty + i, m (tx0 + l) + j]
        for (int j = 0; j < m; j++) y[j] = _mm512_add_ps(y[j], b);
        __m512 out[4];
        // lo / hi interleave lanes 0..7 / 8..15 of two vectors: [a0, b0, a1, b1, ...].
        const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
        if (m == 4) {
            // Interleaved into out[4l + j] = y[j][l]: pairs (0, 1) and (2, 3) first, then the pairs.
            const __m512i q0 = _mm512_set_epi32(23, 22, 7, 6, 21, 20, 5, 4, 19, 18, 3, 2, 17, 16, 1, 0);
            const __m512i q1 = _mm512_set_epi32(31, 30, 15, 14, 29, 28, 13, 12, 27, 26, 11, 10, 25, 24, 9, 8);
            __m512 e = _mm512_permutex2var_ps(y[0], lo, y[1]), f = _mm512_permutex2var_ps(y[2], lo, y[3]);
            __m512 e2 = _mm512_permutex2var_ps(y[0], hi, y[1]), f2 = _mm512_permutex2var_ps(y[2], hi, y[3]);
            out[0] = _mm512_permutex2var_ps(e, q0, f);
            out[1] = _mm512_permutex2var_ps(e, q1, f);
            out[2] = _mm512_permutex2var_ps(e2, q0, f2);
            out[3] = _mm512_permutex2var_ps(e2, q1, f2);
            store_span(plane + (m * ty + i) * w + x0, out, 4, n);
        } else {
            out[0] = _mm512_permutex2var_ps(y[0], lo, y[1]);
            out[1] = _mm512_permutex2var_ps(y[0], hi, y[1]);
            store_span(plane + (m * ty + i) * w + x0, out, 2, n);
        }
    }
}
#else
void jpgen_winograd_output_tiles(const float *mm, long ldm, int m, float bias, long count, float *plane, long h,
                                 long w, long ty, long tx0) {
    (void)mm; (void)ldm; (void)m; (void)bias; (void)count; (void)plane; (void)h; (void)w; (void)ty; (void)tx0;
}

void jpgen_winograd_input_tiles(const float *plane, long h, long w, int m, long ty, long tx0, long count,
                                float *dst, long stride) {
    (void)plane; (void)h; (void)w; (void)m; (void)ty; (void)tx0; (void)count; (void)dst; (void)stride;
}
#endif

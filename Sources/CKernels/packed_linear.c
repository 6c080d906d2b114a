// nn.Linear with the weight packed once, at load time, into the layout the inner kernel reads.
//
// cblas_sgemm repacks the weight on every call. For the text encoders (77 tokens against 768x3072
// weights) that copy costs about as much as the arithmetic, so the weight is packed once here:
// panels of 16 output features, each stored k-major ([k][16]), the last panel zero-padded. The
// input rows are packed per call into blocks of 6 rows, also k-major. The inner kernel keeps a
// 6x16 tile of the output in twelve 8-lane registers and walks k in blocks of 256, so that a
// weight block (16 KB) stays in L1 while every row block passes over it.
#include "ckernels.h"

#include <string.h>

enum { NR = 16, MR = 6, KC = 256, MC = 192, QB = 4 };

long jpgen_packed_linear_floats(long n, long k) {
    return ((n + NR - 1) / NR) * NR * k;
}

long jpgen_packed_linear_panels(long n) {
    return (n + NR - 1) / NR;
}

void jpgen_pack_linear_weight(const float *w, long n, long k, float *packed) {
    long panels = (n + NR - 1) / NR;
    for (long q = 0; q < panels; q++) {
        float *dst = packed + q * k * NR;
        long cols = n - q * NR < NR ? n - q * NR : NR;
        for (long kk = 0; kk < k; kk++) {
            for (long j = 0; j < cols; j++) dst[kk * NR + j] = w[(q * NR + j) * k + kk];
            for (long j = cols; j < NR; j++) dst[kk * NR + j] = 0.f;
        }
    }
}

void jpgen_unpack_linear_weight(const float *packed, long n, long k, float *w) {
    for (long col = 0; col < n; col++) {
        const float *src = packed + (col / NR) * k * NR + col % NR;
        for (long kk = 0; kk < k; kk++) w[col * k + kk] = src[kk * NR];
    }
}

long jpgen_packed_rows_floats(long m, long k) {
    return ((m + MR - 1) / MR) * MR * k;
}

void jpgen_pack_linear_rows(const float *a, long m, long k, float *packed) {
    long blocks = (m + MR - 1) / MR;
    for (long b = 0; b < blocks; b++) {
        float *dst = packed + b * k * MR;
        long rows = m - b * MR < MR ? m - b * MR : MR;
        for (long kk = 0; kk < k; kk++) {
            for (long r = 0; r < rows; r++) dst[kk * MR + r] = a[(b * MR + r) * k + kk];
            for (long r = rows; r < MR; r++) dst[kk * MR + r] = 0.f;
        }
    }
}

// c[rows, cols] += a_block[kc][MR] . w_block[kc][NR] (only the valid rows/cols are written).
static void tile_portable(const float *a, const float *w, long kc, float *c, long ldc, long rows, long cols) {
    float acc[MR][NR];
    memset(acc, 0, sizeof acc);
    for (long kk = 0; kk < kc; kk++) {
        for (int r = 0; r < MR; r++) {
            float x = a[kk * MR + r];
            for (int j = 0; j < NR; j++) acc[r][j] += x * w[kk * NR + j];
        }
    }
    for (long r = 0; r < rows; r++)
        for (long j = 0; j < cols; j++) c[r * ldc + j] += acc[r][j];
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2,fma")))
static void tile_avx2(const float *a, const float *w, long kc, float *c, long ldc, long rows, long cols) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (long kk = 0; kk < kc; kk++) {
        __m256 w0 = _mm256_loadu_ps(w + kk * NR), w1 = _mm256_loadu_ps(w + kk * NR + 8);
        const float *x = a + kk * MR;
        __m256 b;
        b = _mm256_broadcast_ss(x + 0); c00 = _mm256_fmadd_ps(b, w0, c00); c01 = _mm256_fmadd_ps(b, w1, c01);
        b = _mm256_broadcast_ss(x + 1); c10 = _mm256_fmadd_ps(b, w0, c10); c11 = _mm256_fmadd_ps(b, w1, c11);
        b = _mm256_broadcast_ss(x + 2); c20 = _mm256_fmadd_ps(b, w0, c20); c21 = _mm256_fmadd_ps(b, w1, c21);
        b = _mm256_broadcast_ss(x + 3); c30 = _mm256_fmadd_ps(b, w0, c30); c31 = _mm256_fmadd_ps(b, w1, c31);
        b = _mm256_broadcast_ss(x + 4); c40 = _mm256_fmadd_ps(b, w0, c40); c41 = _mm256_fmadd_ps(b, w1, c41);
        b = _mm256_broadcast_ss(x + 5); c50 = _mm256_fmadd_ps(b, w0, c50); c51 = _mm256_fmadd_ps(b, w1, c51);
    }
    __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    if (rows == MR && cols == NR) {
        for (int r = 0; r < MR; r++) {
            float *row = c + r * ldc;
            _mm256_storeu_ps(row, _mm256_add_ps(_mm256_loadu_ps(row), acc[r][0]));
            _mm256_storeu_ps(row + 8, _mm256_add_ps(_mm256_loadu_ps(row + 8), acc[r][1]));
        }
        return;
    }
    float t[MR][NR];
    for (int r = 0; r < MR; r++) {
        _mm256_storeu_ps(t[r], acc[r][0]);
        _mm256_storeu_ps(t[r] + 8, acc[r][1]);
    }
    for (long r = 0; r < rows; r++)
        for (long j = 0; j < cols; j++) c[r * ldc + j] += t[r][j];
}

// Two row blocks (a0, a1: 12 rows) by two panels (w0, w1: 32 features) with AVX-512: 24 zmm
// accumulators. A missing second block or panel is passed as the first again; rows and cols say
// what is stored (the features of a panel past cols through masks).
__attribute__((target("avx512f")))
static void tile_avx512(const float *a0, const float *a1, const float *w0, const float *w1, long kc,
                        float *c, long ldc, long rows, long cols) {
    __m512 acc[2 * MR][2];
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    __m512 c60 = c00, c61 = c00, c70 = c00, c71 = c00, c80 = c00, c81 = c00;
    __m512 c90 = c00, c91 = c00, cA0 = c00, cA1 = c00, cB0 = c00, cB1 = c00;
    for (long kk = 0; kk < kc; kk++) {
        __m512 p0 = _mm512_loadu_ps(w0 + kk * NR), p1 = _mm512_loadu_ps(w1 + kk * NR), x;
        const float *x0 = a0 + kk * MR, *x1 = a1 + kk * MR;
#define ROW(src, acc0, acc1) x = _mm512_set1_ps(src); acc0 = _mm512_fmadd_ps(x, p0, acc0); acc1 = _mm512_fmadd_ps(x, p1, acc1);
        ROW(x0[0], c00, c01) ROW(x0[1], c10, c11) ROW(x0[2], c20, c21)
        ROW(x0[3], c30, c31) ROW(x0[4], c40, c41) ROW(x0[5], c50, c51)
        ROW(x1[0], c60, c61) ROW(x1[1], c70, c71) ROW(x1[2], c80, c81)
        ROW(x1[3], c90, c91) ROW(x1[4], cA0, cA1) ROW(x1[5], cB0, cB1)
#undef ROW
    }
    acc[0][0] = c00; acc[0][1] = c01; acc[1][0] = c10; acc[1][1] = c11; acc[2][0] = c20; acc[2][1] = c21;
    acc[3][0] = c30; acc[3][1] = c31; acc[4][0] = c40; acc[4][1] = c41; acc[5][0] = c50; acc[5][1] = c51;
    acc[6][0] = c60; acc[6][1] = c61; acc[7][0] = c70; acc[7][1] = c71; acc[8][0] = c80; acc[8][1] = c81;
    acc[9][0] = c90; acc[9][1] = c91; acc[10][0] = cA0; acc[10][1] = cA1; acc[11][0] = cB0; acc[11][1] = cB1;
    __mmask16 m0 = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1u);
    __mmask16 m1 = cols >= 32 ? (__mmask16)0xFFFF : cols <= 16 ? (__mmask16)0 : (__mmask16)((1u << (cols - 16)) - 1u);
    for (long r = 0; r < rows; r++) {
        float *row = c + r * ldc;
        _mm512_mask_storeu_ps(row, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, row), acc[r][0]));
        _mm512_mask_storeu_ps(row + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, row + 16), acc[r][1]));
    }
}
#endif

void jpgen_packed_linear(const float *packed_rows, long m, long k, const float *packed_weight, long n,
                         const float *bias, float *c, long panel_begin, long panel_end) {
    long col_begin = panel_begin * NR, col_end = panel_end * NR < n ? panel_end * NR : n;
    if (col_begin >= col_end || m <= 0) return;
    for (long i = 0; i < m; i++) {
        float *row = c + i * n;
        if (bias) memcpy(row + col_begin, bias + col_begin, (size_t)(col_end - col_begin) * sizeof(float));
        else memset(row + col_begin, 0, (size_t)(col_end - col_begin) * sizeof(float));
    }
    if (k <= 0) return;
    long blocks = (m + MR - 1) / MR;
#if defined(__x86_64__)
    if (jpgen_ckernels_avx512()) {
        // Pairs of row blocks by pairs of panels (12 x 32 tiles), same blocking as below.
        for (long b0 = 0; b0 < blocks; b0 += MC / MR) {
            long b1 = b0 + MC / MR < blocks ? b0 + MC / MR : blocks;
            for (long q0 = panel_begin; q0 < panel_end; q0 += QB) {
                long q1 = q0 + QB < panel_end ? q0 + QB : panel_end;
                for (long k0 = 0; k0 < k; k0 += KC) {
                    long kc = k - k0 < KC ? k - k0 : KC;
                    for (long q = q0; q < q1; q += 2) {
                        int pair = q + 1 < q1;
                        const float *w0 = packed_weight + (q * k + k0) * NR;
                        const float *w1 = pair ? w0 + k * NR : w0;
                        long cols = n - q * NR < (pair ? 2 : 1) * NR ? n - q * NR : (pair ? 2 : 1) * NR;
                        for (long b = b0; b < b1; b += 2) {
                            const float *a0 = packed_rows + (b * k + k0) * MR;
                            const float *a1 = b + 1 < b1 ? a0 + k * MR : a0;
                            long rows = m - b * MR < (b + 1 < b1 ? 2 : 1) * MR ? m - b * MR : (b + 1 < b1 ? 2 : 1) * MR;
                            tile_avx512(a0, a1, w0, w1, kc, c + b * MR * n + q * NR, n, rows, cols);
                        }
                    }
                }
            }
        }
        return;
    }
#endif
    void (*tile)(const float *, const float *, long, float *, long, long, long) = tile_portable;
#if defined(__x86_64__)
    if (jpgen_ckernels_avx2()) tile = tile_avx2;
#endif
    // Row blocks of MC rows, then groups of QB panels, then k blocks: the output tile of a group
    // (MC x 64) and the rows' k block (MC x 256) stay in L2, a panel's k block in L1.
    for (long b0 = 0; b0 < blocks; b0 += MC / MR) {
        long b1 = b0 + MC / MR < blocks ? b0 + MC / MR : blocks;
        for (long q0 = panel_begin; q0 < panel_end; q0 += QB) {
            long q1 = q0 + QB < panel_end ? q0 + QB : panel_end;
            for (long k0 = 0; k0 < k; k0 += KC) {
                long kc = k - k0 < KC ? k - k0 : KC;
                for (long q = q0; q < q1; q++) {
                    const float *wq = packed_weight + (q * k + k0) * NR;
                    long cols = n - q * NR < NR ? n - q * NR : NR;
                    for (long b = b0; b < b1; b++) {
                        long rows = m - b * MR < MR ? m - b * MR : MR;
                        tile(packed_rows + (b * k + k0) * MR, wq, kc, c + b * MR * n + q * NR, n, rows, cols);
                    }
                }
            }
        }
    }
}

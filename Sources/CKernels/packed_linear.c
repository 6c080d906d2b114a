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
    void (*tile)(const float *, const float *, long, float *, long, long, long) = tile_portable;
#if defined(__x86_64__)
    if (jpgen_ckernels_avx2()) tile = tile_avx2;
#endif
    long blocks = (m + MR - 1) / MR;
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

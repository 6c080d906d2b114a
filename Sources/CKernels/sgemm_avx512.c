// Single-precision matrix product with AVX-512, for CPUs whose OpenBLAS build runs only its AVX2
// kernels (e.g. Debian's 0.3.21 on AMD Zen 4/5, where OPENBLAS_CORETYPE=Haswell is also the safe
// setting). Same blocking as BLIS / GotoBLAS (Goto & van de Geijn 2008, "Anatomy of
// high-performance matrix multiplication"):
//
//   for jc in N by NC:                     B block  [KC x NC] packed into 32-column panels (L3)
//     for pc in K by KC:
//       pack B[pc:pc+KC, jc:jc+NC]
//       for ic in M by MC:                 A block  [MC x KC] packed into 12-row panels (L2)
//         pack A[ic:ic+MC, pc:pc+KC]
//         for jr in NC by 32:              one B panel [KC x 32] (L1) ...
//           for ir in MC by 12:            ... meets every A panel of the block
//             C[12 x 32] (+)= A panel . B panel      (micro-kernel, 24 zmm accumulators)
//
// Panels are k-major: an A panel holds, for each k, its 12 rows' values; a B panel, for each k,
// its 32 columns' values, so the micro-kernel reads both operands sequentially. Panels past the
// matrix edge are zero-padded; the edge tiles store only their valid rows, and columns through
// AVX-512 masks. Row-major throughout: C [m, n] = alpha * op(A) op(B) + beta * C, op(A) [m, k]
// (stored [k, m] when trans_a), op(B) [k, n] (stored [n, k] when trans_b).
// The caller splits C over threads; each call is single-threaded and needs
// jpgen_sgemm_workspace_floats(m, n, k) floats of scratch.
#include "ckernels.h"
#include "sgemm_avx512_kernel.h"
#include "unroll.h"

#include <stdint.h>
#include <string.h>

#ifndef KC_
#define KC_ 256
#endif
#ifndef MC_
#define MC_ 240
#endif
enum { MR = 12, NR = 32, KC = KC_, MC = MC_, NC = 3072 };

static long min_l(long a, long b) { return a < b ? a : b; }
static long round_up(long x, long to) { return (x + to - 1) / to * to; }

// Products with B packed beforehand, K up to KI and B over 2 MB run their k blocks innermost
// (gemm_k_inner).
enum { KI = 1280 };

long jpgen_sgemm_workspace_floats(long m, long n, long k) {
    long kc = min_l(k, KC), mc = round_up(min_l(m, MC), MR), nc = round_up(min_l(n, NC), NR);
    long ka = k <= KI ? k : kc;         // gemm_k_inner packs a row block's whole A
    return mc * ka + kc * nc + 32;   // + alignment slack (both blocks start on 64 bytes)
}

// ---------------------------------------------------------------------------------- packing

// A panel: rows [i0, i0 + rows) of op(A), k in [k0, k0 + kc) -> dst[k * MR + r]; rows past the
// edge are zero.
static void pack_a_panel_scalar(int trans_a, const float *a, long lda, long i0, long rows, long k0, long kc,
                         float *dst) {
    if (!trans_a) {
        // op(A) = A [m, k]: each row is contiguous in k.
        for (long r = 0; r < rows; r++) {
            const float *src = a + (i0 + r) * lda + k0;
            for (long kk = 0; kk < kc; kk++) dst[kk * MR + r] = src[kk];
        }
    } else {
        // A stored [k, m]: for each k, the panel's rows are contiguous.
        for (long kk = 0; kk < kc; kk++) {
            const float *src = a + (k0 + kk) * lda + i0;
            for (long r = 0; r < rows; r++) dst[kk * MR + r] = src[r];
        }
    }
    for (long r = rows; r < MR; r++)
        for (long kk = 0; kk < kc; kk++) dst[kk * MR + r] = 0.f;
}

// B panel: columns [j0, j0 + cols) of op(B), k in [k0, k0 + kc) -> dst[k * NR + j].
static void pack_b_panel_scalar(int trans_b, const float *b, long ldb, long j0, long cols, long k0, long kc,
                         float *dst) {
    if (!trans_b) {
        // B [k, n]: for each k, the panel's columns are contiguous.
        for (long kk = 0; kk < kc; kk++) {
            const float *src = b + (k0 + kk) * ldb + j0;
            float *d = dst + kk * NR;
            memcpy(d, src, (size_t)cols * sizeof(float));
            for (long j = cols; j < NR; j++) d[j] = 0.f;
        }
    } else {
        // B stored [n, k] (nn.Linear's weight): each column of op(B) is a contiguous row.
        for (long j = 0; j < cols; j++) {
            const float *src = b + (j0 + j) * ldb + k0;
            for (long kk = 0; kk < kc; kk++) dst[kk * NR + j] = src[kk];
        }
        for (long j = cols; j < NR; j++)
            for (long kk = 0; kk < kc; kk++) dst[kk * NR + j] = 0.f;
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

// In-register transpose of a 16 x 16 block (r[i][j] -> r[j][i]): 32-bit then 64-bit interleaves
// within 128-bit lanes, then a 4 x 4 transpose of the 128-bit lanes.
__attribute__((target("avx512f")))
static inline void transpose16(__m512 r[16]) {
    __m512 a[16], b[16];
    UNROLL
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    UNROLL
    for (int g = 0; g < 4; g++) {   // b[4g + c], lane L = rows 4g..4g+3 of column 4L + c
        __m512d x0 = _mm512_castps_pd(a[4 * g]), x1 = _mm512_castps_pd(a[4 * g + 1]);
        __m512d x2 = _mm512_castps_pd(a[4 * g + 2]), x3 = _mm512_castps_pd(a[4 * g + 3]);
        b[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(x0, x2));
        b[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(x0, x2));
        b[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(x1, x3));
        b[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(x1, x3));
    }
    UNROLL
    for (int c = 0; c < 4; c++) {   // row 4L + c of the result = lane L of b[c], b[4 + c], b[8 + c], b[12 + c]
        __m512 c0 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x44), c1 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xEE);
        __m512 c2 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x44), c3 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xEE);
        r[c] = _mm512_shuffle_f32x4(c0, c2, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(c0, c2, 0xDD);
        r[8 + c] = _mm512_shuffle_f32x4(c1, c3, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(c1, c3, 0xDD);
    }
}

// pack_a_panel for op(A) = A [m, k] (rows contiguous in k), 16 k at a time through transpose16.
__attribute__((target("avx512f")))
static void pack_a_rows_avx512(const float *a, long lda, long i0, long rows, long k0, long kc, float *dst) {
    __m512 r[16];
    for (long kk = 0; kk < kc; kk += 16) {
        long n = kc - kk < 16 ? kc - kk : 16;
        __mmask16 m = n == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
        UNROLL
        for (long i = 0; i < 16; i++)
            r[i] = i < rows ? _mm512_maskz_loadu_ps(m, a + (i0 + i) * lda + k0 + kk) : _mm512_setzero_ps();
        transpose16(r);
        for (long j = 0; j < n; j++) _mm512_mask_storeu_ps(dst + (kk + j) * MR, (__mmask16)0x0FFF, r[j]);
    }
}

// pack_b_panel for B stored [n, k] (each column of op(B) a contiguous row), through transpose16.
__attribute__((target("avx512f")))
static void pack_b_rows_avx512(const float *b, long ldb, long j0, long cols, long k0, long kc, float *dst) {
    __m512 r[16];
    for (long half = 0; half < NR; half += 16) {
        for (long kk = 0; kk < kc; kk += 16) {
            long n = kc - kk < 16 ? kc - kk : 16;
            __mmask16 m = n == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
            UNROLL
            for (long i = 0; i < 16; i++)
                r[i] = half + i < cols ? _mm512_maskz_loadu_ps(m, b + (j0 + half + i) * ldb + k0 + kk) : _mm512_setzero_ps();
            transpose16(r);
            for (long t = 0; t < n; t++) _mm512_storeu_ps(dst + (kk + t) * NR + half, r[t]);
        }
    }
}

// pack_b_panel for B [k, n] (each k row of the panel contiguous): two masked vectors per k. The
// scalar path's memcpy of 128 bytes per row was a libc call each (4% of an SD1.5 UNet step).
__attribute__((target("avx512f")))
static void pack_b_cols_avx512(const float *b, long ldb, long j0, long cols, long k0, long kc, float *dst) {
    __mmask16 m0 = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1u);
    __mmask16 m1 = cols >= 32 ? (__mmask16)0xFFFF : cols <= 16 ? (__mmask16)0 : (__mmask16)((1u << (cols - 16)) - 1u);
    const float *src = b + k0 * ldb + j0;
    for (long kk = 0; kk < kc; kk++, src += ldb) {
        _mm512_storeu_ps(dst + kk * NR, _mm512_maskz_loadu_ps(m0, src));
        _mm512_storeu_ps(dst + kk * NR + 16, _mm512_maskz_loadu_ps(m1, src + 16));
    }
}

// pack_a_panel for A stored [k, m] (op(A) = A^T: for each k, the panel's rows contiguous): one
// masked vector per k.
__attribute__((target("avx512f")))
static void pack_a_cols_avx512(const float *a, long lda, long i0, long rows, long k0, long kc, float *dst) {
    __mmask16 m = (__mmask16)((1u << rows) - 1u);   // rows <= 12; the panel's other rows are zero
    const float *src = a + k0 * lda + i0;
    for (long kk = 0; kk < kc; kk++, src += lda)
        _mm512_mask_storeu_ps(dst + kk * MR, (__mmask16)0x0FFF, _mm512_maskz_loadu_ps(m, src));
}

// dst[j * ldd + i] = src[i * lds + j] (+ add[j * lda + i] when add is not NULL) for i < rows, j < cols:
// 16 x 16 blocks through transpose16, masked at the edges.
__attribute__((target("avx512f")))
void jpgen_transpose_add_avx512(const float *src, long lds, long rows, long cols, const float *add, long lda,
                                float *dst, long ldd) {
    __m512 r[16];
    for (long i0 = 0; i0 < rows; i0 += 16) {
        long ni = rows - i0 < 16 ? rows - i0 : 16;
        __mmask16 mi = ni == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << ni) - 1u);
        for (long j0 = 0; j0 < cols; j0 += 16) {
            long nj = cols - j0 < 16 ? cols - j0 : 16;
            __mmask16 mj = nj == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nj) - 1u);
            UNROLL
            for (long i = 0; i < 16; i++)
                r[i] = i < ni ? _mm512_maskz_loadu_ps(mj, src + (i0 + i) * lds + j0) : _mm512_setzero_ps();
            transpose16(r);
            if (add) {
                for (long j = 0; j < nj; j++)
                    _mm512_mask_storeu_ps(dst + (j0 + j) * ldd + i0, mi,
                                          _mm512_add_ps(r[j], _mm512_maskz_loadu_ps(mi, add + (j0 + j) * lda + i0)));
            } else {
                for (long j = 0; j < nj; j++) _mm512_mask_storeu_ps(dst + (j0 + j) * ldd + i0, mi, r[j]);
            }
        }
    }
}

void jpgen_transpose_avx512(const float *src, long lds, long rows, long cols, float *dst, long ldd) {
    jpgen_transpose_add_avx512(src, lds, rows, cols, NULL, 0, dst, ldd);
}
#else
void jpgen_transpose_add_avx512(const float *src, long lds, long rows, long cols, const float *add, long lda,
                                float *dst, long ldd) {
    (void)src; (void)lds; (void)rows; (void)cols; (void)add; (void)lda; (void)dst; (void)ldd;
}

void jpgen_transpose_avx512(const float *src, long lds, long rows, long cols, float *dst, long ldd) {
    (void)src; (void)lds; (void)rows; (void)cols; (void)dst; (void)ldd;
}
#endif

static int avx512_packing(void) {
#if defined(__x86_64__)
    return jpgen_sgemm_avx512_available();
#else
    return 0;
#endif
}

static void pack_a_panel(int trans_a, const float *a, long lda, long i0, long rows, long k0, long kc, float *dst) {
#if defined(__x86_64__)
    if (avx512_packing()) {
        if (trans_a) pack_a_cols_avx512(a, lda, i0, rows, k0, kc, dst);
        else pack_a_rows_avx512(a, lda, i0, rows, k0, kc, dst);
        return;
    }
#endif
    pack_a_panel_scalar(trans_a, a, lda, i0, rows, k0, kc, dst);
}

static void pack_b_panel(int trans_b, const float *b, long ldb, long j0, long cols, long k0, long kc, float *dst) {
#if defined(__x86_64__)
    if (avx512_packing()) {
        if (trans_b) pack_b_rows_avx512(b, ldb, j0, cols, k0, kc, dst); else pack_b_cols_avx512(b, ldb, j0, cols, k0, kc, dst);
        return;
    }
#endif
    pack_b_panel_scalar(trans_b, b, ldb, j0, cols, k0, kc, dst);
}

void jpgen_pack_a_panel(int trans_a, const float *a, long lda, long i0, long rows, long k0, long kc, float *dst) {
    pack_a_panel(trans_a, a, lda, i0, rows, k0, kc, dst);
}

void jpgen_pack_b_panel(int trans_b, const float *b, long ldb, long j0, long cols, long k0, long kc, float *dst) {
    pack_b_panel(trans_b, b, ldb, j0, cols, k0, kc, dst);
}

// ---------------------------------------------------------------------------------- kernels

#if defined(__x86_64__)
#include <immintrin.h>

// C tile [rows x cols] of C (leading dimension ldc) from the A panel ap [kc][12] and the B panel
// bp [kc][32]. first: this is the first k block, so C = alpha * acc + beta * C (beta 0: C is not
// read); otherwise C += alpha * acc.
__attribute__((target("avx512f")))
static inline void store_row(float *row, __m512 acc0, __m512 acc1, __mmask16 m0, __mmask16 m1,
                             __m512 va, __m512 vb, float beta, int first, const float *bias, __m512 b0,
                             __m512 b1) {
    __m512 v0 = _mm512_mul_ps(acc0, va), v1 = _mm512_mul_ps(acc1, va);
    if (first && bias) {
        v0 = _mm512_add_ps(v0, b0);
        v1 = _mm512_add_ps(v1, b1);
    }
    if (!first) {
        v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, row));
        v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, row + 16));
    } else if (beta != 0.f) {
        v0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), v0);
        v1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), v1);
    }
    _mm512_mask_storeu_ps(row, m0, v0);
    _mm512_mask_storeu_ps(row + 16, m1, v1);
}

// C tile [rows x cols] of C (leading dimension ldc) from the A panel ap [kc][12] and the B panel
// bp [kc][32]. first: this is the first k block, so C = (alpha * acc + bias) + beta * C (beta 0: C is
// not read; bias NULL: none, else the tile's first column's bias); otherwise C += alpha * acc.
// pf_lines cache lines from pf go to L2 on the way, one per four k steps: the blocked loops' share of
// the next B panel. (Issued in a burst before the call, they filled the line-fill buffers and the
// loop stalled on them: 3.8% of an SDXL step.)
__attribute__((target("avx512f")))
static void kernel_12x32(long kc, const float *ap, const float *bp, float *c, long ldc, long rows, long cols,
                         float alpha, float beta, int first, const float *bias, const char *pf, long pf_lines) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    __m512 c60 = c00, c61 = c00, c70 = c00, c71 = c00, c80 = c00, c81 = c00;
    __m512 c90 = c00, c91 = c00, cA0 = c00, cA1 = c00, cB0 = c00, cB1 = c00;
    // The tile's rows are read or written at the end: fetch them now (a first store into a cold
    // output waits on the line too; 6% on a 1024 x 10240 x 1280 product).
    for (long r = 0; r < rows; r++) {
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + r * ldc + 16), _MM_HINT_T0);
    }
#define ROW(r, acc0, acc1) x = _mm512_set1_ps(ap[r]); \
        acc0 = _mm512_fmadd_ps(x, b0, acc0); acc1 = _mm512_fmadd_ps(x, b1, acc1);
#define STEP { __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16), x; \
        ROW(0, c00, c01) ROW(1, c10, c11) ROW(2, c20, c21) ROW(3, c30, c31) \
        ROW(4, c40, c41) ROW(5, c50, c51) ROW(6, c60, c61) ROW(7, c70, c71) \
        ROW(8, c80, c81) ROW(9, c90, c91) ROW(10, cA0, cA1) ROW(11, cB0, cB1) \
        ap += MR; bp += NR; }
    long kk = 0;
    for (; kk + 4 <= kc; kk += 4) {
        _mm_prefetch((const char *)(bp + 8 * NR), _MM_HINT_T0);
        if (pf_lines > 0) {
            _mm_prefetch(pf, _MM_HINT_T1);
            pf += 64;
            pf_lines--;
        }
        STEP STEP STEP STEP
    }
    for (; kk < kc; kk++) STEP
    for (; pf_lines > 0; pf_lines--, pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
#undef STEP
#undef ROW
    __mmask16 m0 = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1u);
    __mmask16 m1 = cols >= 32 ? (__mmask16)0xFFFF : cols <= 16 ? (__mmask16)0 : (__mmask16)((1u << (cols - 16)) - 1u);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    __m512 b0 = _mm512_setzero_ps(), b1 = b0;
    if (first && bias) {
        b0 = _mm512_maskz_loadu_ps(m0, bias);
        b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
#define OUT(r, acc0, acc1) if (r < rows) store_row(c + r * ldc, acc0, acc1, m0, m1, va, vb, beta, first, bias, b0, b1);
    OUT(0, c00, c01) OUT(1, c10, c11) OUT(2, c20, c21) OUT(3, c30, c31)
    OUT(4, c40, c41) OUT(5, c50, c51) OUT(6, c60, c61) OUT(7, c70, c71)
    OUT(8, c80, c81) OUT(9, c90, c91) OUT(10, cA0, cA1) OUT(11, cB0, cB1)
#undef OUT
}

void jpgen_kernel_12x32(long kc, const float *ap, const float *bp, float *c, long ldc, long rows,
                         long cols, float alpha, float beta, int first, const float *bias) {
    kernel_12x32(kc, ap, bp, c, ldc, rows, cols, alpha, beta, first, bias, NULL, 0);
}

int jpgen_sgemm_avx512_available(void) {
    static int state = -1;   // a benign race: every thread computes the same value
    if (state < 0) {
        __builtin_cpu_init();
        state = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") ? 1 : 0;
    }
    return state;
}
#else
int jpgen_sgemm_avx512_available(void) { return 0; }
#endif

#if defined(__x86_64__)
// Part `part` of `parts` of the `lines` cache lines at `next`: its first line, and its count in *count.
// The next B panel is prefetched so, spread over the micro-tiles that use the current one.
static inline const char *prefetch_part(const char *next, long lines, long parts, long part, long *count) {
    if (lines <= 0) { *count = 0; return next; }
    long per = (lines + parts - 1) / parts, first = min_l(part * per, lines);
    *count = min_l(per, lines - first);
    return next + 64 * first;
}

// Rows [i0, i0 + mc) of A [m, k] packed for every k block at once into pa: block pc at pa + pc * mc_max,
// its 12-row panels [kc][12] one after another (the layout of gemm_k_inner and geglu_k_inner).
static void pack_a_row_block(const float *a, long lda, long i0, long mc, long k, long mc_max, float *pa) {
    for (long pc = 0; pc < k; pc += KC) {
        long kc = min_l(KC, k - pc);
        for (long ir = 0; ir < mc; ir += MR)
            pack_a_panel(0, a, lda, i0 + ir, min_l(MR, mc - ir), pc, kc, pa + pc * mc_max + (ir / MR) * kc * MR);
    }
}

// For B packed beforehand (a linear layer's weight) and K <= KI: the row block's A is packed for every
// k block at once (at most 240 x 1280 floats, L2), and each 32-column strip of C takes all its k
// blocks in turn while its tiles are in cache, so C goes to memory once instead of once per k block
// (SDXL's 4096 x 5120 x 640 feed-forward product ran at 249 GFLOP/s in the step, its 84 MB output
// read and written three times).
static void gemm_k_inner(long m, long n, long k, float alpha, const float *a, long lda, const float *packed_b,
                         long packed_cols, long col0, float beta, const float *bias, float *c, long ldc,
                         float *ws, long mblock) {
    long padded_cols = round_up(packed_cols, NR), mc_max = round_up(min_l(m, mblock), MR);
    float *pa = ws;                                    // [k / KC][mc_max / MR][kc][MR]
    for (long ic = 0; ic < m; ic += mblock) {
        long mc = min_l(mblock, m - ic);
        pack_a_row_block(a, lda, ic, mc, k, mc_max, pa);
        for (long jr = 0; jr < n; jr += NR) {
            long cols = min_l(NR, n - jr), panel = (col0 + jr) / NR;
            for (long pc = 0; pc < k; pc += KC) {
                long kc = min_l(KC, k - pc);
                const float *bpanel = packed_b + pc * padded_cols + panel * kc * NR;
                // the next B panel (the next k block, or the next strip's first) into L2
                const float *next = NULL;
                long next_kc = 0;
                if (pc + KC < k) {
                    next_kc = min_l(KC, k - pc - KC);
                    next = packed_b + (pc + KC) * padded_cols + panel * next_kc * NR;
                } else if (jr + NR < n) {
                    next_kc = min_l(KC, k);
                    next = packed_b + (panel + 1) * next_kc * NR;
                }
                long lines = next ? next_kc * NR / 16 : 0, tiles = (mc + MR - 1) / MR;
                for (long ir = 0, t = 0; ir < mc; ir += MR, t++) {
                    long count;
                    const char *pf = prefetch_part((const char *)next, lines, tiles, t, &count);
                    kernel_12x32(kc, pa + pc * mc_max + (ir / MR) * kc * MR, bpanel, c + (ic + ir) * ldc + jr, ldc,
                                 min_l(MR, mc - ir), cols, alpha, beta, pc == 0, bias ? bias + jr : NULL, pf, count);
                }
            }
        }
    }
}
#endif

#if defined(__x86_64__)
// GEGLU fused into its projection: out [m, f] = h * gelu(g) with [h | g] = A W^T + bias, W [2f, k] packed
// beforehand (f a multiple of 32, so the gate's panels start on a panel). gemm_k_inner's loops, with the
// hidden strip j and the gate strip f + j computed one after the other into two tiles of the workspace
// and combined at once: the [m, 2f] projection (SDXL: 40 MB per 1024 tokens) is never written, read
// back or paged in. The products are the same kernel calls in the same order as the unfused path's, so
// the result is bit for bit that of `linear` and then `geglu`. With packed_out, the result goes there
// instead, in the packed-A layout of the product that follows (jpgen_sgemm_pack_a of all packed_rows
// rows, k = f; this call's rows from row0, a multiple of 12): each 12 x 32 tile of it, transposed while
// in L1, is 384 contiguous floats of a panel.
// With packed_out, the strip's destination (a cold region: the result is 4 times the input) is fetched
// for writing a few lines per micro-tile while the strip's products run; the transposed stores of
// 240 x 32 floats at the strip's end stalled on the store buffer, waiting for each line.
__attribute__((target("prfchw")))
static void geglu_k_inner(long m, long f, long k, long j0, long j1, const float *a, long lda, const float *packed_b,
                          const float *bias, float *out, long ldo, float *packed_out, long packed_rows, long row0,
                          float *ws) {
    long blocks = (m + MC - 1) / MC, mblock = round_up((m + blocks - 1) / blocks, MR);
    long padded_cols = round_up(2 * f, NR), mc_max = round_up(min_l(m, mblock), MR);
    float *pa = ws;                                    // [k / KC][mc_max / MR][kc][MR]
    float *tile_h = ws + round_up(mc_max * k, 16);     // [mc_max][32] each
    float *tile_g = tile_h + mc_max * NR;
    for (long ic = 0; ic < m; ic += mblock) {
        long mc = min_l(mblock, m - ic), tiles = (mc + MR - 1) / MR;
        pack_a_row_block(a, lda, ic, mc, k, mc_max, pa);
        for (long jr = j0; jr < j1; jr += NR) {
            long cols = min_l(NR, f - jr);
            // this strip's 12 x 32 tiles of packed_out: 24 lines each, a panel's kc * 12 floats apart
            long out_pc = jr / KC * KC, out_kc = min_l(KC, f - out_pc);
            char *dst = packed_out ? (char *)(packed_out + out_pc * round_up(packed_rows, MR)
                                              + (row0 + ic) / MR * out_kc * MR + (jr - out_pc) * MR) : NULL;
            long tile_lines = NR * MR / 16, calls = 2 * tiles * ((k + KC - 1) / KC);   // kernel calls per strip
            long dst_lines = packed_out ? tiles * tile_lines : 0, dst_line = 0, dst_per_call = (dst_lines + calls - 1) / calls;
            for (int half = 0; half < 2; half++) {
                long col = half * f + jr, panel = col / NR;
                float *tile = half ? tile_g : tile_h;
                for (long pc = 0; pc < k; pc += KC) {
                    long kc = min_l(KC, k - pc);
                    const float *bpanel = packed_b + pc * padded_cols + panel * kc * NR;
                    // the next B panel into L2: the next k block, else the gate's first (after the
                    // hidden strip) or the next strip's (after the gate), none after the last
                    long next_panel = panel, next_pc = pc + KC;
                    if (next_pc >= k) {
                        next_pc = 0;
                        next_panel = half ? (jr + NR < j1 ? (jr + NR) / NR : -1) : (f + jr) / NR;
                    }
                    long next_kc = min_l(KC, k - next_pc);
                    const char *next = next_panel < 0 ? NULL
                        : (const char *)(packed_b + next_pc * padded_cols + next_panel * next_kc * NR);
                    long lines = next ? next_kc * NR / 16 : 0;
                    for (long ir = 0, t = 0; ir < mc; ir += MR, t++) {
                        long count;
                        const char *pf = prefetch_part(next, lines, tiles, t, &count);
                        for (long e = 0; e < dst_per_call && dst_line < dst_lines; e++, dst_line++)
                            __builtin_prefetch(dst + dst_line / tile_lines * out_kc * MR * 4 + dst_line % tile_lines * 64, 1, 3);
                        kernel_12x32(kc, pa + pc * mc_max + (ir / MR) * kc * MR, bpanel, tile + ir * NR, NR,
                                     min_l(MR, mc - ir), cols, 1.f, 0.f, pc == 0, bias ? bias + col : NULL, pf, count);
                    }
                }
            }
            if (packed_out) {
                long pc = jr / KC * KC, kc = min_l(KC, f - pc), padded = round_up(packed_rows, MR);
                for (long r = 0; r < mc; r++) jpgen_geglu_span_avx512(tile_h + r * NR, tile_g + r * NR, cols, tile_h + r * NR);
                for (long ir = 0; ir < mc; ir += MR)
                    jpgen_transpose_avx512(tile_h + ir * NR, NR, min_l(MR, mc - ir), cols,
                                           packed_out + pc * padded + (row0 + ic + ir) / MR * kc * MR + (jr - pc) * MR, MR);
            } else {
                for (long r = 0; r < mc; r++)
                    jpgen_geglu_span_avx512(tile_h + r * NR, tile_g + r * NR, cols, out + (ic + r) * ldo + jr);
            }
        }
    }
}
#endif

long jpgen_linear_geglu_workspace_floats(long m, long k) {
    long mc = round_up(min_l(m, MC), MR);
    return mc * k + 2 * mc * NR + 48;   // + alignment slack (both regions start on 64 bytes)
}

int jpgen_linear_geglu_packed(long m, long f, long k, long j0, long j1, const float *a, long lda,
                              const float *packed_b, const float *bias, float *out, long ldo, float *packed_out,
                              long packed_rows, long row0, float *workspace) {
#if defined(__x86_64__)
    if (!jpgen_sgemm_avx512_available() || f % NR != 0 || k <= 0) return 0;
    if (j0 < 0 || j0 % NR != 0 || j1 % NR != 0 || j1 > f || j0 > j1) return 0;
    if (packed_out && (row0 % MR != 0 || row0 + m > packed_rows)) return 0;
    if (m > 0 && j0 < j1)
        geglu_k_inner(m, f, k, j0, j1, a, lda, packed_b, bias, out, ldo, packed_out, packed_rows, row0,
                      (float *)(((uintptr_t)workspace + 63) & ~(uintptr_t)63));
    return 1;
#else
    (void)m; (void)f; (void)k; (void)j0; (void)j1; (void)a; (void)lda; (void)packed_b; (void)bias; (void)out;
    (void)ldo; (void)packed_out; (void)packed_rows; (void)row0; (void)workspace;
    return 0;
#endif
}

// The blocked loops for every entry point: A either packed here, block by block (a, lda,
// trans_a), or packed beforehand by jpgen_sgemm_pack_a (packed != NULL: the whole matrix of
// packed_rows rows, of which this call computes rows row0 .. row0 + m); likewise B. bias (NULL or
// one value per column of this call's C) is added once, with the first k block.
static void gemm_blocked(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a,
                         long lda, const float *packed, long packed_rows, long row0, const float *b,
                         long ldb, const float *packed_b, long packed_cols, long col0, float beta,
                         const float *bias, float *c, long ldc, float *workspace) {
#if defined(__x86_64__)
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        for (long i = 0; i < m; i++)
            for (long j = 0; j < n; j++)
                c[i * ldc + j] = (beta == 0.f ? 0.f : beta * c[i * ldc + j]) + (bias ? bias[j] : 0.f);
        return;
    }
    float *ws = (float *)(((uintptr_t)workspace + 63) & ~(uintptr_t)63);
    // Row blocks of equal size (whole micro-tiles): 512 rows go as 180 + 180 + 152, not 240 + 240 + 32,
    // whose last block would load every B panel for 3 micro-tiles.
    long blocks = (m + MC - 1) / MC, mblock = round_up((m + blocks - 1) / blocks, MR);
    // (only when the weight is too big for L2 anyway: 640 x 640 ran 308 -> 272 GFLOP/s, its B blocks
    // no longer reused from L2 next to the larger A block)
    if (packed_b && !packed && k <= KI && k * n * (long)sizeof(float) > (2l << 20)) {
        gemm_k_inner(m, n, k, alpha, a, lda, packed_b, packed_cols, col0, beta, bias, c, ldc, ws, mblock);
        return;
    }
    long kc_max = min_l(k, KC), mc_max = round_up(min_l(m, mblock), MR);
    float *pa = ws;                                    // [mc_max / MR][kc][MR]
    float *pb;                                         // [nc / NR][kc][NR], here or packed beforehand
    long padded_rows = round_up(packed_rows, MR), padded_cols = round_up(packed_cols, NR);
    for (long jc = 0; jc < n; jc += NC) {
        long nc = min_l(NC, n - jc);
        for (long pc = 0; pc < k; pc += KC) {
            long kc = min_l(KC, k - pc);
            if (packed_b) {
                pb = (float *)packed_b + pc * padded_cols + ((col0 + jc) / NR) * kc * NR;
            } else {
                pb = ws + round_up(mc_max * kc_max, 16);
                for (long jr = 0; jr < nc; jr += NR)
                    pack_b_panel(trans_b, b, ldb, jc + jr, min_l(NR, nc - jr), pc, kc, pb + (jr / NR) * kc * NR);
            }
            for (long ic = 0; ic < m; ic += mblock) {
                long mc = min_l(mblock, m - ic);
                const float *ablock;
                if (packed) {
                    ablock = packed + pc * padded_rows + ((row0 + ic) / MR) * kc * MR;
                } else {
                    for (long ir = 0; ir < mc; ir += MR)
                        pack_a_panel(trans_a, a, lda, ic + ir, min_l(MR, mc - ir), pc, kc, pa + (ir / MR) * kc * MR);
                    ablock = pa;
                }
                for (long jr = 0; jr < nc; jr += NR) {
                    const float *bpanel = pb + (jr / NR) * kc * NR;
                    long cols = min_l(NR, nc - jr);
                    // The next B panel into L2, a slice before each micro-tile: a linear layer's weight
                    // is read once per UNet step, so its panels come from DRAM (3-5% of the product's
                    // time with the hardware prefetchers alone, measured on 300 cold 1280 x 1280 weights).
                    long lines = jr + NR < nc ? kc * NR / 16 : 0, tiles = (mc + MR - 1) / MR;
                    for (long ir = 0, t = 0; ir < mc; ir += MR, t++) {
                        long count;
                        const char *pf = prefetch_part((const char *)(bpanel + kc * NR), lines, tiles, t, &count);
                        kernel_12x32(kc, ablock + (ir / MR) * kc * MR, bpanel, c + (ic + ir) * ldc + jc + jr, ldc,
                                     min_l(MR, mc - ir), cols, alpha, beta, pc == 0, bias ? bias + jc + jr : NULL, pf,
                                     count);
                    }
                }
            }
        }
    }
#else
    (void)trans_a; (void)trans_b; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda; (void)packed;
    (void)packed_rows; (void)row0; (void)b; (void)ldb; (void)packed_b; (void)packed_cols; (void)col0; (void)beta;
    (void)bias; (void)c; (void)ldc; (void)workspace;
#endif
}

void jpgen_sgemm_avx512(int trans_a, int trans_b, long m, long n, long k, float alpha,
                        const float *a, long lda, const float *b, long ldb, float beta,
                        float *c, long ldc, float *workspace) {
    gemm_blocked(trans_a, trans_b, m, n, k, alpha, a, lda, NULL, 0, 0, b, ldb, NULL, 0, 0, beta, NULL, c, ldc,
                 workspace);
}

// ------------------------------------------------------------------- Winograd filter, packed

#if defined(__x86_64__)
// G g along one axis for 16 lanes: F(2, 3) G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]];
// F(4, 3) G = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6], [1/24, 1/12, 1/6], [1/24, -1/12, 1/6],
// [0, 0, 1]] (the same arithmetic, in the same order, as winogradFilter2/4 in Conv2dWinograd.swift).
__attribute__((target("avx512f")))
static inline void winograd_g(int tile, __m512 g0, __m512 g1, __m512 g2, __m512 *q, long t) {
    if (tile == 4) {
        __m512 e = _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6), _mm512_add_ps(g0, g2));
        __m512 f = _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6), g1);
        __m512 h = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(1.0f / 24), g0), _mm512_mul_ps(_mm512_set1_ps(1.0f / 6), g2));
        __m512 k = _mm512_mul_ps(_mm512_set1_ps(1.0f / 12), g1);
        q[0] = _mm512_mul_ps(_mm512_set1_ps(0.25f), g0);
        q[t] = _mm512_add_ps(e, f);
        q[2 * t] = _mm512_sub_ps(e, f);
        q[3 * t] = _mm512_add_ps(h, k);
        q[4 * t] = _mm512_sub_ps(h, k);
        q[5 * t] = g2;
    } else {
        __m512 e = _mm512_mul_ps(_mm512_set1_ps(0.5f), _mm512_add_ps(g0, g2)), f = _mm512_mul_ps(_mm512_set1_ps(0.5f), g1);
        q[0] = g0;
        q[t] = _mm512_add_ps(e, f);
        q[2 * t] = _mm512_sub_ps(e, f);
        q[3 * t] = g2;
    }
}

// One 12-row panel, input channels k_begin ..< k_end (k_begin a multiple of 16), for the tile size
// TILE (a constant in each caller, so that the loops over positions unroll and U stays in registers):
// position q's packed rows [k][12] at dst + q * stride + (k - k_begin) * 12. The kernels g of 16 input
// channels are 144 consecutive floats of each output channel's row of the weight: loaded row by row and
// turned by 16 x 16 transposes into taps[j][e] (lanes: the panel's 12 rows). Each tap of 16 rows of the
// packed layout (its 16 floats: channel j's 12 rows and 4 of channel j + 1's, or 8 and 8, or 4 and 12)
// is then one vpermt2ps of two of those, and G g G^T, the same arithmetic for every lane, comes out as the
// packed rows themselves: 12 whole vectors per position and 16 channels, no transpose or copy after.
// (With the caller's positions 4 KiB apart this form took 23-25 ms on one thread for a 1280 x 1280
// filter, no faster than transposing through a buffer and copying 48-byte rows out of it, nor than the
// 9 gathers per channel before that inside a convolution; chunk_position_floats' odd stride: 13-15 ms.)
__attribute__((target("avx512f"), always_inline))
static inline void winograd_filter_rows_t(const float *weight, long c, const int TILE, long first, long live,
                                          long k_begin, long k_end, float *dst, long stride) {
    enum { KB = 16 };
    const long alpha = TILE + 2, a2 = alpha * alpha;
    const float *base = weight + first * c * 9;
    __m512 r[16];
    float taps[(KB + 1) * 9 * 16] __attribute__((aligned(64)));   // [channel j][tap e][lane: row]
    // lanes of packed vector v (v % 3 = 0, 1, 2) from channels j and j + 1 (j = v / 3 * 4 + v % 3)
    const __m512i pick[3] = {
        _mm512_set_epi32(19, 18, 17, 16, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set_epi32(23, 22, 21, 20, 19, 18, 17, 16, 11, 10, 9, 8, 7, 6, 5, 4),
        _mm512_set_epi32(27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 11, 10, 9, 8)};
    // channel KB, read by the last vector's second half and never stored: zero, once
    for (long e = KB * 9; e < (KB + 1) * 9; e++) _mm512_store_ps(taps + e * 16, _mm512_setzero_ps());
    for (long k0 = k_begin; k0 < k_end; k0 += KB) {
        long n = min_l(KB, k_end - k0), floats = n * 9;
        for (long off = 0; off < floats; off += 16) {
            long count = min_l(16, floats - off);
            __mmask16 m = count == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1u);
            UNROLL
            for (long i = 0; i < 16; i++)
                r[i] = i < live ? _mm512_maskz_loadu_ps(m, base + i * c * 9 + k0 * 9 + off) : _mm512_setzero_ps();
            transpose16(r);
            for (long e = 0; e < count; e++) _mm512_store_ps(taps + (off + e) * 16, r[e]);
        }
        // a short last group's channels n ..< KB likewise (none in a full group)
        for (long e = floats; e < KB * 9; e++) _mm512_store_ps(taps + e * 16, _mm512_setzero_ps());
        float *at = dst + (k0 - k_begin) * MR;
        long vectors = (n * MR + 15) / 16;
        for (long v = 0; v < vectors; v++) {
            long j = v / 3 * 4 + v % 3;
            const float *ta = taps + j * 9 * 16, *tb = ta + 9 * 16;
            __m512i idx = pick[v % 3];
            __m512 g[9], gg[18], u[36];
            UNROLL
            for (int e = 0; e < 9; e++)
                g[e] = _mm512_permutex2var_ps(_mm512_load_ps(ta + e * 16), idx, _mm512_load_ps(tb + e * 16));
            // gg[i, b] = sum_a G[i, a] g[a, b]; u[i, j] = sum_b gg[i, b] G[j, b]
            UNROLL
            for (int b = 0; b < 3; b++) winograd_g(TILE, g[b], g[3 + b], g[6 + b], gg + b, 3);
            UNROLL
            for (long a = 0; a < alpha; a++) winograd_g(TILE, gg[3 * a], gg[3 * a + 1], gg[3 * a + 2], u + alpha * a, 1);
            long lanes = min_l(16, n * MR - 16 * v);
            if (lanes == 16) {
                UNROLL
                for (long q = 0; q < a2; q++) _mm512_storeu_ps(at + q * stride + 16 * v, u[q]);
            } else {
                __mmask16 m = (__mmask16)((1u << lanes) - 1u);
                UNROLL
                for (long q = 0; q < a2; q++) _mm512_mask_storeu_ps(at + q * stride + 16 * v, m, u[q]);
            }
        }
    }
}

__attribute__((target("avx512f")))
static void winograd_filter_rows(const float *weight, long c, int tile, long first, long live, long k_begin,
                                 long k_end, float *dst, long stride) {
    if (tile == 4) winograd_filter_rows_t(weight, c, 4, first, live, k_begin, k_end, dst, stride);
    else winograd_filter_rows_t(weight, c, 2, first, live, k_begin, k_end, dst, stride);
}

// One 12-row panel for every input channel, in jpgen_sgemm_pack_a's layout: k blocks of KC, block pc at
// packed + pc * padded, the panel's [kc][12] at panel * kc * 12 in it (KC is a multiple of 16: no group
// of 16 channels straddles two blocks).
__attribute__((target("avx512f")))
static void winograd_filter_panel(const float *weight, long c, int tile, long first, long live, long padded,
                                  long panel, float *packed, long stride) {
    for (long pc = 0; pc < c; pc += KC) {
        long kc = min_l(KC, c - pc);
        winograd_filter_rows(weight, c, tile, first, live, pc, pc + kc, packed + pc * padded + panel * kc * MR, stride);
    }
}

// Floats from one position's slice of the filter to the next in winograd_chunk_products' buffer: whole
// cache lines, an odd number of them. The transform writes all alpha^2 positions at once; 4 KiB apart
// (72 rows by 128 channels: 36 KiB) they all fell into one L1 set, and the transform took twice as long.
static long chunk_position_floats(long rows, long kb) {
    return (round_up(rows, MR) * kb / 16 | 1) * 16;
}

// The products of a chunk of output channels (rows of M) against V, with the filter transformed kb input
// channels at a time into buf: see ckernels.h.
__attribute__((target("avx512f")))
static void winograd_chunk_products(const float *weight, long c, int tile, long o0, long rows, const float *v,
                                    long v_stride, long tiles, long kb, float *mm, long ldr, long ldq, float *buf) {
    long a2 = (tile + 2) * (tile + 2), panels = (rows + MR - 1) / MR;
    long padded_cols = round_up(tiles, NR), col_panels = padded_cols / NR, per_q = chunk_position_floats(rows, kb);
    for (long k0 = 0; k0 < c; k0 += kb) {
        long kn = min_l(kb, c - k0);
        for (long p = 0; p < panels; p++)
            winograd_filter_rows(weight, c, tile, o0 + p * MR, min_l(MR, rows - p * MR), k0, k0 + kn, buf + p * kn * MR,
                                 per_q);
        // V's k block holding k0 ..< k0 + kn (kb divides KC), and this range's offset in its panels
        long pc = k0 / KC * KC, kc_pc = min_l(KC, c - pc), in_block = pc * padded_cols + (k0 - pc) * NR;
        for (long q = 0; q < a2; q++) {
            const float *vq = v + q * v_stride + in_block;
            for (long j = 0; j < col_panels; j++) {
                const float *bp = vq + j * kc_pc * NR;
                // the next V panel into L2 (the next column panel, else the next position's first),
                // spread over this panel's micro-tiles
                const float *next = j + 1 < col_panels ? bp + kc_pc * NR
                                  : q + 1 < a2 ? v + (q + 1) * v_stride + in_block : NULL;
                long lines = next ? kn * NR / 16 : 0;
                for (long p = 0; p < panels; p++) {
                    long count;
                    const char *pf = prefetch_part((const char *)next, lines, panels, p, &count);
                    kernel_12x32(kn, buf + q * per_q + p * kn * MR, bp, mm + p * MR * ldr + q * ldq + j * NR, ldr,
                                 min_l(MR, rows - p * MR), min_l(NR, tiles - j * NR), 1.f, 0.f, k0 == 0, NULL, pf,
                                 count);
                }
            }
        }
    }
}
#endif

long jpgen_winograd_chunk_buffer_floats(long rows, long kb, int tile) {
    return (tile + 2) * (tile + 2) * chunk_position_floats(rows, kb);
}

int jpgen_winograd_chunk_products(const float *weight, long c, int tile, long o0, long rows, const float *v,
                                  long v_stride, long tiles, long kb, float *mm, long ldr, long ldq, float *buf) {
#if defined(__x86_64__)
    if (!jpgen_sgemm_avx512_available() || kb <= 0 || kb % 16 != 0 || KC % kb != 0 || (tile != 2 && tile != 4)) return 0;
    if (rows > 0 && tiles > 0 && c > 0)
        winograd_chunk_products(weight, c, tile, o0, rows, v, v_stride, tiles, kb, mm, ldr, ldq, buf);
    return 1;
#else
    (void)weight; (void)c; (void)tile; (void)o0; (void)rows; (void)v; (void)v_stride; (void)tiles; (void)kb; (void)mm;
    (void)ldr; (void)ldq; (void)buf;
    return 0;
#endif
}

void jpgen_winograd_filter_pack(const float *weight, long c, int tile, long o0, long rows, long panel0,
                                long panel1, float *packed, long stride) {
#if defined(__x86_64__)
    long padded = round_up(rows, MR);
    for (long panel = panel0; panel < panel1; panel++)
        winograd_filter_panel(weight, c, tile, o0 + panel * MR, min_l(MR, rows - panel * MR), padded, panel, packed,
                              stride);
#else
    (void)weight; (void)c; (void)tile; (void)o0; (void)rows; (void)panel0; (void)panel1; (void)packed; (void)stride;
#endif
}

long jpgen_sgemm_packed_a_floats(long m, long k) {
    return round_up(m, MR) * k;
}

// Packed A: for each k block of KC (pc), the 12-row panels of all rows, each [kc][12]; block pc
// starts at pc * round_up(m, 12).
void jpgen_sgemm_pack_a(int trans_a, long m, long k, const float *a, long lda, float *packed) {
    long padded = round_up(m, MR);
    for (long pc = 0; pc < k; pc += KC) {
        long kc = min_l(KC, k - pc);
        for (long i = 0; i < padded; i += MR)
            pack_a_panel(trans_a, a, lda, i, min_l(MR, m - i), pc, kc, packed + pc * padded + (i / MR) * kc * MR);
    }
}

void jpgen_sgemm_avx512_packed_a(long packed_rows, long row0, long m, long n, long k, float alpha,
                                 const float *packed_a, int trans_b, const float *b, long ldb,
                                 float beta, float *c, long ldc, float *workspace) {
    gemm_blocked(0, trans_b, m, n, k, alpha, NULL, 0, packed_a, packed_rows, row0, b, ldb, NULL, 0, 0, beta, NULL, c,
                 ldc, workspace);
}

void jpgen_sgemm_avx512_packed_ab(long packed_rows, long row0, long m, long packed_cols, long col0, long n,
                                  long k, float alpha, const float *packed_a, const float *packed_b, float beta,
                                  const float *bias, float *c, long ldc) {
    float unused[32];   // both blocks come packed: the workspace is only aligned, never used
    gemm_blocked(0, 0, m, n, k, alpha, NULL, 0, packed_a, packed_rows, row0, NULL, 0, packed_b, packed_cols, col0,
                 beta, bias, c, ldc, unused);
}

long jpgen_sgemm_k_block(void) {
    return KC;
}

long jpgen_sgemm_packed_b_floats(long n, long k) {
    return round_up(n, NR) * k;
}

// Packed B: for each k block of KC (pc), the 32-column panels of all columns, each [kc][32]; block pc
// starts at pc * round_up(n, 32). Panels panel0 ..< panel1 only.
// Columns j0 ..< j0 + cols of op(B) [k, n] given apart (column j at b's column, or row, j - j0), into
// panels panel0 ..< panel1 of the whole's packed layout, those of these columns.
static void pack_b_columns(int trans_b, long n, long k, long j0, long cols, const float *b, long ldb, long panel0,
                           long panel1, float *packed) {
    long padded = round_up(n, NR);
    for (long pc = 0; pc < k; pc += KC) {
        long kc = min_l(KC, k - pc);
        for (long j = panel0 * NR; j < panel1 * NR && j < j0 + cols; j += NR)
            pack_b_panel(trans_b, b, ldb, j - j0, min_l(NR, j0 + cols - j), pc, kc, packed + pc * padded + (j / NR) * kc * NR);
    }
}

void jpgen_sgemm_pack_b(int trans_b, long n, long k, const float *b, long ldb, long panel0, long panel1,
                        float *packed) {
    pack_b_columns(trans_b, n, k, 0, n, b, ldb, panel0, panel1, packed);
}

void jpgen_sgemm_pack_b_rows(long n, long k, long row0, long rows, const float *b, long ldb, long panel0,
                             long panel1, float *packed) {
    pack_b_columns(1, n, k, row0, rows, b, ldb, panel0, panel1, packed);
}

void jpgen_sgemm_avx512_packed_b(long packed_cols, long col0, long m, long n, long k, float alpha,
                                 const float *a, long lda, const float *packed_b, float beta,
                                 const float *bias, float *c, long ldc, float *workspace) {
    gemm_blocked(0, 0, m, n, k, alpha, a, lda, NULL, 0, 0, NULL, 0, packed_b, packed_cols, col0, beta, bias, c, ldc,
                 workspace);
}

// One attention head, fused, with the AVX-512 micro-kernel of sgemm_avx512.c (no mask):
//   O = softmax(scale * Q K^T) V,   Q [tq, d], K [tk, d], V [tk, dv] -> O [tq, dv]
// (torch.nn.functional.scaled_dot_product_attention for one batch and head).
//
// The products are computed transposed, 32 queries at a time, so that no score matrix is ever
// repacked and the softmax needs no horizontal reductions:
//   S^T [tk, 32]  = K Q^T      A = K in 12-key panels (packed once per call), B = the 32 queries'
//                               scale Q^T [d][32]; each 12 x 32 tile is written straight into P^T, which
//                               is thereby already the k-major B panel of the second product
//   P^T = exp(S^T - max)        column-wise (per query) over the tk rows: 32 lanes, vertical max/sum
//   O^T [dv, 32]  = V^T P^T     A = V^T in 12-dimension panels (packed once), B = P^T over k = tk
//   O = (O^T)^T / sum           scaled per query, stored transposed into O's rows
// P^T for 32 queries is tk * 32 floats (512 KB at 4096 keys: L2-resident).
#include "ckernels.h"
#include "unroll.h"
#include "sgemm_avx512_kernel.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

enum { MR = 12, QB = 32 };

static long round_up(long x, long to) { return (x + to - 1) / to * to; }

long jpgen_attention_workspace_floats(long tk, long d, long dv) {
    long kp = round_up(tk, MR) * d;          // K panels [tk/12][d][12]
    long vp = round_up(dv, MR) * tk;         // V^T panels [dv/12][tk][12]
    long qp = d * QB;                        // Q^T [d][32]
    long pt = tk * QB;                       // P^T [tk][32]
    long ot = round_up(dv, MR) * QB;         // O^T [dv][32]
    return kp + vp + qp + pt + ot + 5 * 16;  // + alignment slack
}

#if defined(__x86_64__)
#include <immintrin.h>

// exp(s - m) for scores s and their maximum m (so s - m <= 0), given mb = m * log2(e), as 2^t with
// t = s log2(e) - mb rounded once (one FMA): t = n + f with n = round(t), |f| <= 1/2, and 2^f from a
// degree-5 polynomial fitted for the least largest relative error on [-1/2, 1/2] (7.5e-8 exactly,
// 2.4e-7 evaluated in float), scaled by 2^n (vscalefps, which gives 0 for any n below -149, so t
// needs no clamp). 9 instructions for 16 scores, against 18 for the Cephes exp of softmax.c after a
// subtraction. t's rounding adds up to |t| 2^-24 relative further out (3e-6 at t = -50, where the
// weight is below 1e-15). Weights below 2^-125.5 (scores more than 87 below the maximum) are flushed
// to 0: as subnormals, each instruction that made or read them (P V, the sum) took a microcode assist.
__attribute__((target("avx512f")))
static inline __m512 exp_shifted_avx512(__m512 s, __m512 mb) {
    __m512 t = _mm512_fmsub_ps(s, _mm512_set1_ps(1.44269504088896341f), mb);
    __mmask16 normal = _mm512_cmp_ps_mask(t, _mm512_set1_ps(-125.5f), _CMP_GE_OQ);
    __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(1.327647151972771e-3f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.675541330685163e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550713274960701e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022119723933866e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931469670638644e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0000000716546547f));
    return _mm512_maskz_scalef_ps(normal, p, n);
}

// One 12 x 32 tile of S^T = K Q^T: the K panel ap [d][12] by the (already scaled) Q^T panel bp [d][32],
// its `rows` live rows stored into tile (32 floats a row), each query's maximum over them folded into
// m0 / m1 from the registers. jpgen_kernel_12x32 would fetch the tile's rows beforehand, scale each
// sum and leave the maximum to a second pass over the stored tile.
__attribute__((target("avx512f")))
static inline void scores_12x32(long d, const float *ap, const float *bp, float *tile, long rows, __m512 *m0,
                                __m512 *m1) {
    __m512 acc[2 * MR];
    UNROLL
    for (int i = 0; i < 2 * MR; i++) acc[i] = _mm512_setzero_ps();
    for (long kk = 0; kk < d; kk++, ap += MR, bp += QB) {
        __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
        UNROLL
        for (int r = 0; r < MR; r++) {
            __m512 x = _mm512_set1_ps(ap[r]);
            acc[2 * r] = _mm512_fmadd_ps(x, b0, acc[2 * r]);
            acc[2 * r + 1] = _mm512_fmadd_ps(x, b1, acc[2 * r + 1]);
        }
    }
    UNROLL
    for (int r = 0; r < MR; r++) {
        if (r < rows) {
            _mm512_store_ps(tile + r * QB, acc[2 * r]);
            _mm512_store_ps(tile + r * QB + 16, acc[2 * r + 1]);
            *m0 = _mm512_max_ps(*m0, acc[2 * r]);
            *m1 = _mm512_max_ps(*m1, acc[2 * r + 1]);
        }
    }
}

static float *align64(float *p) { return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

// O^T rows of the last V^T panel when it has at most R live dimensions (R = 4 or 8): the 12-row
// kernel would compute 12 rows for them. Head widths 40, 64 and 160 leave 4, 80 leaves 8; with 64,
// the 12-row kernel spent 72 rows of work on 64 (12% of P V). ap: the panel [kc][12] (rows past R
// unread), bp: P^T [kc][32], c: rows x 32 of O^T (ldc 32), C = acc.
#define DEFINE_KERNEL_ROWS_X32(R)                                                                           \
__attribute__((target("avx512f")))                                                                        \
static void kernel_##R##x32(long kc, const float *ap, const float *bp, float *c, long rows) {               \
    __m512 acc[2 * R];                                                                                      \
    UNROLL                                                                                                  \
    for (int i = 0; i < 2 * R; i++) acc[i] = _mm512_setzero_ps();                                         \
    for (long kk = 0; kk < kc; kk++, ap += MR, bp += QB) {                                                  \
        __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);                                       \
        UNROLL                                                                                              \
        for (int r = 0; r < R; r++) {                                                                       \
            __m512 x = _mm512_set1_ps(ap[r]);                                                               \
            acc[2 * r] = _mm512_fmadd_ps(x, b0, acc[2 * r]);                                                \
            acc[2 * r + 1] = _mm512_fmadd_ps(x, b1, acc[2 * r + 1]);                                        \
        }                                                                                                   \
    }                                                                                                       \
    UNROLL                                                                                                  \
    for (int r = 0; r < R; r++) {                                                                           \
        if (r < rows) {                                                                                     \
            _mm512_store_ps(c + r * QB, acc[2 * r]);                                                        \
            _mm512_store_ps(c + r * QB + 16, acc[2 * r + 1]);                                               \
        }                                                                                                   \
    }                                                                                                       \
}
DEFINE_KERNEL_ROWS_X32(4)
DEFINE_KERNEL_ROWS_X32(8)

// Rows of K and V are a head's slice of [tokens, heads * d]: a stride of several KB, which the
// hardware prefetchers do not follow across pages (the packing loops' loads were a quarter of this
// file's own time in an SDXL step). Row `row`'s values, AHEAD rows (V) or one 12-row panel (K)
// before they are read.
enum { AHEAD = 8 };
static inline void prefetch_row(const float *base, long ld, long row, long rows, long width) {
    if (row >= rows) return;
    const char *p = (const char *)(base + row * ld);
    for (long b = 0; b < width * 4; b += 64) _mm_prefetch(p + b, _MM_HINT_T0);
}

__attribute__((target("avx512f")))
void jpgen_attention_head_avx512(const float *q, long ldq, long tq, const float *k, long ldk,
                                 const float *v, long ldv, long tk, long d, long dv, float scale,
                                 float *out, long ldo, float *workspace) {
    if (tq <= 0 || dv <= 0) return;
    long kpanels = round_up(tk, MR) / MR, vpanels = round_up(dv, MR) / MR;
    float *kp = align64(workspace);
    float *vp = align64(kp + kpanels * d * MR);
    float *qp = align64(vp + vpanels * tk * MR);
    float *pt = align64(qp + d * QB);
    float *ot = align64(pt + tk * QB);
    // K panels: kp[p][c][r] = K[12p + r][c] (zero past tk), the micro-kernel's A panels of K; the
    // next panel's rows are prefetched meanwhile.
    for (long p = 0; p < kpanels; p++) {
        for (long r = 0; r < MR; r++) prefetch_row(k, ldk, (p + 1) * MR + r, tk, d);
        jpgen_pack_a_panel(0, k, ldk, p * MR, tk - p * MR < MR ? tk - p * MR : MR, 0, d, kp + p * d * MR);
    }
    // V^T panels: vp[p][j][r] = V[j][12p + r] (zero past dv), one pass over V's rows.
    for (long j = 0; j < tk; j++) {
        const float *src = v + j * ldv;
        prefetch_row(v, ldv, j + AHEAD, tk, dv);
        for (long p = 0; p < vpanels; p++) {
            long dims = dv - p * MR < MR ? dv - p * MR : MR;
            _mm512_mask_storeu_ps(vp + p * tk * MR + j * MR, (__mmask16)0x0FFF,
                                  _mm512_maskz_loadu_ps((__mmask16)((1u << dims) - 1u), src + p * MR));
        }
    }
    for (long q0 = 0; q0 < tq; q0 += QB) {
        long queries = tq - q0 < QB ? tq - q0 : QB;
        // Q^T for these queries: qp[c][i] = Q[q0 + i][c] (zero past tq), a B panel of Q^T.
        jpgen_pack_b_panel(1, q + q0 * ldq, ldq, 0, queries, 0, d, qp);
        __m512 vs = _mm512_set1_ps(scale);
        for (long i = 0; i < d * QB; i += 16) _mm512_store_ps(qp + i, _mm512_mul_ps(_mm512_load_ps(qp + i), vs));
        // S^T = (scale Q) K^T, straight into P^T's rows, with each query's maximum over the keys.
        __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
        for (long p = 0; p < kpanels; p++) {
            long rows = tk - p * MR < MR ? tk - p * MR : MR;
            scores_12x32(d, kp + p * d * MR, qp, pt + p * MR * QB, rows, &m0, &m1);
        }
        // Column-wise softmax (unnormalised): exp and sum.
        __m512 s0 = _mm512_setzero_ps(), s1 = s0;
        __m512 mb0 = _mm512_mul_ps(m0, _mm512_set1_ps(1.44269504088896341f));
        __m512 mb1 = _mm512_mul_ps(m1, _mm512_set1_ps(1.44269504088896341f));
        for (long j = 0; j < tk; j++) {
            __m512 e0 = exp_shifted_avx512(_mm512_load_ps(pt + j * QB), mb0);
            __m512 e1 = exp_shifted_avx512(_mm512_load_ps(pt + j * QB + 16), mb1);
            _mm512_store_ps(pt + j * QB, e0);
            _mm512_store_ps(pt + j * QB + 16, e1);
            s0 = _mm512_add_ps(s0, e0);
            s1 = _mm512_add_ps(s1, e1);
        }
        __m512 inv0 = _mm512_div_ps(_mm512_set1_ps(1.f), s0), inv1 = _mm512_div_ps(_mm512_set1_ps(1.f), s1);
        // O^T = V^T P^T, 12 dimensions at a time, scaled per query; then stored transposed into O's rows.
        for (long p = 0; p < vpanels; p++) {
            long dims = dv - p * MR < MR ? dv - p * MR : MR;
            float *tile = ot + p * MR * QB;
            if (dims <= 4) kernel_4x32(tk, vp + p * tk * MR, pt, tile, dims);
            else if (dims <= 8) kernel_8x32(tk, vp + p * tk * MR, pt, tile, dims);
            else jpgen_kernel_12x32(tk, vp + p * tk * MR, pt, tile, QB, MR, QB, 1.f, 0.f, 1, NULL);
            for (long r = 0; r < dims; r++) {
                _mm512_store_ps(tile + r * QB, _mm512_mul_ps(_mm512_load_ps(tile + r * QB), inv0));
                _mm512_store_ps(tile + r * QB + 16, _mm512_mul_ps(_mm512_load_ps(tile + r * QB + 16), inv1));
            }
        }
        jpgen_transpose_avx512(ot, QB, dv, queries, out + q0 * ldo, ldo);
    }
}
#else
void jpgen_attention_head_avx512(const float *q, long ldq, long tq, const float *k, long ldk,
                                 const float *v, long ldv, long tk, long d, long dv, float scale,
                                 float *out, long ldo, float *workspace) {
    (void)q; (void)ldq; (void)tq; (void)k; (void)ldk; (void)v; (void)ldv; (void)tk; (void)d; (void)dv;
    (void)scale; (void)out; (void)ldo; (void)workspace;
}
#endif

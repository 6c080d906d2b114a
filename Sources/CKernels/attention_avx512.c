// One attention head, fused, with the AVX-512 micro-kernel of sgemm_avx512.c (no mask):
//   O = softmax(scale * Q K^T) V,   Q [tq, d], K [tk, d], V [tk, dv] -> O [tq, dv]
// (torch.nn.functional.scaled_dot_product_attention for one batch and head).
//
// The products are computed transposed, 32 queries at a time, so that no score matrix is ever
// repacked and the softmax needs no horizontal reductions:
//   P^T [tk, 32] = exp(K Q^T - base)   A = K in 12-key panels (packed once per call), B = the 32 queries'
//                                      scale Q^T [d][32]; each 12 x 32 tile is exponentiated in the
//                                      registers and stored into P^T, which is thereby already the
//                                      k-major B panel of the second product (base: see ABOVE)
//   O^T [dv, 32] = V^T P^T             A = V^T in 12-dimension panels (packed once), B = P^T over k = tk
//   O = (O^T)^T / sum                  scaled per query, stored transposed into O's rows while the
//                                      next block's tiles compute
// P^T for 32 queries is tk * 32 floats (512 KB at 4096 keys: L2-resident).
//
// The head runs with the flush-to-zero and denormals-are-zero modes set (and restored on return):
// subnormal weights (below 2^-126 of the base, at most e^-67 of the largest) are 0, and no instruction
// takes the microcode assist that a subnormal result or operand costs.
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
    long ot = 2 * round_up(dv, MR) * QB;     // O^T [dv][32], two: this block's and the last one's
    long bs = round_up(tk, MR) / MR * QB;    // the base (as mb) each K panel used [tk/12][32]
    return kp + vp + qp + pt + ot + bs + 6 * 16;  // + alignment slack
}

#if defined(__x86_64__)
#include <immintrin.h>

// vreduceps is AVX-512DQ (every AVX-512 CPU but the Xeon Phi; jpgen_sgemm_avx512_available checks it);
// prefetchw is in every AVX-512 CPU.
#define TARGET "avx512f,avx512dq,prfchw"

// 2^t for 16 lanes: t = n + f with n = floor(t) and f in [0, 1) (vreduceps), 2^f from a degree-5
// polynomial fitted for the least largest relative error on [0, 1) (7.5e-8 exactly, 1.7e-7 evaluated in
// float), times 2^n (vscalefps, which takes floor(t) itself). Results below 2^-126 are 0 where `flush`
// (they would be subnormal; each instruction that made or read one would take a microcode assist);
// without it they are left to the flush-to-zero mode, which jpgen_attention_head_avx512 sets.
__attribute__((target(TARGET)))
static inline __m512 exp2_avx512(__m512 t, int flush) {
    __m512 f = _mm512_reduce_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 p = _mm512_set1_ps(1.8775766083659064e-3f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(8.989340252241615e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.582631791754003e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4015361709024516e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931530731948586e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.999999250636197e-1f));
    if (flush) return _mm512_maskz_scalef_ps(_mm512_cmp_ps_mask(t, _mm512_set1_ps(-126.f), _CMP_GE_OQ), p, t);
    return _mm512_scalef_ps(p, t);
}

// exp(s - base) for scores s, given mb = base * log2(e): 2^(s log2(e) - mb), rounded once (one FMA).
__attribute__((target(TARGET)))
static inline __m512 exp_shifted(__m512 s, __m512 mb) {
    return exp2_avx512(_mm512_fmsub_ps(s, _mm512_set1_ps(1.44269504088896341f), mb), 0);
}

// 2^(mb_old - mb_new): the factor from one base to another (mb_old <= mb_new), exactly 1 where they are
// equal, 0 from the first base, -inf. The weights were 2^(s log2(e) - mb_old), so they become
// 2^(s log2(e) - mb_new) but for the factor's own error, whatever the rounding of mb_old and mb_new.
__attribute__((target(TARGET)))
static inline __m512 rebase_factor(__m512 mb_old, __m512 mb_new) {
    __m512 f = exp2_avx512(_mm512_sub_ps(mb_old, mb_new), 1);
    return _mm512_mask_mov_ps(f, _mm512_cmp_ps_mask(mb_old, mb_new, _CMP_EQ_OQ), _mm512_set1_ps(1.f));
}

// The weights are exp(s - base) for a base per query that tiles raise, rather than exp(s - max) after a
// pass that finds the maximum: a tile whose largest score exceeds the base by more than ABOVE raises the
// base to that score + LIFT (from -inf, so the first tile always does). So the weights stay below
// e^ABOVE (2.4e17; their sums below 1e22 at 4096 keys) and the base moves by ABOVE - LIFT at least each
// time: a few times per query even where its scores spread over hundreds. The base is never more than
// LIFT over the largest score, so what the flush to zero drops (weights under 2^-126 of the base) is
// under e^-67 of the largest weight. Each panel's base is kept, and the panels before the last raise
// are brought to the final base at the end, in one pass at most (rescaling all the weights so far at
// each raise made scores spread over hundreds 1.4x slower than the two passes).
enum { ABOVE = 40, LIFT = 20 };

// The running base per query (lane): base, mb = base * log2(e), the sums of the weights so far (at
// that base), and the first panel at the current base.
typedef struct { __m512 base0, base1, mb0, mb1, sum0, sum1; long since; } Softmax;

// Raises the base as ABOVE says, for a tile (panel `panel`) whose largest scores are mx; the sums so far
// follow it.
__attribute__((target(TARGET), noinline))
static void raise_base(Softmax *sm, __m512 mx0, __m512 mx1, long panel) {
    __m512 lift = _mm512_set1_ps((float)LIFT), l2e = _mm512_set1_ps(1.44269504088896341f);
    __m512 nb0 = _mm512_max_ps(sm->base0, _mm512_add_ps(mx0, lift)), nb1 = _mm512_max_ps(sm->base1, _mm512_add_ps(mx1, lift));
    __m512 nmb0 = _mm512_mul_ps(nb0, l2e), nmb1 = _mm512_mul_ps(nb1, l2e);
    sm->sum0 = _mm512_mul_ps(sm->sum0, rebase_factor(sm->mb0, nmb0));
    sm->sum1 = _mm512_mul_ps(sm->sum1, rebase_factor(sm->mb1, nmb1));
    sm->base0 = nb0; sm->base1 = nb1; sm->mb0 = nmb0; sm->mb1 = nmb1;
    sm->since = panel;
}

// The weights of the panels before sm->since (12 rows each; their mb at bases [panel][32]) brought to
// the final base.
__attribute__((target(TARGET)))
static void rescale_panels(const Softmax *sm, const float *bases, float *pt) {
    for (long p = 0; p < sm->since; p++) {
        __m512 b0 = _mm512_load_ps(bases + p * QB), b1 = _mm512_load_ps(bases + p * QB + 16);
        if (_mm512_cmp_ps_mask(b0, sm->mb0, _CMP_EQ_OQ) == 0xFFFF && _mm512_cmp_ps_mask(b1, sm->mb1, _CMP_EQ_OQ) == 0xFFFF)
            continue;
        __m512 f0 = rebase_factor(b0, sm->mb0), f1 = rebase_factor(b1, sm->mb1);
        float *rows = pt + p * MR * QB;
        for (long r = 0; r < MR; r++) {
            _mm512_store_ps(rows + r * QB, _mm512_mul_ps(_mm512_load_ps(rows + r * QB), f0));
            _mm512_store_ps(rows + r * QB + 16, _mm512_mul_ps(_mm512_load_ps(rows + r * QB + 16), f1));
        }
    }
}

// One 12 x 32 tile of P^T = exp(K Q^T - base): the K panel ap [d][12] (keys 12 panel ..< 12 panel + rows)
// by the (already scaled) Q^T panel bp [d][32], exponentiated in the registers (after a raise of the
// base where the tile calls for one) and stored into those rows of P^T (32 floats a row), their sums
// added to sm and the base they used to bases [panel]. (In a pass of its own over P^T, after the
// maximum, the exponentials took 8% of a head at 4096 keys; here the head is 2-3% faster at 4096 keys
// and 5-6% at 1024, the tile's sums added as a tree so that the next tile need not wait for them.)
__attribute__((target(TARGET)))
static inline void weights_12x32(long d, const float *ap, const float *bp, float *pt, long panel, long rows,
                                  Softmax *sm, float *bases) {
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
    __m512 mx0 = acc[0], mx1 = acc[1];
    UNROLL
    for (int r = 1; r < MR; r++) {
        if (r < rows) {
            mx0 = _mm512_max_ps(mx0, acc[2 * r]);
            mx1 = _mm512_max_ps(mx1, acc[2 * r + 1]);
        }
    }
    __m512 room = _mm512_set1_ps((float)ABOVE);
    if (_mm512_cmp_ps_mask(mx0, _mm512_add_ps(sm->base0, room), _CMP_GT_OQ) |
        _mm512_cmp_ps_mask(mx1, _mm512_add_ps(sm->base1, room), _CMP_GT_OQ))
        raise_base(sm, mx0, mx1, panel);
    _mm512_store_ps(bases + panel * QB, sm->mb0);
    _mm512_store_ps(bases + panel * QB + 16, sm->mb1);
    float *tile = pt + panel * MR * QB;
    __m512 e[2 * MR];
    UNROLL
    for (int r = 0; r < MR; r++) {
        if (r < rows) {
            e[2 * r] = exp_shifted(acc[2 * r], sm->mb0);
            e[2 * r + 1] = exp_shifted(acc[2 * r + 1], sm->mb1);
            _mm512_store_ps(tile + r * QB, e[2 * r]);
            _mm512_store_ps(tile + r * QB + 16, e[2 * r + 1]);
        } else {
            e[2 * r] = e[2 * r + 1] = _mm512_setzero_ps();
        }
    }
    // the tile's sums as a tree (a chain of 12 additions per half would hold the next tile back)
    UNROLL
    for (int w = 2; w < 2 * MR; w *= 2) {
        UNROLL
        for (int i = 0; i + w < 2 * MR; i += 2 * w) {
            e[i] = _mm512_add_ps(e[i], e[i + w]);
            e[i + 1] = _mm512_add_ps(e[i + 1], e[i + w + 1]);
        }
    }
    sm->sum0 = _mm512_add_ps(sm->sum0, e[0]);
    sm->sum1 = _mm512_add_ps(sm->sum1, e[1]);
}

// A block's O^T [dv][32] waiting to be stored transposed into its output rows out [queries][ldo], in
// pieces of 16 dimensions by 16 queries (piece 2 i + j: dimensions from 16 i, queries from 16 j); pieces
// is how many are left.
typedef struct { const float *ot; float *out; long queries, pieces; } PendingOutput;

// Stores the next piece of po, if one is left (a piece past its queries stores nothing).
static void store_piece(PendingOutput *po, long dv, long ldo) {
    if (po->pieces == 0) return;
    po->pieces--;
    long i = po->pieces / 2 * 16, j = po->pieces % 2 * 16;
    if (j >= po->queries) return;
    jpgen_transpose_avx512(po->ot + i * QB + j, QB, dv - i < 16 ? dv - i : 16, po->queries - j < 16 ? po->queries - j : 16,
                           po->out + j * ldo + i, ldo);
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

__attribute__((target(TARGET)))
void jpgen_attention_head_avx512(const float *q, long ldq, long tq, const float *k, long ldk,
                                 const float *v, long ldv, long tk, long d, long dv, float scale,
                                 float *out, long ldo, float *workspace) {
    if (tq <= 0 || dv <= 0) return;
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);   // flush to zero, denormals are zero
    long kpanels = round_up(tk, MR) / MR, vpanels = round_up(dv, MR) / MR;
    float *kp = align64(workspace);
    float *vp = align64(kp + kpanels * d * MR);
    float *qp = align64(vp + vpanels * tk * MR);
    float *pt = align64(qp + d * QB);
    float *ot = align64(pt + tk * QB);
    float *bases = align64(ot + 2 * vpanels * MR * QB);
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
    PendingOutput po = {ot, out, 0, 0};
    for (long q0 = 0; q0 < tq; q0 += QB) {
        long queries = tq - q0 < QB ? tq - q0 : QB;
        // Q^T for these queries: qp[c][i] = Q[q0 + i][c] (zero past tq), a B panel of Q^T.
        jpgen_pack_b_panel(1, q + q0 * ldq, ldq, 0, queries, 0, d, qp);
        __m512 vs = _mm512_set1_ps(scale);
        for (long i = 0; i < d * QB; i += 16) _mm512_store_ps(qp + i, _mm512_mul_ps(_mm512_load_ps(qp + i), vs));
        // This block's output rows, written at its end, to L1 meanwhile a few lines a panel: rows several
        // KB apart that the prefetchers do not follow (a store into a cold line waits on it).
        long row_lines = (dv * 4 + 63) / 64, out_lines = queries * row_lines;
        long per_panel = (out_lines + kpanels - 1) / kpanels, line = 0;
        // P^T = exp(S^T - base), S^T = (scale Q) K^T, each 12-key tile exponentiated while in the registers.
        Softmax sm = {_mm512_set1_ps(-INFINITY), _mm512_set1_ps(-INFINITY), _mm512_setzero_ps(), _mm512_setzero_ps(),
                      _mm512_setzero_ps(), _mm512_setzero_ps(), 0};
        // The last block's O^T goes to its rows 16 x 16 at a time between this block's tiles, its stores
        // then drain while the tiles compute (at the block's end they stalled on the store buffer).
        long every = po.pieces > 0 ? (kpanels + po.pieces - 1) / po.pieces : 1;
        for (long p = 0; p < kpanels; p++) {
            if (p % every == 0) store_piece(&po, dv, ldo);
            for (long e = 0; e < per_panel && line < out_lines; e++, line++)
                __builtin_prefetch((const char *)(out + (q0 + line / row_lines) * ldo) + 64 * (line % row_lines), 1, 3);
            long rows = tk - p * MR < MR ? tk - p * MR : MR;
            weights_12x32(d, kp + p * d * MR, qp, pt, p, rows, &sm, bases);
        }
        while (po.pieces > 0) store_piece(&po, dv, ldo);
        rescale_panels(&sm, bases, pt);
        __m512 inv0 = _mm512_div_ps(_mm512_set1_ps(1.f), sm.sum0), inv1 = _mm512_div_ps(_mm512_set1_ps(1.f), sm.sum1);
        // O^T = V^T P^T, 12 dimensions at a time, scaled per query; stored transposed into O's rows during
        // the next block (or at the end).
        float *this_ot = po.ot == ot ? ot + vpanels * MR * QB : ot;
        for (long p = 0; p < vpanels; p++) {
            long dims = dv - p * MR < MR ? dv - p * MR : MR;
            float *tile = this_ot + p * MR * QB;
            if (dims <= 4) kernel_4x32(tk, vp + p * tk * MR, pt, tile, dims);
            else if (dims <= 8) kernel_8x32(tk, vp + p * tk * MR, pt, tile, dims);
            else jpgen_kernel_12x32(tk, vp + p * tk * MR, pt, tile, QB, MR, QB, 1.f, 0.f, 1, NULL);
            for (long r = 0; r < dims; r++) {
                _mm512_store_ps(tile + r * QB, _mm512_mul_ps(_mm512_load_ps(tile + r * QB), inv0));
                _mm512_store_ps(tile + r * QB + 16, _mm512_mul_ps(_mm512_load_ps(tile + r * QB + 16), inv1));
            }
        }
        po = (PendingOutput){this_ot, out + q0 * ldo, queries, (dv + 15) / 16 * 2};
    }
    while (po.pieces > 0) store_piece(&po, dv, ldo);
    _mm_setcsr(csr);
}
#else
void jpgen_attention_head_avx512(const float *q, long ldq, long tq, const float *k, long ldk,
                                 const float *v, long ldv, long tk, long d, long dv, float scale,
                                 float *out, long ldo, float *workspace) {
    (void)q; (void)ldq; (void)tq; (void)k; (void)ldk; (void)v; (void)ldv; (void)tk; (void)d; (void)dv;
    (void)scale; (void)out; (void)ldo; (void)workspace;
}
#endif

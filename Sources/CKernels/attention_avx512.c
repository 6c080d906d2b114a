// One attention head, fused, with the AVX-512 micro-kernel of sgemm_avx512.c (no mask):
//   O = softmax(scale * Q K^T) V,   Q [tq, d], K [tk, d], V [tk, dv] -> O [tq, dv]
// (torch.nn.functional.scaled_dot_product_attention for one batch and head).
//
// The products are computed transposed, 32 queries at a time, so that no score matrix is ever
// repacked and the softmax needs no horizontal reductions:
//   S^T [tk, 32]  = K Q^T      A = K in 12-key panels (packed once per call), B = the 32 queries'
//                               Q^T [d][32]; each 12 x 32 tile is written straight into P^T, which
//                               is thereby already the k-major B panel of the second product
//   P^T = exp(S^T - max)        column-wise (per query) over the tk rows: 32 lanes, vertical max/sum
//   O^T [dv, 32]  = V^T P^T     A = V^T in 12-dimension panels (packed once), B = P^T over k = tk
//   O = (O^T)^T / sum           scaled per query, stored transposed into O's rows
// P^T for 32 queries is tk * 32 floats (512 KB at 4096 keys: L2-resident).
#include "ckernels.h"
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
    long ot = MR * QB;                       // one O^T tile [12][32]
    return kp + vp + qp + pt + ot + 5 * 16;  // + alignment slack
}

#if defined(__x86_64__)
#include <immintrin.h>

// exp with the Cephes polynomial of softmax.c (relative error about 1.2e-7; below -87.33 gives 0).
__attribute__((target("avx512f")))
static inline __m512 exp_avx512(__m512 x) {
    const __m512 low = _mm512_set1_ps(-87.33f), high = _mm512_set1_ps(88.37f);
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, low), high);
    __m512 shifted = _mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(12582912.f));
    __m512 n = _mm512_sub_ps(shifted, _mm512_set1_ps(12582912.f));
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 q = _mm512_set1_ps(1.9875691500e-4f);
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.3981999507e-3f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(8.3334519073e-3f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(4.1665795894e-2f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.6666665459e-1f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(q, r), r, r), _mm512_set1_ps(1.f));
    __m512i bits = _mm512_slli_epi32(_mm512_castps_si512(_mm512_add_ps(shifted, _mm512_set1_ps(127.f))), 23);
    __m512 e = _mm512_mul_ps(y, _mm512_castsi512_ps(bits));
    __mmask16 under = _mm512_cmp_ps_mask(x, low, _CMP_LT_OQ);
    return _mm512_maskz_mov_ps((__mmask16)~under, e);
}

static float *align64(float *p) { return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

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
    // K panels: kp[p][c][r] = K[12p + r][c] (zero past tk).
    for (long p = 0; p < kpanels; p++) {
        float *dst = kp + p * d * MR;
        for (long r = 0; r < MR; r++) {
            long key = p * MR + r;
            if (key < tk) {
                const float *src = k + key * ldk;
                for (long c = 0; c < d; c++) dst[c * MR + r] = src[c];
            } else {
                for (long c = 0; c < d; c++) dst[c * MR + r] = 0.f;
            }
        }
    }
    // V^T panels: vp[p][j][r] = V[j][12p + r] (zero past dv).
    for (long p = 0; p < vpanels; p++) {
        float *dst = vp + p * tk * MR;
        long dims = dv - p * MR < MR ? dv - p * MR : MR;
        for (long j = 0; j < tk; j++) {
            const float *src = v + j * ldv + p * MR;
            for (long r = 0; r < dims; r++) dst[j * MR + r] = src[r];
            for (long r = dims; r < MR; r++) dst[j * MR + r] = 0.f;
        }
    }
    for (long q0 = 0; q0 < tq; q0 += QB) {
        long queries = tq - q0 < QB ? tq - q0 : QB;
        // Q^T for these queries: qp[c][i] = Q[q0 + i][c] (zero past tq).
        for (long i = 0; i < QB; i++) {
            if (i < queries) {
                const float *src = q + (q0 + i) * ldq;
                for (long c = 0; c < d; c++) qp[c * QB + i] = src[c];
            } else {
                for (long c = 0; c < d; c++) qp[c * QB + i] = 0.f;
            }
        }
        // S^T = scale * K Q^T, straight into P^T's rows.
        for (long p = 0; p < kpanels; p++) {
            long rows = tk - p * MR < MR ? tk - p * MR : MR;
            jpgen_kernel_12x32(d, kp + p * d * MR, qp, pt + p * MR * QB, QB, rows, QB, scale, 0.f, 1);
        }
        // Column-wise softmax (unnormalised): max over keys, then exp and sum.
        __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
        for (long j = 0; j < tk; j++) {
            m0 = _mm512_max_ps(m0, _mm512_load_ps(pt + j * QB));
            m1 = _mm512_max_ps(m1, _mm512_load_ps(pt + j * QB + 16));
        }
        __m512 s0 = _mm512_setzero_ps(), s1 = s0;
        for (long j = 0; j < tk; j++) {
            __m512 e0 = exp_avx512(_mm512_sub_ps(_mm512_load_ps(pt + j * QB), m0));
            __m512 e1 = exp_avx512(_mm512_sub_ps(_mm512_load_ps(pt + j * QB + 16), m1));
            _mm512_store_ps(pt + j * QB, e0);
            _mm512_store_ps(pt + j * QB + 16, e1);
            s0 = _mm512_add_ps(s0, e0);
            s1 = _mm512_add_ps(s1, e1);
        }
        __m512 inv0 = _mm512_div_ps(_mm512_set1_ps(1.f), s0), inv1 = _mm512_div_ps(_mm512_set1_ps(1.f), s1);
        // O^T = V^T P^T, 12 dimensions at a time; scaled per query and stored transposed.
        for (long p = 0; p < vpanels; p++) {
            long dims = dv - p * MR < MR ? dv - p * MR : MR;
            jpgen_kernel_12x32(tk, vp + p * tk * MR, pt, ot, QB, MR, QB, 1.f, 0.f, 1);
            for (long r = 0; r < dims; r++) {
                _mm512_store_ps(ot + r * QB, _mm512_mul_ps(_mm512_load_ps(ot + r * QB), inv0));
                _mm512_store_ps(ot + r * QB + 16, _mm512_mul_ps(_mm512_load_ps(ot + r * QB + 16), inv1));
            }
            for (long i = 0; i < queries; i++) {
                float *dst = out + (q0 + i) * ldo + p * MR;
                for (long r = 0; r < dims; r++) dst[r] = ot[r * QB + i];
            }
        }
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

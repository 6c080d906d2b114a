// The inner loops of Normalization.swift (LayerNorm over 1280 channels for every SDXL token,
// GroupNorm + SiLU opening every ResNet block) with AVX-512. The Swift loops, built for baseline
// x86-64, summed in one Double chain (a dependent add per element) and applied 4 lanes at a time.
// Here the statistics are summed in 4 x 8 double lanes in one pass (the same Double precision, shifted
// by the first value instead of the mean), the affine part and SiLU run 16 float lanes (FastMath.swift's
// sigmoid, exp from exp_avx512.h).
#include "ckernels.h"
#include "exp_avx512.h"

#if defined(__x86_64__)
#include <immintrin.h>

// The sums of d = p[i] - shift and of d^2 in 4 x 8 double lanes, in one pass: with shift = p[0],
// (mean - shift)^2 is of the order of the variance for any data a norm sees, so s2 - s1^2 / n loses
// a few bits of Double at most. (Two passes, the mean first, read the data twice: 0.6% of an SDXL
// UNet step in GroupNorm.)
__attribute__((target("avx512f")))
static void shifted_sums(const float *p, long n, double shift, double *s1, double *s2) {
    __m512d a[4], q[4];
    for (int h = 0; h < 4; h++) a[h] = q[h] = _mm512_setzero_pd();
    __m512d s = _mm512_set1_pd(shift);
    long i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int h = 0; h < 4; h++) {
            __m512d v = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(p + i + 8 * h)), s);
            a[h] = _mm512_add_pd(a[h], v);
            q[h] = _mm512_fmadd_pd(v, v, q[h]);
        }
    }
    for (; i < n; i += 8) {
        long left = n - i < 8 ? n - i : 8;
        __mmask8 m = (__mmask8)((1u << left) - 1u);
        __m512 f = _mm512_maskz_loadu_ps((__mmask16)m, p + i);
        __m512d v = _mm512_maskz_sub_pd(m, _mm512_cvtps_pd(_mm512_castps512_ps256(f)), s);
        a[0] = _mm512_add_pd(a[0], v);
        q[0] = _mm512_fmadd_pd(v, v, q[0]);
    }
    *s1 = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a[0], a[1]), _mm512_add_pd(a[2], a[3])));
    *s2 = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(q[0], q[1]), _mm512_add_pd(q[2], q[3])));
}

// 1 / (1 + e^{-v}) (e^{-v} from exp_avx512.h; past 88.37 it stays finite, so the result goes to 0).
__attribute__((target("avx512f")))
static inline __m512 sigmoid16(__m512 v) {
    __m512 e = jpgen_exp16(_mm512_sub_ps(_mm512_setzero_ps(), v));
    return _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_add_ps(e, _mm512_set1_ps(1.f)));
}

__attribute__((target("avx512f")))
static void scale_shift_avx512(const float *p, long n, float center, const float *scale, float scale1,
                               const float *shift, float shift1, int silu, float *q) {
    __m512 c = _mm512_set1_ps(center), s1 = _mm512_set1_ps(scale1), h1 = _mm512_set1_ps(shift1);
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        __m512 sc = scale ? _mm512_mul_ps(_mm512_maskz_loadu_ps(m, scale + i), s1) : s1;
        __m512 sh = shift ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, shift + i), h1) : h1;
        __m512 v = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p + i), c), sc, sh);
        if (silu) v = _mm512_mul_ps(v, sigmoid16(v));
        _mm512_mask_storeu_ps(q + i, m, v);
    }
}
#endif

int jpgen_mean_m2(const float *p, long n, double *mean, double *m2) {
#if defined(__x86_64__)
    if (jpgen_ckernels_avx512()) {
        if (n <= 0) {
            *mean = 0.0;
            *m2 = 0.0;
            return 1;
        }
        double shift = (double)p[0], s1, s2;
        shifted_sums(p, n, shift, &s1, &s2);
        *mean = shift + s1 / (double)n;
        double m = s2 - s1 * s1 / (double)n;
        *m2 = m > 0.0 ? m : 0.0;
        return 1;
    }
#endif
    (void)p; (void)n; (void)mean; (void)m2;
    return 0;
}

int jpgen_scale_shift(const float *p, long n, float center, const float *scale, float scale1, const float *shift,
                      float shift1, int silu, float *q) {
#if defined(__x86_64__)
    if (jpgen_ckernels_avx512()) {
        scale_shift_avx512(p, n, center, scale, scale1, shift, shift1, silu, q);
        return 1;
    }
#endif
    (void)p; (void)n; (void)center; (void)scale; (void)scale1; (void)shift; (void)shift1; (void)silu; (void)q;
    return 0;
}

// GEGLU (diffusers' GEGLU after its projection): out = a * gelu(gate) for rows [a | gate] of 2f
// values, gelu(v) = v / 2 * (1 + erf(v / sqrt 2)) (the exact, erf form). SDXL's feed-forward layers
// run it on 70 rows of 1024 x 10240 per UNet step; the Swift loop of Activations.swift, built for
// baseline x86-64, ran 4 lanes at a time (2.4% of an SDXL step). Here 16 lanes with AVX-512, the
// same formulas as FastMath.swift: erf from Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7),
// e^{-x^2} from exp_avx512.h (Cephes' polynomial, 2^n applied by vscalefps).
#include "ckernels.h"
#include "exp_avx512.h"
#include "sgemm_avx512_kernel.h"

#if defined(__x86_64__)
#include <immintrin.h>

// a * gelu(g) for 16 lanes.
__attribute__((target("avx512f")))
static inline __m512 geglu16(__m512 a, __m512 g) {
    __m512 x = _mm512_mul_ps(g, _mm512_set1_ps(0.70710678118654752f));
    __m512 ax = _mm512_abs_ps(x);
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_fmadd_ps(ax, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.f)));
    __m512 p = _mm512_set1_ps(1.061405429f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
    // e^{-x^2} no smaller than e^{-80}: past |x| = 8.9 erf is 1 in float either way, and the
    // subnormal e^{-x^2} of 9.3 < |x| < 10.2 (and p t e after it) each cost a microcode assist.
    __m512 e = jpgen_exp16(_mm512_max_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), ax), ax),
                                         _mm512_set1_ps(-80.f)));
    __m512 erf_abs = _mm512_fnmadd_ps(_mm512_mul_ps(p, t), e, _mm512_set1_ps(1.f));
    // erf is odd: the sign of x on |erf|
    __m512 erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(erf_abs),
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u))));
    __m512 half_g = _mm512_mul_ps(g, _mm512_set1_ps(0.5f));
    return _mm512_mul_ps(a, _mm512_fmadd_ps(half_g, erf, half_g));
}

__attribute__((target("avx512f")))
void jpgen_geglu_span_avx512(const float *a, const float *g, long n, float *o) {
    long j = 0;
    for (; j + 16 <= n; j += 16) _mm512_storeu_ps(o + j, geglu16(_mm512_loadu_ps(a + j), _mm512_loadu_ps(g + j)));
    if (j < n) {
        __mmask16 m = (__mmask16)((1u << (n - j)) - 1u);
        _mm512_mask_storeu_ps(o + j, m, geglu16(_mm512_maskz_loadu_ps(m, a + j), _mm512_maskz_loadu_ps(m, g + j)));
    }
}

__attribute__((target("avx512f")))
static void geglu_rows_avx512(const float *x, long rows, long f, float *out) {
    for (long row = 0; row < rows; row++) jpgen_geglu_span_avx512(x + row * 2 * f, x + row * 2 * f + f, f, out + row * f);
}
#endif

int jpgen_geglu_rows(const float *x, long rows, long f, float *out) {
#if defined(__x86_64__)
    if (jpgen_ckernels_avx512()) {
        geglu_rows_avx512(x, rows, f, out);
        return 1;
    }
#endif
    (void)x; (void)rows; (void)f; (void)out;
    return 0;
}

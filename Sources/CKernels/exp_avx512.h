// exp for 16 float lanes with AVX-512, shared by geglu.c and norms.c (CKernels-internal).
#ifndef JPGEN_EXP_AVX512_H
#define JPGEN_EXP_AVX512_H

#if defined(__x86_64__)
#include <immintrin.h>

/// e^x: x = n ln 2 + r, |r| <= ln 2 / 2, Cephes' degree-6 polynomial for e^r (the same as
/// FastMath.swift's fastExp, relative error about 1.2e-7), times 2^n by vscalefps. x is clamped to
/// [-104, 88.37]: below -104, 2^n underflows to 0.
__attribute__((target("avx512f")))
static inline __m512 jpgen_exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.f)), _mm512_set1_ps(88.37f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.f));
    return _mm512_scalef_ps(y, n);
}
#endif

#endif

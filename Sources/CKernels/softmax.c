// Softmax rows (attention scores, 4096 keys per row at SD's 64x64 level): one pass for the maximum,
// one for exp and the sum. The AVX2 + FMA path runs 8 lanes per instruction; the portable path is
// the same arithmetic one element at a time.
#include "ckernels.h"

#include <math.h>

static inline float exp_scalar(float x) {
    float xc = x < -87.33f ? -87.33f : (x > 88.37f ? 88.37f : x);
    float n = (xc * 1.44269504088896341f + 12582912.f) - 12582912.f;   // round(x / ln 2)
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float q = 1.9875691500e-4f;
    q = q * r + 1.3981999507e-3f;
    q = q * r + 8.3334519073e-3f;
    q = q * r + 4.1665795894e-2f;
    q = q * r + 1.6666665459e-1f;
    q = q * r + 5.0000001201e-1f;
    float y = q * r * r + r + 1.f;
    union { unsigned u; float f; } scale = { .u = (unsigned)((int)n + 127) << 23 };
    return x < -87.33f ? 0.f : y * scale.f;
}

static float row_portable(float *p, long n) {
    float mx = -INFINITY;
    for (long i = 0; i < n; i++) mx = p[i] > mx ? p[i] : mx;
    if (mx == -INFINITY) {
        for (long i = 0; i < n; i++) p[i] = 0.f;
        return 0.f;
    }
    // Eight partial sums, as the vector path keeps: shorter rounding chains than one running sum.
    float part[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    for (long i = 0; i < n; i++) { p[i] = exp_scalar(p[i] - mx); part[i & 7] += p[i]; }
    float sum = 0.f;
    for (int k = 0; k < 8; k++) sum += part[k];
    return 1.f / sum;
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2,fma")))
static inline __m256 exp_avx2(__m256 x) {
    const __m256 low = _mm256_set1_ps(-87.33f), high = _mm256_set1_ps(88.37f);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, low), high);
    __m256 shifted = _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(12582912.f));
    __m256 n = _mm256_sub_ps(shifted, _mm256_set1_ps(12582912.f));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 q = _mm256_set1_ps(1.9875691500e-4f);
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.3981999507e-3f));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(8.3334519073e-3f));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(4.1665795894e-2f));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.6666665459e-1f));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(q, r), r, r), _mm256_set1_ps(1.f));
    // 1.5 * 2^23 + n + 127 holds n + 127 in its low mantissa bits; shifted by 23 it is 2^n's exponent.
    __m256i bits = _mm256_slli_epi32(_mm256_castps_si256(_mm256_add_ps(shifted, _mm256_set1_ps(127.f))), 23);
    __m256 e = _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
    return _mm256_andnot_ps(_mm256_cmp_ps(x, low, _CMP_LT_OQ), e);
}

__attribute__((target("avx2,fma")))
static float row_avx2(float *p, long n) {
    long i = 0;
    __m256 m = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(p + i));
    float lanes[8];
    _mm256_storeu_ps(lanes, m);
    float mx = -INFINITY;
    for (int k = 0; k < 8; k++) mx = lanes[k] > mx ? lanes[k] : mx;
    for (; i < n; i++) mx = p[i] > mx ? p[i] : mx;
    if (mx == -INFINITY) {
        for (long j = 0; j < n; j++) p[j] = 0.f;
        return 0.f;
    }
    __m256 vmx = _mm256_set1_ps(mx), acc = _mm256_setzero_ps();
    i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(p + i), vmx));
        _mm256_storeu_ps(p + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    _mm256_storeu_ps(lanes, acc);
    float sum = 0.f;
    for (int k = 0; k < 8; k++) sum += lanes[k];
    for (; i < n; i++) { p[i] = exp_scalar(p[i] - mx); sum += p[i]; }
    return 1.f / sum;
}

static int detect_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

static int avx2_state = -1;   // -1 unknown; set once (a benign race: every thread computes the same value)

int jpgen_ckernels_avx2(void) {
#if defined(__x86_64__)
    if (avx2_state < 0) avx2_state = detect_avx2();
    return avx2_state;
#else
    return 0;
#endif
}

static int avx512_state = -1;

int jpgen_ckernels_avx512(void) {
#if defined(__x86_64__)
    if (avx512_state < 0) {
        __builtin_cpu_init();
        avx512_state = __builtin_cpu_supports("avx512f") && jpgen_ckernels_avx2();
    }
    return avx512_state;
#else
    return 0;
#endif
}

void jpgen_ckernels_force_portable(int on) {
    avx2_state = on ? 0 : -1;
    avx512_state = on ? 0 : -1;
}

void jpgen_ckernels_force_avx2(int on) {
    avx2_state = -1;
    avx512_state = on ? 0 : -1;
}

float jpgen_unnormalized_softmax_row(float *p, long n) {
    if (n <= 0) return 0.f;
#if defined(__x86_64__)
    if (jpgen_ckernels_avx2()) return row_avx2(p, n);
#endif
    return row_portable(p, n);
}

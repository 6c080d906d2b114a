// The AVX-512 micro-kernel of sgemm_avx512.c, shared with attention_avx512.c, and geglu.c's span for
// sgemm_avx512.c's fused GEGLU projection (CKernels-internal).
#ifndef JPGEN_SGEMM_AVX512_KERNEL_H
#define JPGEN_SGEMM_AVX512_KERNEL_H

/// C tile [rows x cols] (rows <= 12, cols <= 32, leading dimension ldc) from the k-major panels
/// ap [kc][12] and bp [kc][32]: first != 0 gives C = alpha * acc + beta * C + bias (beta 0: C
/// unread; bias NULL, or the values of the tile's columns), first == 0 gives C += alpha * acc. Only
/// on CPUs with AVX-512F.
void jpgen_kernel_12x32(long kc, const float *ap, const float *bp, float *c, long ldc, long rows,
                        long cols, float alpha, float beta, int first, const float *bias);

/// out[j] = a[j] * gelu(g[j]) for j < n (erf GELU), from geglu.c; AVX-512F only.
void jpgen_geglu_span_avx512(const float *a, const float *g, long n, float *out);

#endif

// The AVX-512 micro-kernel of sgemm_avx512.c and its packing, shared with attention_avx512.c, and
// geglu.c's span for sgemm_avx512.c's fused GEGLU projection (CKernels-internal).
#ifndef JPGEN_SGEMM_AVX512_KERNEL_H
#define JPGEN_SGEMM_AVX512_KERNEL_H

/// C tile [rows x cols] (rows <= 12, cols <= 32, leading dimension ldc) from the k-major panels
/// ap [kc][12] and bp [kc][32]: first != 0 gives C = (alpha * acc + bias) + beta * C (beta 0: C
/// unread; bias NULL, or the values of the tile's columns), first == 0 gives C += alpha * acc. Only
/// on CPUs with AVX-512F.
void jpgen_kernel_12x32(long kc, const float *ap, const float *bp, float *c, long ldc, long rows,
                        long cols, float alpha, float beta, int first, const float *bias);

/// The micro-kernel's operand panels, as sgemm_avx512.c packs them: an A panel dst [kc][12] of rows
/// i0 ..< i0 + rows of op(A) (zero past them), a B panel dst [kc][32] of columns j0 ..< j0 + cols of
/// op(B) (zero past them), k in k0 ..< k0 + kc. op(A) is A [m, k], or A^T when trans_a (A stored
/// [k, m]); op(B) is B [k, n], or B^T when trans_b (B stored [n, k]).
void jpgen_pack_a_panel(int trans_a, const float *a, long lda, long i0, long rows, long k0, long kc, float *dst);
void jpgen_pack_b_panel(int trans_b, const float *b, long ldb, long j0, long cols, long k0, long kc, float *dst);

/// out[j] = a[j] * gelu(g[j]) for j < n (erf GELU), from geglu.c; AVX-512F only.
void jpgen_geglu_span_avx512(const float *a, const float *g, long n, float *out);

#endif

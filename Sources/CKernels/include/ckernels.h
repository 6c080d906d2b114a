// Hot inner loops of Kernels written with x86 vector intrinsics, chosen at run time by what the CPU
// supports (AVX2 + FMA), so the Swift build stays portable. Each function has a portable fallback.
#ifndef JPGEN_CKERNELS_H
#define JPGEN_CKERNELS_H

/// Replaces p[0..<n] by exp(p - max(p)) and returns 1 / sum of the result (the softmax is the row
/// times that factor). A row whose entries are all -inf becomes zeros and the factor is 0.
/// exp is Cephes' expf polynomial (relative error about 1.2e-7); arguments below -87.33 give 0.
float jpgen_unnormalized_softmax_row(float *p, long n);

/// 1 when jpgen_unnormalized_softmax_row uses the AVX2 + FMA path on this CPU.
int jpgen_ckernels_avx2(void);

/// For tests: 1 makes every function take its portable path; 0 goes back to detection.
void jpgen_ckernels_force_portable(int on);

#endif

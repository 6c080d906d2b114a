// UNROLL before a loop of fixed count unrolls it whatever the optimisation level, so that vectors
// indexed by its counter stay in registers (clang at -O2 kept the 16 vectors of sgemm_avx512.c's
// transpose16 in memory: 3x slower packing). CKernels-internal.
#ifndef JPGEN_UNROLL_H
#define JPGEN_UNROLL_H

#if defined(__clang__)
#define UNROLL _Pragma("clang loop unroll(full)")
#else
#define UNROLL _Pragma("GCC unroll 16")
#endif

#endif

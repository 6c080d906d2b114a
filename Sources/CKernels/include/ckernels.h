// Hot inner loops of Kernels written with x86 vector intrinsics, chosen at run time by what the CPU
// supports (AVX2 + FMA), so the Swift build stays portable. Each function has a portable fallback.
#ifndef JPGEN_CKERNELS_H
#define JPGEN_CKERNELS_H

/// Replaces p[0..<n] by exp(p - max(p)) and returns 1 / sum of the result (the softmax is the row
/// times that factor). A row whose entries are all -inf becomes zeros and the factor is 0.
/// exp is Cephes' expf polynomial (relative error about 1.2e-7); arguments below -87.33 give 0.
float jpgen_unnormalized_softmax_row(float *p, long n);

/// GEGLU over rows x [rows][2f] = [a | gate]: out [rows][f] = a * gelu(gate), the erf form
/// (FastMath.swift's formulas, 16 lanes). Returns 0 without doing anything where the CPU lacks
/// AVX-512 (the caller's loop then runs).
int jpgen_geglu_rows(const float *x, long rows, long f, float *out);

/// Normalisation statistics of p[0..<n] in double: *mean, and *m2 = sum of (p - mean)^2. Returns 0
/// without doing anything where the CPU lacks AVX-512.
int jpgen_mean_m2(const float *p, long n, double *mean, double *m2);
/// q[i] = (p[i] - center) * (scale ? scale[i] * scale1 : scale1) + (shift ? shift[i] : 0) + shift1,
/// then q[i] * sigmoid(q[i]) when silu. Returns 0 without doing anything where the CPU lacks AVX-512.
int jpgen_scale_shift(const float *p, long n, float center, const float *scale, float scale1, const float *shift,
                      float shift1, int silu, float *q);

/// nn.Linear over a weight packed once (packed_linear.c). The weight w [n, k] (PyTorch's [out, in])
/// is packed into jpgen_packed_linear_floats(n, k) floats; each call packs its input rows a [m, k]
/// into jpgen_packed_rows_floats(m, k) floats, then c [m, n] = a w^T + bias (bias may be NULL) is
/// computed for the output panels [panel_begin, panel_end) of jpgen_packed_linear_panels(n) (16
/// output features each), so that threads can split the panels.
long jpgen_packed_linear_floats(long n, long k);
long jpgen_packed_linear_panels(long n);
void jpgen_pack_linear_weight(const float *w, long n, long k, float *packed);
void jpgen_unpack_linear_weight(const float *packed, long n, long k, float *w);
long jpgen_packed_rows_floats(long m, long k);
void jpgen_pack_linear_rows(const float *a, long m, long k, float *packed);
void jpgen_packed_linear(const float *packed_rows, long m, long k, const float *packed_weight, long n,
                         const float *bias, float *c, long panel_begin, long panel_end);

/// C [m, n] = alpha * op(A) op(B) + beta * C, row-major, with the AVX-512 micro-kernel of
/// sgemm_avx512.c (single-threaded; callers split C over threads). op(A) [m, k] is stored [k, m]
/// when trans_a, op(B) [k, n] is stored [n, k] when trans_b. beta 0 never reads C. workspace holds
/// jpgen_sgemm_workspace_floats(m, n, k) floats. Call only when jpgen_sgemm_avx512_available().
void jpgen_sgemm_avx512(int trans_a, int trans_b, long m, long n, long k, float alpha,
                        const float *a, long lda, const float *b, long ldb, float beta,
                        float *c, long ldc, float *workspace);
long jpgen_sgemm_workspace_floats(long m, long n, long k);

/// A packed once for many products (e.g. a Winograd filter): jpgen_sgemm_packed_a_floats(m, k)
/// floats hold op(A) [m, k] in the micro-kernel's panels. jpgen_sgemm_avx512_packed_a then computes
/// rows row0 ..< row0 + m (row0 a multiple of 12) of C = alpha * op(A) op(B) + beta * C from the
/// packed A of all packed_rows rows; c points at row row0. Same workspace as jpgen_sgemm_avx512.
long jpgen_sgemm_packed_a_floats(long m, long k);
void jpgen_sgemm_pack_a(int trans_a, long m, long k, const float *a, long lda, float *packed);
void jpgen_sgemm_avx512_packed_a(long packed_rows, long row0, long m, long n, long k, float alpha,
                                 const float *packed_a, int trans_b, const float *b, long ldb,
                                 float beta, float *c, long ldc, float *workspace);
/// B packed once for many products (e.g. a linear layer's weight): jpgen_sgemm_packed_b_floats(n, k)
/// floats hold op(B) [k, n] in the micro-kernel's 32-column panels (jpgen_sgemm_pack_b writes panels
/// panel0 ..< panel1, so threads can share the work). jpgen_sgemm_avx512_packed_b then computes
/// columns col0 ..< col0 + n (col0 a multiple of 32) of C = (alpha * A op(B) + bias) + beta * C, A
/// [m, k] row-major, from the packed B of all packed_cols columns; c and bias (NULL: none; else one
/// value per column, added to every row) point at column col0. Same workspace as jpgen_sgemm_avx512.
long jpgen_sgemm_packed_b_floats(long n, long k);
/// The k block (KC) of the packed layouts.
long jpgen_sgemm_k_block(void);
void jpgen_sgemm_pack_b(int trans_b, long n, long k, const float *b, long ldb, long panel0, long panel1,
                        float *packed);
/// The same for a weight [n, k] (trans_b) stacked from parts: rows row0 ..< row0 + rows given apart (row
/// r at b + (r - row0) * ldb), into panels panel0 ..< panel1 of the whole's packed layout, those of these
/// rows. row0 a multiple of 32, and rows too unless they end at n (a panel never spans two parts).
void jpgen_sgemm_pack_b_rows(long n, long k, long row0, long rows, const float *b, long ldb, long panel0,
                             long panel1, float *packed);
void jpgen_sgemm_avx512_packed_b(long packed_cols, long col0, long m, long n, long k, float alpha,
                                 const float *a, long lda, const float *packed_b, float beta,
                                 const float *bias, float *c, long ldc, float *workspace);
/// Both operands packed beforehand (e.g. a Winograd filter and the transformed tiles): rows row0 ..<
/// row0 + m of packed A (row0 a multiple of 12) times columns col0 ..< col0 + n of packed B (col0 a
/// multiple of 32) into C = (alpha * A B + bias) + beta * C; c and bias (NULL: none; else one value per
/// column) point at column col0, c at row row0. No workspace.
void jpgen_sgemm_avx512_packed_ab(long packed_rows, long row0, long m, long packed_cols, long col0, long n,
                                  long k, float alpha, const float *packed_a, const float *packed_b, float beta,
                                  const float *bias, float *c, long ldc);
/// GEGLU fused into its projection (diffusers' GEGLU: proj, then hidden * gelu(gate)): out [m, f] (leading
/// dimension ldo) = h * gelu(g), [h | g] = A W^T + bias, A [m, k] row-major, W [2f, k] packed by
/// jpgen_sgemm_pack_b (packed_cols 2f), bias NULL or [2f]. Bit for bit the unfused result; the [m, 2f]
/// projection is never stored. Only output columns j0 ..< j1 (multiples of 32; 0 and f for all) are
/// computed. packed_out: NULL, or the result goes there instead of out, as rows row0 ..< row0 + m (row0 a
/// multiple of 12) of the packed A [packed_rows, f] of jpgen_sgemm_pack_a, ready for the next product
/// (jpgen_sgemm_avx512_packed_ab). Single-threaded: callers split the rows or the columns. 0 (nothing
/// done) without AVX-512, when f or the columns are not multiples of 32, or when the rows do not fit
/// packed_out. Workspace: jpgen_linear_geglu_workspace_floats(m, k) floats.
long jpgen_linear_geglu_workspace_floats(long m, long k);
int jpgen_linear_geglu_packed(long m, long f, long k, long j0, long j1, const float *a, long lda,
                              const float *packed_b, const float *bias, float *out, long ldo, float *packed_out,
                              long packed_rows, long row0, float *workspace);
/// The Winograd filter U = G g G^T (tile 2 or 4: alpha^2 = 16 or 36 positions) of output channels
/// o0 ..< o0 + rows of a [O, C, 3, 3] weight, straight into the packed form of jpgen_sgemm_pack_a:
/// position q's [rows, C] matrix at packed + q * stride (stride >= jpgen_sgemm_packed_a_floats(rows,
/// C)). Writes the 12-row panels panel0 ..< panel1 only (all: 0 ..< ceil(rows / 12)), so that threads
/// can share one filter. AVX-512 only (jpgen_sgemm_avx512_available).
void jpgen_winograd_filter_pack(const float *weight, long c, int tile, long o0, long rows, long panel0,
                                long panel1, float *packed, long stride);
/// M = U V for output channels o0 ..< o0 + rows of a [O, C, 3, 3] weight at every position q < alpha^2,
/// the filter never made whole: kb input channels at a time (kb a multiple of 16 dividing the k block,
/// jpgen_sgemm_k_block), it is transformed into buf (jpgen_winograd_chunk_buffer_floats(rows, kb,
/// tile) floats, sized to stay in L2) and multiplied at once, the sums kept in M. v: each position's
/// [C, tiles] matrix in jpgen_sgemm_pack_b's packed form, v_stride floats apart. M[r, q, t] (row r of
/// the chunk) at mm + r * ldr + q * ldq + t. 0 (nothing done) without AVX-512 or for a kb it cannot use.
long jpgen_winograd_chunk_buffer_floats(long rows, long kb, int tile);
int jpgen_winograd_chunk_products(const float *weight, long c, int tile, long o0, long rows, const float *v,
                                  long v_stride, long tiles, long kb, float *mm, long ldr, long ldq, float *buf);

/// The Winograd input transform (winograd_avx512.c) of tiles tx0 ..< tx0 + count (count <= 16) of
/// tile row ty of one channel's plane [h, w], for F(m x m, 3 x 3) (m = 2 or 4, alpha = m + 2):
/// dst[q * stride + l] = (B^T d_l B)[q] for q < alpha^2, with d_l the alpha x alpha input at rows
/// m ty - 1 ..., columns m (tx0 + l) - 1 ... (zero outside the plane). AVX-512F only.
void jpgen_winograd_input_tiles(const float *plane, long h, long w, int m, long ty, long tx0, long count,
                                float *dst, long stride);
/// The Winograd output transform of the same tiles of one output channel: rows m ty ..< m ty + m and
/// columns m tx0 ..< m (tx0 + count) of plane [h, w] (clipped to it) = A^T M_l A + bias, M_l lane l
/// of mm[q * ldm] (16 floats readable at each q). AVX-512F only.
void jpgen_winograd_output_tiles(const float *mm, long ldm, int m, float bias, long count, float *plane, long h,
                                 long w, long ty, long tx0);

/// dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols, through 16 x 16 blocks in registers
/// (sgemm_avx512.c); only on CPUs with AVX-512F.
void jpgen_transpose_avx512(const float *src, long lds, long rows, long cols, float *dst, long ldd);
/// The same plus an addend: dst[j * ldd + i] = src[i * lds + j] + add[j * lda + i] (add NULL: none).
void jpgen_transpose_add_avx512(const float *src, long lds, long rows, long cols, const float *add, long lda,
                                float *dst, long ldd);

/// One attention head without a mask (attention_avx512.c): out [tq, dv] (leading dimension ldo) =
/// softmax(scale * q k^T) v for q [tq, d], k [tk, d], v [tk, dv] with leading dimensions ldq, ldk,
/// ldv; tk >= 1. Single-threaded; workspace holds jpgen_attention_workspace_floats(tk, d, dv)
/// floats. Call only when jpgen_sgemm_avx512_available().
void jpgen_attention_head_avx512(const float *q, long ldq, long tq, const float *k, long ldk,
                                 const float *v, long ldv, long tk, long d, long dv, float scale,
                                 float *out, long ldo, float *workspace);
long jpgen_attention_workspace_floats(long tk, long d, long dv);
/// 1 when the CPU has AVX-512F and AVX-512DQ (every AVX-512 CPU but the Xeon Phi): the AVX-512 GEMM,
/// attention, Winograd and GEGLU kernels may be called.
int jpgen_sgemm_avx512_available(void);

/// 1 when jpgen_unnormalized_softmax_row uses the AVX2 + FMA path on this CPU.
int jpgen_ckernels_avx2(void);

/// 1 when the CPU has AVX-512F (and AVX2 + FMA): jpgen_packed_linear then uses 12x32 tiles.
int jpgen_ckernels_avx512(void);

/// For tests: 1 makes every function take its portable path; 0 goes back to detection.
void jpgen_ckernels_force_portable(int on);

/// For tests: 1 keeps the functions that have AVX-512 paths on their AVX2 ones; 0 goes back to
/// detection.
void jpgen_ckernels_force_avx2(int on);

#endif

#ifndef TIEFSEE_CKERNELS_H
#define TIEFSEE_CKERNELS_H

#include <stdint.h>
#include <stddef.h>
#include "bert_ops.h"

#ifdef __cplusplus
extern "C" {
#endif


/* Spin-wait hint (PAUSE): lets the sibling hyperthread run and saves power while spinning. */
static inline void tf_cpu_relax(void) { __builtin_ia32_pause(); }

/* Thread-pool nesting depth of the calling thread (threading.c). */
int tf_pool_depth(void);
void tf_pool_depth_add(int delta);
/* Whether the calling thread is inside a decode step (threading.c); the setter returns the old value. */
int tf_decode_step(void);
int tf_set_decode_step(int on);
/* glibc: keep up to `bytes` of freed heap memory for reuse (mmap and trim thresholds). */
void tf_keep_freed_memory(int bytes);

/* ------------------------------------------------------------------------------------------
 * Dequantization to f32 (dequant.c). `n` is the number of elements; for block types it must
 * be a multiple of the block size (32 for Q4_0..Q8_0, 256 for K-quants). Results are bit-exact
 * with the `gguf` Python package (no fused multiply-adds, same operation order).
 * ---------------------------------------------------------------------------------------- */
void tf_dequant_f32(const void *src, float *dst, int64_t n);
void tf_dequant_f16(const void *src, float *dst, int64_t n);
void tf_dequant_bf16(const void *src, float *dst, int64_t n);
void tf_dequant_f8_e4m3(const void *src, float *dst, int64_t n);
void tf_dequant_q4_0(const void *src, float *dst, int64_t n);
void tf_dequant_q4_1(const void *src, float *dst, int64_t n);
void tf_dequant_q5_0(const void *src, float *dst, int64_t n);
void tf_dequant_q5_1(const void *src, float *dst, int64_t n);
void tf_dequant_q8_0(const void *src, float *dst, int64_t n);
void tf_dequant_q2_K(const void *src, float *dst, int64_t n);
void tf_dequant_q3_K(const void *src, float *dst, int64_t n);
void tf_dequant_q4_K(const void *src, float *dst, int64_t n);
void tf_dequant_q5_K(const void *src, float *dst, int64_t n);
void tf_dequant_q6_K(const void *src, float *dst, int64_t n);
/* The low-bit types (dequant_lowbit.c): IQ codebook types, MXFP4 (blocks of 32), ternary TQ. */
void tf_dequant_iq2_xxs(const void *src, float *dst, int64_t n);
void tf_dequant_iq2_xs(const void *src, float *dst, int64_t n);
void tf_dequant_iq2_s(const void *src, float *dst, int64_t n);
void tf_dequant_iq3_xxs(const void *src, float *dst, int64_t n);
void tf_dequant_iq3_s(const void *src, float *dst, int64_t n);
void tf_dequant_iq1_s(const void *src, float *dst, int64_t n);
void tf_dequant_iq1_m(const void *src, float *dst, int64_t n);
void tf_dequant_iq4_nl(const void *src, float *dst, int64_t n);
void tf_dequant_iq4_xs(const void *src, float *dst, int64_t n);
void tf_dequant_mxfp4(const void *src, float *dst, int64_t n);
void tf_dequant_tq1_0(const void *src, float *dst, int64_t n);
void tf_dequant_tq2_0(const void *src, float *dst, int64_t n);

/* One row of a DeepSeek-style block-scaled FP8 weight: `n` e4m3fn values of row `r`, and
 * `scale_row` = the row r/block of weight_scale_inv (ceil(n/block) f32 values). Element c
 * becomes fp8(src[c]) * scale_row[c / block]. */
void tf_dequant_f8_e4m3_block_scaled_row(const void *src, const float *scale_row, float *dst,
                                         int64_t n, int block);

/* Scalar conversions. */
float tf_f16_to_f32(uint16_t h);
float tf_bf16_to_f32(uint16_t h);
float tf_f8_e4m3_to_f32(uint8_t v);
uint16_t tf_f32_to_f16(float f);   /* F16C, round to nearest even */
void tf_f32_to_f16_row(const float *src, uint16_t *dst, int64_t n);

/* ------------------------------------------------------------------------------------------
 * Activation quantization and quantized dot products (quant_dot.c, AVX2).
 *
 * Activation format Q8A (Tiefsee's own, not byte-compatible with ggml's block_q8_0), for every
 * quantized weight type: per 32 values
 *      { float d; float s; int8_t qs[32]; }   value = d*qs, s = d * sum(qs)      (40 bytes)
 * K-quant weights use it too: one activation scale per 32 values, where llama.cpp uses one per
 * 256 (its Q8_K), which measured as the largest error source against the f32 reference.
 * qs are in [-127, 127], d = max|x| / 127 (0 for an all-zero block).
 * ---------------------------------------------------------------------------------------- */
#define TF_Q8A_BLOCK_SIZE 32
#define TF_Q8A_BLOCK_BYTES 40

typedef struct { float d; float s; int8_t qs[32]; } tf_block_q8a;

void tf_quantize_row_q8_0(const float *x, void *y, int n);   /* n % 32 == 0, writes Q8A */
void tf_quantize_row_q8_0_ref(const float *x, void *y, int n);
/* y_main = Q8A(x), y_res = Q8A(x - dequant(y_main)): ~15-bit activations as two Q8A rows. */
void tf_quantize_row_q8_0_residual(const float *x, void *y_main, void *y_res, int n);

/* Dot of one weight row (n elements, ggml block layout) with quantized activations. */
float tf_vec_dot_q4_0(int n, const void *wrow, const void *xq);
float tf_vec_dot_q4_1(int n, const void *wrow, const void *xq);
float tf_vec_dot_q5_0(int n, const void *wrow, const void *xq);
float tf_vec_dot_q5_1(int n, const void *wrow, const void *xq);
float tf_vec_dot_q8_0(int n, const void *wrow, const void *xq);
float tf_vec_dot_q4_K(int n, const void *wrow, const void *xq);
float tf_vec_dot_q5_K(int n, const void *wrow, const void *xq);
float tf_vec_dot_q6_K(int n, const void *wrow, const void *xq);

/* Scalar references (same integer math per block, sequential float accumulation). */
float tf_vec_dot_q4_0_ref(int n, const void *wrow, const void *xq);
float tf_vec_dot_q4_1_ref(int n, const void *wrow, const void *xq);
float tf_vec_dot_q5_0_ref(int n, const void *wrow, const void *xq);
float tf_vec_dot_q5_1_ref(int n, const void *wrow, const void *xq);
float tf_vec_dot_q8_0_ref(int n, const void *wrow, const void *xq);
float tf_vec_dot_q4_K_ref(int n, const void *wrow, const void *xq);
float tf_vec_dot_q5_K_ref(int n, const void *wrow, const void *xq);
float tf_vec_dot_q6_K_ref(int n, const void *wrow, const void *xq);

/* Kernel instruction set for the quantized products: AVX2 everywhere, AVX-512 VNNI (at 256-bit
 * width) where the CPU has it, chosen once at first use (TIEFSEE_KERNELS=avx2 forces AVX2). Both
 * give identical results. tf_set_kernel_isa switches (tests); it returns the previous choice and
 * ignores an instruction set the CPU lacks. */
enum { TF_ISA_AVX2 = 0, TF_ISA_AVX512_VNNI = 1 };
int tf_kernel_isa(void);
int tf_set_kernel_isa(int isa);

/* Unquantized dots: weights f32 / f16 / bf16, activations f32. Any n >= 0. */
float tf_vec_dot_f32(int n, const float *w, const float *x);
float tf_vec_dot_f16_f32(int n, const void *w, const float *x);
float tf_vec_dot_bf16_f32(int n, const void *w, const float *x);
float tf_vec_dot_f32_ref(int n, const float *w, const float *x);
float tf_vec_dot_f16_f32_ref(int n, const void *w, const float *x);
float tf_vec_dot_bf16_f32_ref(int n, const void *w, const float *x);

/* Weight type codes for the generic entry points below (ggml type ids). */
enum {
    TF_TYPE_F32 = 0, TF_TYPE_F16 = 1, TF_TYPE_Q4_0 = 2, TF_TYPE_Q4_1 = 3, TF_TYPE_Q5_0 = 6,
    TF_TYPE_Q5_1 = 7, TF_TYPE_Q8_0 = 8, TF_TYPE_Q4_K = 12, TF_TYPE_Q5_K = 13, TF_TYPE_Q6_K = 14,
    TF_TYPE_BF16 = 30,
    /* the low-bit types (quant_lowbit.h) */
    TF_TYPE_Q2_K = 10, TF_TYPE_Q3_K = 11, TF_TYPE_IQ2_XXS = 16, TF_TYPE_IQ2_XS = 17, TF_TYPE_IQ3_XXS = 18,
    TF_TYPE_IQ1_S = 19, TF_TYPE_IQ4_NL = 20, TF_TYPE_IQ3_S = 21, TF_TYPE_IQ2_S = 22, TF_TYPE_IQ4_XS = 23,
    TF_TYPE_IQ1_M = 29, TF_TYPE_TQ1_0 = 34, TF_TYPE_TQ2_0 = 35, TF_TYPE_MXFP4 = 39
};

/* Dots of one row of a low-bit type (any TF_TYPE_ of the list above) with Q8A activations: the
 * kernel the dispatcher runs, and its scalar reference, bit-identical to it (same integer sums
 * per 32 values, the same float operations in the same order). */
float tf_vec_dot_lowbit(int type, int n, const void *wrow, const void *xq);
float tf_vec_dot_lowbit_ref(int type, int n, const void *wrow, const void *xq);
/* 1 for the types above. */
int tf_is_lowbit(int type);

/* Dots of `nrows` consecutive weight rows (row r starts at wrows + r*row_stride bytes) with the
 * same activations (quantized for quantized types, f32 otherwise); out[r] = dot(row r, x).
 * Returns 0, or -1 for an unsupported type. */
int tf_vec_dot_rows(int type, int n, int nrows, const void *wrows, size_t row_stride,
                    const void *x, float *out);
/* The same for ntok = 2..4 quantized activation rows (xstride bytes apart) at once, each weight
 * row read and decoded once: out[t*ostride + r] = dot(row r, x_t), bit-identical to
 * tf_vec_dot_rows on x_t alone. Quantized weight types only; -1 otherwise. */
int tf_vec_dot_rows_n(int type, int n, int nrows, const void *wrows, size_t row_stride,
                      const void *x, size_t xstride, int ntok, float *out, size_t ostride);

/* Elementwise kernels and attention (vector_ops.c). */
void tf_axpy(int n, float a, const float *x, float *y);            /* y += a*x */
void tf_add(int n, const float *x, float *y);                      /* y += x */
void tf_rmsnorm(int n, const float *x, const float *w, float *out, float eps);
void tf_swiglu(int n, float *gate, const float *up);               /* gate = silu(gate)*up */
void tf_softmax(int n, float *x);
int tf_argmax(int n, const float *x);                              /* first index of the maximum */
void tf_attend(int n, int hd, const float *q, const float *k, size_t kstride, const float *v, size_t vstride,
               float scale, float *scores, float *out);
/* Grouped-query form of tf_attend: nq query heads (q + i*qstride) sharing one key/value head,
 * outputs at out + i*ostride; `scores` has room for nq*n floats. */
void tf_attend_heads(int n, int hd, int nq, const float *q, size_t qstride, const float *k, size_t kstride,
                     const float *v, size_t vstride, float scale, float *scores, float *out, size_t ostride);
/* The same over a cache stored as f16 (type 1), q8_0 (8) or q4_0 (2) or f32 (0): strides in
 * bytes, scratch holds 64 * hd floats. */
void tf_attend_heads_kv(int n, int hd, int nq, const float *q, size_t qstride,
                        const void *k, int ktype, size_t kstride, const void *v, int vtype, size_t vstride,
                        float scale, float *scores, float *scratch, float *out, size_t ostride);

/* Matrix product for unquantized weights (F32/F16/BF16; -1 for other types):
 * out[t*ostride + r] = dot(weight row r, f32 activation row t) for r < nrows, t < ntok,
 * activation rows `xstride` bytes apart. */
int tf_gemm_rows(int type, int n, int nrows, const void *wrows, size_t stride,
                 const void *x, size_t xstride, int ntok, float *out, size_t ostride);

/* f32 weights, 2 or more activation rows (gemm_f32.c): the rows packed with 8 tokens in the
 * vector lanes (tf_gemm_f32_pack, once per input, `xstride` in floats), then 6 weight rows x 16
 * tokens of FMAs per step. Same results as tf_gemm_rows up to float order, and bit-identical
 * for a given activation row whatever the other rows. out as in tf_gemm_rows; returns 0. */
size_t tf_gemm_f32_pack_bytes(int n, int ntok);
void tf_gemm_f32_pack(int n, const float *x, size_t xstride, int ntok, float *packed);
int tf_gemm_f32_packed(int n, int nrows, const float *wrows, size_t stride, const float *packed, int ntok,
                       float *out, size_t ostride);

/* The faster matrix product for 2 or more activation rows: the rows are first packed with the
 * tokens in the vector lanes (tf_gemm_pack, once per input), then each decoded weight group is
 * multiplied with 4, 8 or 16 tokens at once. Same results as tf_gemm_rows up to float order,
 * and bit-identical for a given activation row whatever the other rows and their count.
 * tf_gemm_pack_bytes(n, ntok) is the packed size; out as in tf_gemm_rows. Returns 0 or -1. */
size_t tf_gemm_pack_bytes(int n, int ntok);
void tf_gemm_pack(int n, const void *x, size_t xstride, int ntok, void *packed);
int tf_gemm_packed(int type, int n, int nrows, const void *wrows, size_t stride,
                   const void *packed, int ntok, float *out, size_t ostride);

/* The panel matrix kernel for 2 or more Q8A activation rows (quant_dot.c, gemm_q8a.h): each tile
 * of 16 weight rows is decoded once into a panel with the rows in the vector lanes, then every
 * token's activations are broadcast against it (6 tokens per register tile). Same results as
 * tf_gemm_rows up to float order; a token's results are bit-identical whatever the other rows and
 * their count, on AVX2 and VNNI alike, and equal to tf_gemm_q8a_ref's. `sums` holds
 * tf_gemm_q8a_sums of the same activations (once per input; tf_gemm_q8a_sums_bytes bytes).
 * Types: the quantized ones but Q2_K (tf_gemm_q8a_supports); -1 for others or a bad n. */
int tf_gemm_q8a_supports(int type);
size_t tf_gemm_q8a_sums_bytes(int n, int ntok);
void tf_gemm_q8a_sums(int n, const void *x, size_t xstride, int ntok, int32_t *sums);
int tf_gemm_q8a(int type, int n, int nrows, const void *wrows, size_t stride, const void *x, size_t xstride,
                const int32_t *sums, int ntok, float *out, size_t ostride);
int tf_gemm_q8a_ref(int type, int n, int nrows, const void *wrows, size_t stride, const void *x, size_t xstride,
                    int ntok, float *out, size_t ostride);

/* ------------------------------------------------------------------------------------------
 * Quantization of f32 to ggml block formats (quantize.c), the layouts the dequantizers above
 * read; algorithms of llama.cpp's reference quantizers (no importance matrix). `n` must be a
 * multiple of 32 (Q4_0, Q5_0, Q5_1, Q8_0) or 256 (Q4_K, Q5_K, Q6_K).
 * ---------------------------------------------------------------------------------------- */
void tf_quantize_q8_0(const float *x, void *dst, int64_t n);
void tf_quantize_q4_0(const float *x, void *dst, int64_t n);
void tf_quantize_q5_0(const float *x, void *dst, int64_t n);
void tf_quantize_q5_1(const float *x, void *dst, int64_t n);
void tf_quantize_q4_K(const float *x, void *dst, int64_t n);
void tf_quantize_q5_K(const float *x, void *dst, int64_t n);
void tf_quantize_q6_K(const float *x, void *dst, int64_t n);
/* By ggml type id (F32, F16 too); 0, or -1 for an unsupported type or bad n. */
int tf_quantize_row(int type, const float *x, void *dst, int64_t n);
/* `nrows` rows of `n_per_row` values, each row weighted by the same importance matrix row `qw`
 * (n_per_row values: mean squared activation per column, as llama.cpp's imatrix holds), or
 * NULL. Q2_K, Q3_K, IQ4_NL, IQ4_XS, IQ2_XXS, IQ2_XS, IQ1_S and IQ1_M use it (quantize_iq.c for
 * the IQ types); the other types ignore it. 0, or -1 for an unsupported type or bad row length. */
int tf_quantize_rows(int type, const float *x, void *dst, int64_t nrows, int64_t n_per_row, const float *qw);

/* ------------------------------------------------------------------------------------------
 * SHA-256 compression (sha256.c): process `nblocks` 64-byte blocks into `state`.
 * ---------------------------------------------------------------------------------------- */
void tf_sha256_blocks(uint32_t state[8], const uint8_t *data, size_t nblocks);
/* HMAC-SHA256 (RFC 2104) of a whole message. */
void tf_hmac_sha256(const uint8_t *key, size_t keylen, const uint8_t *msg, size_t msglen, uint8_t out[32]);
/* PBKDF2 with HMAC-SHA256 as the PRF (RFC 8018 §5.2): `outlen` bytes of derived key. */
void tf_pbkdf2_hmac_sha256(const uint8_t *password, size_t pwlen, const uint8_t *salt, size_t saltlen,
                           uint32_t iterations, uint8_t *out, size_t outlen);

#ifdef __cplusplus
}
#endif
#endif

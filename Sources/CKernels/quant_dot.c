/* Activation quantization and quantized dot products (AVX2 + FMA + F16C).
 *
 * Scheme (as in llama.cpp): activations are quantized to int8 per block, weights stay in their
 * ggml block format, and each block contributes (weight scale * activation scale) * integer dot.
 * K-quant "min" terms use the activation block sums (bsums) so the inner loops stay integer. */
#include "ckernels.h"
#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline float h2f(const uint8_t *p) { return _cvtsh_ss(rd16(p)); }

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}
static inline float hmax_ps(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---------------------------------------------------------------- activation quantization */

/* Both the AVX2 and the scalar versions compute d = amax / 127, id = 127 / amax and
 * q = round-half-even(x * id), so they produce identical bytes. */
void tf_quantize_row_q8_0_ref(const float *x, void *vy, int n) {
    tf_block_q8a *y = vy;
    for (int i = 0; i < n / 32; i++, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            int q = (int)nearbyintf(x[j] * id);
            y[i].qs[j] = (int8_t)q;
            sum += q;
        }
        y[i].d = d;
        y[i].s = d * (float)sum;
    }
}

/* Quantize 32 floats with scale id into 32 int8 (in order) and return them. */
static inline __m256i quant32(const float *x, __m256 id) {
    __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
    __m256i p01 = _mm256_packs_epi32(i0, i1);  /* lanes interleave: fixed below */
    __m256i p23 = _mm256_packs_epi32(i2, i3);
    __m256i b = _mm256_packs_epi16(p01, p23);
    /* after the two in-lane packs the dword order is 0 4 1 5 2 6 3 7 */
    return _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline float amax32(const float *x) {
    const __m256 sm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 m = _mm256_and_ps(_mm256_loadu_ps(x), sm);
    m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + 8), sm));
    m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + 16), sm));
    m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + 24), sm));
    return hmax_ps(m);
}

/* sum of 32 int8 as int */
static inline int sum_i8(__m256i q) {
    __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
    return hsum_epi32(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
}

void tf_quantize_row_q8_0(const float *x, void *vy, int n) {
    tf_block_q8a *y = vy;
    for (int i = 0; i < n / 32; i++, x += 32) {
        float amax = amax32(x);
        float d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0.0f;
        __m256i q = quant32(x, _mm256_set1_ps(id));
        _mm256_storeu_si256((__m256i *)y[i].qs, q);
        y[i].d = d;
        y[i].s = d * (float)sum_i8(q);
    }
}

/* ---------------------------------------------------------------- integer helpers */

/* 16 bytes of nibbles -> 32 bytes: low nibbles in bytes 0..15, high nibbles in 16..31 */
static inline __m256i unpack_nibbles(const uint8_t *p) {
    __m128i t = _mm_loadu_si128((const __m128i *)p);
    __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}
/* 32 bits -> 32 bytes, 0x10 where the bit is set (bit j -> byte j) */
static inline __m256i bits_to_0x10(const uint8_t *p) {
    __m256i v = _mm256_set1_epi32((int)rd32(p));
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bm = _mm256_set1_epi64x(0x8040201008040201LL);
    v = _mm256_and_si256(_mm256_shuffle_epi8(v, shuf), bm);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, bm), _mm256_set1_epi8(0x10));
}
/* signed int8 x signed int8 -> 8 x int32 partial sums (|w| <= 127 or w == -128 with |x| <= 127) */
static inline __m256i dot_ss(__m256i w, __m256i x) {
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}
/* unsigned int8 (< 128) x signed int8 -> 8 x int32 */
static inline __m256i dot_us(__m256i u, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1));
}
static inline __m256i ld256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* ---------------------------------------------------------------- 32-blocks */

/* The 32-block kernels take two blocks per step (two accumulators hide the FMA latency).
 * Offset formats (Q4_0: q - 8, Q5_0: q - 16) use unsigned q and subtract off * d_w * s_x, with
 * s_x = d_x * sum(x_q) stored in the activation block; Q4_1/Q5_1 add m * s_x. */
#define TF_DOT32_LOOP(BLOCK_BYTES, BODY)                                                      \
    const uint8_t *w = vw; const tf_block_q8a *x = vx;                                        \
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                            \
    float corr = 0;                                                                           \
    int nb = n / 32, i = 0;                                                                   \
    for (; i + 1 < nb; i += 2) {                                                              \
        { const uint8_t *b = w + (size_t)i * BLOCK_BYTES; const tf_block_q8a *xb = x + i;     \
          __m256 *acc = &acc0; BODY }                                                         \
        { const uint8_t *b = w + (size_t)(i + 1) * BLOCK_BYTES; const tf_block_q8a *xb = x + i + 1; \
          __m256 *acc = &acc1; BODY }                                                         \
    }                                                                                         \
    for (; i < nb; i++) {                                                                     \
        const uint8_t *b = w + (size_t)i * BLOCK_BYTES; const tf_block_q8a *xb = x + i;       \
        __m256 *acc = &acc0; BODY                                                             \
    }                                                                                         \
    (void)corr;                                                                               \
    return hsum_ps(_mm256_add_ps(acc0, acc1)) + corr;

float tf_vec_dot_q4_0(int n, const void *vw, const void *vx) {
    TF_DOT32_LOOP(18, {
        float dw = h2f(b);
        __m256 p = _mm256_cvtepi32_ps(dot_us(unpack_nibbles(b + 2), ld256(xb->qs)));
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), p, *acc);
        corr -= 8.0f * dw * xb->s;
    })
}

float tf_vec_dot_q4_1(int n, const void *vw, const void *vx) {
    TF_DOT32_LOOP(20, {
        __m256 p = _mm256_cvtepi32_ps(dot_us(unpack_nibbles(b + 4), ld256(xb->qs)));
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b) * xb->d), p, *acc);
        corr += h2f(b + 2) * xb->s;
    })
}

float tf_vec_dot_q5_0(int n, const void *vw, const void *vx) {
    TF_DOT32_LOOP(22, {
        float dw = h2f(b);
        __m256i q = _mm256_or_si256(unpack_nibbles(b + 6), bits_to_0x10(b + 2));
        __m256 p = _mm256_cvtepi32_ps(dot_us(q, ld256(xb->qs)));
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), p, *acc);
        corr -= 16.0f * dw * xb->s;
    })
}

float tf_vec_dot_q5_1(int n, const void *vw, const void *vx) {
    TF_DOT32_LOOP(24, {
        __m256i q = _mm256_or_si256(unpack_nibbles(b + 8), bits_to_0x10(b + 4));
        __m256 p = _mm256_cvtepi32_ps(dot_us(q, ld256(xb->qs)));
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b) * xb->d), p, *acc);
        corr += h2f(b + 2) * xb->s;
    })
}

float tf_vec_dot_q8_0(int n, const void *vw, const void *vx) {
    TF_DOT32_LOOP(34, {
        __m256 p = _mm256_cvtepi32_ps(dot_ss(ld256(b + 2), ld256(xb->qs)));
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b) * xb->d), p, *acc);
    })
}

/* scalar references */
static inline int w4(const uint8_t *qs, int j) { return j < 16 ? (qs[j] & 0xF) : (qs[j - 16] >> 4); }
static inline int w5(const uint8_t *qs, uint32_t qh, int j) { return w4(qs, j) | (((qh >> j) & 1) << 4); }

float tf_vec_dot_q4_0_ref(int n, const void *vw, const void *vx) {
    const uint8_t *w = vw; const tf_block_q8a *x = vx;
    float r = 0;
    for (int i = 0; i < n / 32; i++, w += 18) {
        int s = 0;
        for (int j = 0; j < 32; j++) s += (w4(w + 2, j) - 8) * x[i].qs[j];
        r += h2f(w) * x[i].d * (float)s;
    }
    return r;
}
float tf_vec_dot_q4_1_ref(int n, const void *vw, const void *vx) {
    const uint8_t *w = vw; const tf_block_q8a *x = vx;
    float r = 0;
    for (int i = 0; i < n / 32; i++, w += 20) {
        int s = 0;
        for (int j = 0; j < 32; j++) s += w4(w + 4, j) * x[i].qs[j];
        r += h2f(w) * x[i].d * (float)s + h2f(w + 2) * x[i].s;
    }
    return r;
}
float tf_vec_dot_q5_0_ref(int n, const void *vw, const void *vx) {
    const uint8_t *w = vw; const tf_block_q8a *x = vx;
    float r = 0;
    for (int i = 0; i < n / 32; i++, w += 22) {
        uint32_t qh = rd32(w + 2);
        int s = 0;
        for (int j = 0; j < 32; j++) s += (w5(w + 6, qh, j) - 16) * x[i].qs[j];
        r += h2f(w) * x[i].d * (float)s;
    }
    return r;
}
float tf_vec_dot_q5_1_ref(int n, const void *vw, const void *vx) {
    const uint8_t *w = vw; const tf_block_q8a *x = vx;
    float r = 0;
    for (int i = 0; i < n / 32; i++, w += 24) {
        uint32_t qh = rd32(w + 4);
        int s = 0;
        for (int j = 0; j < 32; j++) s += w5(w + 8, qh, j) * x[i].qs[j];
        r += h2f(w) * x[i].d * (float)s + h2f(w + 2) * x[i].s;
    }
    return r;
}
float tf_vec_dot_q8_0_ref(int n, const void *vw, const void *vx) {
    const uint8_t *w = vw; const tf_block_q8a *x = vx;
    float r = 0;
    for (int i = 0; i < n / 32; i++, w += 34) {
        const int8_t *q = (const int8_t *)(w + 2);
        int s = 0;
        for (int j = 0; j < 32; j++) s += q[j] * x[i].qs[j];
        r += h2f(w) * x[i].d * (float)s;
    }
    return r;
}

/* ---------------------------------------------------------------- K-quants */

static inline void k_scales(const uint8_t *s, uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 0xF) | ((s[j] >> 6) << 4);
        mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
    }
}

/* K-quant weights take the same per-32 activation blocks (Q8A) as the 32-block types: each
 * 32-element sub-block has its own activation scale. (llama.cpp uses one activation scale
 * per 256 values, Q8_K; that was the largest error source against the f32 reference on the
 * default model, so Tiefsee pays a few float multiplies per 32 values for the accuracy.) */

/* Q4_K: 8 sub-blocks of 32, value = d*sc_j*q - dmin*m_j. Sub-block pair k: 32 bytes of
 * nibbles, low nibbles = sub-block 2k, high nibbles = 2k+1. */
float tf_vec_dot_q4_K(int n, const void *vw, const void *vx) {
    const uint8_t *w = vw; const tf_block_q8a *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float mins = 0;
    for (int i = 0; i < n / 256; i++, w += 144, x += 8) {
        uint8_t sc[8], mn[8];
        k_scales(w + 4, sc, mn);
        float d = h2f(w), dmin = h2f(w + 2);
        const uint8_t *qs = w + 16;
        for (int k = 0; k < 4; k++) {
            __m256i q = ld256(qs + 32 * k);
            __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            const tf_block_q8a *x0 = x + 2 * k, *x1 = x + 2 * k + 1;
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[2 * k] * x0->d), _mm256_cvtepi32_ps(dot_us(lo, ld256(x0->qs))), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[2 * k + 1] * x1->d), _mm256_cvtepi32_ps(dot_us(hi, ld256(x1->qs))), acc1);
            mins += dmin * ((float)mn[2 * k] * x0->s + (float)mn[2 * k + 1] * x1->s);
        }
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1)) - mins;
}

/* Q5_K: as Q4_K with a fifth bit per value from qh (bit j of qh[l] belongs to sub-block j). */
float tf_vec_dot_q5_K(int n, const void *vw, const void *vx) {
    const uint8_t *w = vw; const tf_block_q8a *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0x0F), b16 = _mm256_set1_epi8(0x10);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float mins = 0;
    for (int i = 0; i < n / 256; i++, w += 176, x += 8) {
        uint8_t sc[8], mn[8];
        k_scales(w + 4, sc, mn);
        float d = h2f(w), dmin = h2f(w + 2);
        const uint8_t *qs = w + 48;
        __m256i qh = ld256(w + 16);
        for (int k = 0; k < 4; k++) {
            __m256i q = ld256(qs + 32 * k);
            __m256i hb0 = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * k), 4), b16);
            __m256i hb1 = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * k + 1), 4), b16);
            __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), hb0);
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), hb1);
            const tf_block_q8a *x0 = x + 2 * k, *x1 = x + 2 * k + 1;
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[2 * k] * x0->d), _mm256_cvtepi32_ps(dot_us(lo, ld256(x0->qs))), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[2 * k + 1] * x1->d), _mm256_cvtepi32_ps(dot_us(hi, ld256(x1->qs))), acc1);
            mins += dmin * ((float)mn[2 * k] * x0->s + (float)mn[2 * k + 1] * x1->s);
        }
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1)) - mins;
}

/* Q6_K: 16 sub-blocks of 16 with int8 scales, value = d*sc_g*(q - 32), q in 0..63 from 4 low
 * bits (ql) and 2 high bits (qh). Each 32-value activation block covers two sub-blocks: the
 * low 128 bits of a register hold sub-block g, the high 128 bits g+1. */
float tf_vec_dot_q6_K(int n, const void *vw, const void *vx) {
    const uint8_t *w = vw; const tf_block_q8a *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x30), off = _mm256_set1_epi8(32);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int i = 0; i < n / 256; i++, w += 210, x += 8) {
        const uint8_t *ql = w, *qhp = w + 128;
        const int8_t *sc = (const int8_t *)(w + 192);
        float d = h2f(w + 208);
        for (int h = 0; h < 2; h++) {
            __m256i l0 = ld256(ql + 64 * h), l1 = ld256(ql + 64 * h + 32);
            __m256i hb = ld256(qhp + 32 * h);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m3));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m3));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m3));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(hb, 2), m3));
            for (int s2 = 0; s2 < 4; s2++) {
                int g = 8 * h + 2 * s2;
                const tf_block_q8a *xb = x + 4 * h + s2;
                __m256i qs = _mm256_sub_epi8(q[s2], off);               /* -32..31 */
                __m256i xv = ld256(xb->qs);
                __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(qs, qs), _mm256_sign_epi8(xv, qs));
                __m256i scv = _mm256_set_m128i(_mm_set1_epi16(sc[g + 1]), _mm_set1_epi16(sc[g]));
                __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, scv));
                if (s2 & 1) acc1 = _mm256_fmadd_ps(_mm256_set1_ps(d * xb->d), f, acc1);
                else acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d * xb->d), f, acc0);
            }
        }
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* Scalar references: same per-sub-block integer sums, sequential float accumulation. */
float tf_vec_dot_q4_K_ref(int n, const void *vw, const void *vx) {
    const uint8_t *w = vw; const tf_block_q8a *x = vx;
    float r = 0;
    for (int i = 0; i < n / 256; i++, w += 144, x += 8) {
        uint8_t sc[8], mn[8];
        k_scales(w + 4, sc, mn);
        const uint8_t *qs = w + 16;
        for (int j = 0; j < 8; j++) {
            int sumi = 0;
            for (int l = 0; l < 32; l++) {
                int b = qs[32 * (j / 2) + l];
                sumi += ((j & 1) ? (b >> 4) : (b & 0xF)) * x[j].qs[l];
            }
            r += h2f(w) * sc[j] * x[j].d * (float)sumi - h2f(w + 2) * (float)mn[j] * x[j].s;
        }
    }
    return r;
}

float tf_vec_dot_q5_K_ref(int n, const void *vw, const void *vx) {
    const uint8_t *w = vw; const tf_block_q8a *x = vx;
    float r = 0;
    for (int i = 0; i < n / 256; i++, w += 176, x += 8) {
        uint8_t sc[8], mn[8];
        k_scales(w + 4, sc, mn);
        const uint8_t *qh = w + 16, *qs = w + 48;
        for (int j = 0; j < 8; j++) {
            int sumi = 0;
            for (int l = 0; l < 32; l++) {
                int b = qs[32 * (j / 2) + l];
                int q = ((j & 1) ? (b >> 4) : (b & 0xF)) | (((qh[l] >> j) & 1) << 4);
                sumi += q * x[j].qs[l];
            }
            r += h2f(w) * sc[j] * x[j].d * (float)sumi - h2f(w + 2) * (float)mn[j] * x[j].s;
        }
    }
    return r;
}

float tf_vec_dot_q6_K_ref(int n, const void *vw, const void *vx) {
    const uint8_t *w = vw; const tf_block_q8a *x = vx;
    float r = 0;
    for (int i = 0; i < n / 256; i++, w += 210, x += 8) {
        const uint8_t *ql = w, *qh = w + 128;
        const int8_t *sc = (const int8_t *)(w + 192);
        for (int j = 0; j < 8; j++) {
            int sumi = 0;
            for (int l = 0; l < 32; l++) {
                int e = 32 * j + l;
                int h = e / 128, s = (e % 128) / 32, ll = e % 32;
                int lo = (ql[64 * h + 32 * (s % 2) + ll] >> (4 * (s / 2))) & 0xF;
                int hi = (qh[32 * h + ll] >> (2 * s)) & 3;
                sumi += sc[e / 16] * ((lo | (hi << 4)) - 32) * x[j].qs[l];
            }
            r += h2f(w + 208) * x[j].d * (float)sumi;
        }
    }
    return r;
}

/* ---------------------------------------------------------------- unquantized dots */

float tf_vec_dot_f32(int n, const float *w, const float *x) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    float r = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) r += w[i] * x[i];
    return r;
}

static inline __m256 ld_f16(const uint8_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline __m256 ld_bf16(const uint8_t *p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

float tf_vec_dot_f16_f32(int n, const void *vw, const float *x) {
    const uint8_t *w = vw;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(ld_f16(w + 2 * i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(ld_f16(w + 2 * i + 16), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(ld_f16(w + 2 * i + 32), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(ld_f16(w + 2 * i + 48), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(ld_f16(w + 2 * i), _mm256_loadu_ps(x + i), a0);
    float r = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) r += h2f(w + 2 * i) * x[i];
    return r;
}

float tf_vec_dot_bf16_f32(int n, const void *vw, const float *x) {
    const uint8_t *w = vw;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(ld_bf16(w + 2 * i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(ld_bf16(w + 2 * i + 16), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(ld_bf16(w + 2 * i + 32), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(ld_bf16(w + 2 * i + 48), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(ld_bf16(w + 2 * i), _mm256_loadu_ps(x + i), a0);
    float r = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) r += tf_bf16_to_f32(rd16(w + 2 * i)) * x[i];
    return r;
}

float tf_vec_dot_f32_ref(int n, const float *w, const float *x) {
    double r = 0;
    for (int i = 0; i < n; i++) r += (double)w[i] * x[i];
    return (float)r;
}
float tf_vec_dot_f16_f32_ref(int n, const void *vw, const float *x) {
    const uint8_t *w = vw; double r = 0;
    for (int i = 0; i < n; i++) r += (double)h2f(w + 2 * i) * x[i];
    return (float)r;
}
float tf_vec_dot_bf16_f32_ref(int n, const void *vw, const float *x) {
    const uint8_t *w = vw; double r = 0;
    for (int i = 0; i < n; i++) r += (double)tf_bf16_to_f32(rd16(w + 2 * i)) * x[i];
    return (float)r;
}

/* ---------------------------------------------------------------- several rows */

typedef float (*qdot_fn)(int, const void *, const void *);

int tf_vec_dot_rows(int type, int n, int nrows, const void *wrows, size_t stride,
                    const void *x, float *out) {
    const uint8_t *w = wrows;
    qdot_fn f = 0;
    switch (type) {
    case TF_TYPE_F32:
        for (int r = 0; r < nrows; r++) out[r] = tf_vec_dot_f32(n, (const float *)(w + r * stride), x);
        return 0;
    case TF_TYPE_F16:
        for (int r = 0; r < nrows; r++) out[r] = tf_vec_dot_f16_f32(n, w + r * stride, x);
        return 0;
    case TF_TYPE_BF16:
        for (int r = 0; r < nrows; r++) out[r] = tf_vec_dot_bf16_f32(n, w + r * stride, x);
        return 0;
    case TF_TYPE_Q4_0: f = tf_vec_dot_q4_0; break;
    case TF_TYPE_Q4_1: f = tf_vec_dot_q4_1; break;
    case TF_TYPE_Q5_0: f = tf_vec_dot_q5_0; break;
    case TF_TYPE_Q5_1: f = tf_vec_dot_q5_1; break;
    case TF_TYPE_Q8_0: f = tf_vec_dot_q8_0; break;
    case TF_TYPE_Q4_K: f = tf_vec_dot_q4_K; break;
    case TF_TYPE_Q5_K: f = tf_vec_dot_q5_K; break;
    case TF_TYPE_Q6_K: f = tf_vec_dot_q6_K; break;
    default: return -1;
    }
    for (int r = 0; r < nrows; r++) out[r] = f(n, w + r * stride, x);
    return 0;
}

/* ---------------------------------------------------------------- matrix products (prefill, batches) */

/* Unquantized weights: one dot per (row, token). */
int tf_gemm_rows(int type, int n, int nrows, const void *wrows, size_t stride,
                 const void *x, size_t xstride, int ntok, float *out, size_t ostride) {
    if (type != TF_TYPE_F32 && type != TF_TYPE_F16 && type != TF_TYPE_BF16) return -1;
    for (int t = 0; t < ntok; t++)
        if (tf_vec_dot_rows(type, n, nrows, wrows, stride, (const uint8_t *)x + t * xstride, out + t * ostride) != 0) return -1;
    return 0;
}

/* Quantized weights: decoding a block (unpacking nibbles, high bits, scales) costs as much as
 * its dot product, so the matrix kernel below decodes each 32-value group once into bytes and
 * a scale, then multiplies it with every activation row of a tile. */
typedef struct {
    __m256i q;       /* 32 weight values as bytes: unsigned, or signed for Q8_0 */
    float scale;     /* weight scale of the group: value = scale * q (Q6_K: times sc16) */
    float offset;    /* added per activation block as offset * s_x (zero points, K-quant mins) */
    int16_t sc16[2]; /* Q6_K: the int scales of values 0..15 and 16..31 */
} tf_group;

/* Decoders: one block of the weight row into its 32-value groups; return the group count. */
static inline int dec_q4_0(const uint8_t *b, tf_group *g) {
    float d = h2f(b);
    g->q = unpack_nibbles(b + 2); g->scale = d; g->offset = -8.0f * d;
    return 1;
}
static inline int dec_q4_1(const uint8_t *b, tf_group *g) {
    g->q = unpack_nibbles(b + 4); g->scale = h2f(b); g->offset = h2f(b + 2);
    return 1;
}
static inline int dec_q5_0(const uint8_t *b, tf_group *g) {
    float d = h2f(b);
    g->q = _mm256_or_si256(unpack_nibbles(b + 6), bits_to_0x10(b + 2));
    g->scale = d; g->offset = -16.0f * d;
    return 1;
}
static inline int dec_q5_1(const uint8_t *b, tf_group *g) {
    g->q = _mm256_or_si256(unpack_nibbles(b + 8), bits_to_0x10(b + 4));
    g->scale = h2f(b); g->offset = h2f(b + 2);
    return 1;
}
static inline int dec_q8_0(const uint8_t *b, tf_group *g) {
    g->q = ld256(b + 2); g->scale = h2f(b); g->offset = 0;
    return 1;
}
static inline int dec_q4_K(const uint8_t *w, tf_group *g) {
    uint8_t sc[8], mn[8];
    k_scales(w + 4, sc, mn);
    float d = h2f(w), dmin = h2f(w + 2);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int k = 0; k < 4; k++) {
        __m256i q = ld256(w + 16 + 32 * k);
        g[2 * k].q = _mm256_and_si256(q, m4);
        g[2 * k + 1].q = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        for (int h = 0; h < 2; h++) {
            g[2 * k + h].scale = d * sc[2 * k + h]; g[2 * k + h].offset = -dmin * mn[2 * k + h];
        }
    }
    return 8;
}
static inline int dec_q5_K(const uint8_t *w, tf_group *g) {
    uint8_t sc[8], mn[8];
    k_scales(w + 4, sc, mn);
    float d = h2f(w), dmin = h2f(w + 2);
    const __m256i m4 = _mm256_set1_epi8(0x0F), b16 = _mm256_set1_epi8(0x10);
    __m256i qh = ld256(w + 16);
    for (int k = 0; k < 4; k++) {
        __m256i q = ld256(w + 48 + 32 * k);
        __m256i hb0 = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * k), 4), b16);
        __m256i hb1 = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * k + 1), 4), b16);
        g[2 * k].q = _mm256_or_si256(_mm256_and_si256(q, m4), hb0);
        g[2 * k + 1].q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), hb1);
        for (int h = 0; h < 2; h++) {
            g[2 * k + h].scale = d * sc[2 * k + h]; g[2 * k + h].offset = -dmin * mn[2 * k + h];
        }
    }
    return 8;
}
/* Two-level activation quantization: y_main = Q8A(x), y_res = Q8A(x - dequant(y_main)). Their
 * dots with a weight row add up to about 15 bits of activation precision. Used where 8 bits
 * lose too much: the input of the FFN down projection, whose SwiGLU values have outliers. */
void tf_quantize_row_q8_0_residual(const float *x, void *y_main, void *y_res, int n) {
    float r[32];
    tf_quantize_row_q8_0(x, y_main, n);
    tf_block_q8a *m = y_main;
    for (int i = 0; i < n / 32; i++) {
        for (int j = 0; j < 32; j++) r[j] = x[32 * i + j] - m[i].d * (float)m[i].qs[j];
        tf_quantize_row_q8_0(r, (tf_block_q8a *)y_res + i, 32);
    }
}

/* ---------------------------------------------------------------- packed matrix kernel */

/* Activations of 8 tokens ("an octet") for one 32-value group, tokens in the vector lanes:
 * q[k] holds values 4k..4k+3 of token 0, then of token 1, ... token 7 (4 bytes each), so one
 * broadcast 4-byte piece of a weight row multiplies all 8 tokens at once. d = activation scale,
 * s = d * sum(q), h = d * sum(q[0..15]) (Q6_K's per-16 offsets), per token. */
typedef struct { int8_t q[8][32]; float d[8]; float s[8]; float h[8]; } tf_pack_group;

size_t tf_gemm_pack_bytes(int n, int ntok) {
    return (size_t)((ntok + 7) / 8) * (size_t)(n / 32) * sizeof(tf_pack_group);
}

/* A chunk of <= 4 tokens is packed as a quartet instead: q[k] (k < 4) holds values 8k..8k+7 of
 * tokens 0..3 (8 bytes each), so a token owns two adjacent lanes of integer sums. The kernel
 * adds each pair (hadd) before converting, which leaves tokens 0,1 in lanes 0,1 (and copies in
 * 2,3) and tokens 2,3 in lanes 4,5 (copies in 6,7); d, s and h are laid out the same way.
 * Every tile shape thus does the same float operations per token: a token's result does not
 * depend on which other tokens share its batch. */
static const int pk_quartet_lane[4] = { 0, 1, 4, 5 };
static int pk_is_quartet(int ntok, int t0) { return ntok - t0 <= 4; }

void tf_gemm_pack(int n, const void *x, size_t xstride, int ntok, void *packed) {
    int G = n / 32;
    tf_pack_group *p = packed;
    for (int t0 = 0; t0 < ntok; t0 += 8) {
        int nt = ntok - t0 < 8 ? ntok - t0 : 8, quartet = pk_is_quartet(ntok, t0);
        for (int g = 0; g < G; g++, p++) {
            memset(p, 0, sizeof *p);
            for (int t = 0; t < nt; t++) {
                const tf_block_q8a *b = (const tf_block_q8a *)((const uint8_t *)x + (size_t)(t0 + t) * xstride) + g;
                int h = 0;
                for (int j = 0; j < 16; j++) h += b->qs[j];
                if (quartet) {
                    int l = pk_quartet_lane[t];
                    p->d[l] = p->d[l + 2] = b->d; p->s[l] = p->s[l + 2] = b->s; p->h[l] = p->h[l + 2] = b->d * (float)h;
                    for (int k = 0; k < 4; k++) memcpy(&p->q[k][8 * t], b->qs + 8 * k, 8);
                } else {
                    p->d[t] = b->d; p->s[t] = b->s; p->h[t] = b->d * (float)h;
                    for (int k = 0; k < 8; k++) memcpy(&p->q[k][4 * t], b->qs + 4 * k, 4);
                }
            }
        }
    }
}

#define TF_INLINE static inline __attribute__((always_inline))
#define PERM(q, k) _mm256_permutevar8x32_epi32(q, _mm256_set1_epi32(k))
static inline __m256i ldp(const int8_t *p) { return _mm256_load_si256((const __m256i *)p); }

/* Q6_K group as unsigned 0..63 (value = d * sc * (q - 32)); sc16 = the two per-16 scales. */
static inline int dec_q6_K(const uint8_t *w, tf_group *g) {
    const uint8_t *ql = w, *qhp = w + 128;
    const int8_t *sc = (const int8_t *)(w + 192);
    float d = h2f(w + 208);
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x30);
    for (int h = 0; h < 2; h++) {
        __m256i l0 = ld256(ql + 64 * h), l1 = ld256(ql + 64 * h + 32), hb = ld256(qhp + 32 * h);
        g[4 * h + 0].q = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m3));
        g[4 * h + 1].q = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m3));
        g[4 * h + 2].q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m3));
        g[4 * h + 3].q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(hb, 2), m3));
        for (int s = 0; s < 4; s++) {
            int gi = 8 * h + 2 * s;
            tf_group *G = g + 4 * h + s;
            G->scale = d; G->offset = 0; G->sc16[0] = sc[gi]; G->sc16[1] = sc[gi + 1];
        }
    }
    return 8;
}

/* Integer dots of one decoded 32-value weight group with one octet: 8 int32 lanes = 8 tokens.
 * Step k multiplies weight bytes 4k..4k+3 (broadcast) with the octet's q[k]. */
TF_INLINE __m256i pk_step(__m256i q, const tf_pack_group *P, int k) {
    return _mm256_maddubs_epi16(PERM(q, k), ldp(P->q[k]));
}
/* Unsigned weights <= 31: four maddubs results fit an int16 sum before widening. */
TF_INLINE __m256i pk_dot_u5(__m256i q, const tf_pack_group *P) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i a0 = pk_step(q, P, 0), a1 = pk_step(q, P, 4);
    for (int k = 1; k < 4; k++) { a0 = _mm256_add_epi16(a0, pk_step(q, P, k)); a1 = _mm256_add_epi16(a1, pk_step(q, P, k + 4)); }
    return _mm256_add_epi32(_mm256_madd_epi16(a0, ones), _mm256_madd_epi16(a1, ones));
}
/* Unsigned 0..63 (Q6_K) with the per-16 int scales folded in by madd: two maddubs per int16 sum;
 * steps 0-3 are values 0..15 (scale sc0), steps 4-7 values 16..31 (sc1). */
TF_INLINE __m256i pk_dot_u6(__m256i q, const tf_pack_group *P, __m256i sc0, __m256i sc1) {
    __m256i r = _mm256_setzero_si256();
    for (int k = 0; k < 8; k += 2)
        r = _mm256_add_epi32(r, _mm256_madd_epi16(_mm256_add_epi16(pk_step(q, P, k), pk_step(q, P, k + 1)), k < 4 ? sc0 : sc1));
    return r;
}
/* Signed 8-bit weights (Q8_0): the sign moves onto the activations, |w| * ±x. */
TF_INLINE __m256i pk_dot_s8(__m256i q, const tf_pack_group *P) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i aq = _mm256_abs_epi8(q), r = _mm256_setzero_si256();
    for (int s = 0; s < 8; s++)
        r = _mm256_add_epi32(r, _mm256_madd_epi16(_mm256_maddubs_epi16(PERM(aq, s), _mm256_sign_epi8(ldp(P->q[s]), PERM(q, s))), ones));
    return r;
}

/* Quartet versions: 8-byte weight pieces (vpermq), four steps per group; a token's two lanes
 * are added (hadd) before the result leaves. */
#define PERMQ(q, k) _mm256_permute4x64_epi64(q, (k) * 0x55)
/* (vpermq takes its lane pattern as an immediate, hence a macro and unrolled steps) */
#define PK4_STEP(q, P, k) _mm256_maddubs_epi16(PERMQ(q, k), ldp((P)->q[k]))
TF_INLINE __m256i pk4_dot_u5(__m256i q, const tf_pack_group *P) {
    __m256i a = _mm256_add_epi16(_mm256_add_epi16(PK4_STEP(q, P, 0), PK4_STEP(q, P, 1)),
                                 _mm256_add_epi16(PK4_STEP(q, P, 2), PK4_STEP(q, P, 3)));
    __m256i r = _mm256_madd_epi16(a, _mm256_set1_epi16(1));
    return _mm256_hadd_epi32(r, r);
}
TF_INLINE __m256i pk4_dot_u6(__m256i q, const tf_pack_group *P, __m256i sc0, __m256i sc1) {
    __m256i r = _mm256_add_epi32(_mm256_madd_epi16(_mm256_add_epi16(PK4_STEP(q, P, 0), PK4_STEP(q, P, 1)), sc0),
                                 _mm256_madd_epi16(_mm256_add_epi16(PK4_STEP(q, P, 2), PK4_STEP(q, P, 3)), sc1));
    return _mm256_hadd_epi32(r, r);
}
#define PK4_STEP_S8(q, aq, P, k) \
    _mm256_madd_epi16(_mm256_maddubs_epi16(PERMQ(aq, k), _mm256_sign_epi8(ldp((P)->q[k]), PERMQ(q, k))), _mm256_set1_epi16(1))
TF_INLINE __m256i pk4_dot_s8(__m256i q, const tf_pack_group *P) {
    __m256i aq = _mm256_abs_epi8(q);
    __m256i r = _mm256_add_epi32(_mm256_add_epi32(PK4_STEP_S8(q, aq, P, 0), PK4_STEP_S8(q, aq, P, 1)),
                                 _mm256_add_epi32(PK4_STEP_S8(q, aq, P, 2), PK4_STEP_S8(q, aq, P, 3)));
    return _mm256_hadd_epi32(r, r);
}

/* One weight row against NO octets (1 or 2) of one tile: each decoded group serves 8*NO tokens. */
TF_INLINE void pk_row(int type, const uint8_t *row, int nblocks, int bbytes, const tf_pack_group *tile, size_t G,
                      int NO, int QUAD, int nt, float *o, size_t ostride) {
    __m256 acc[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() };
    tf_group grp[8];
    const tf_pack_group *P = tile;
    for (int b = 0; b < nblocks; b++) {
        const uint8_t *blk = row + (size_t)b * bbytes;
        int ng;
        switch (type) {
        case TF_TYPE_Q4_0: ng = dec_q4_0(blk, grp); break;
        case TF_TYPE_Q4_1: ng = dec_q4_1(blk, grp); break;
        case TF_TYPE_Q5_0: ng = dec_q5_0(blk, grp); break;
        case TF_TYPE_Q5_1: ng = dec_q5_1(blk, grp); break;
        case TF_TYPE_Q8_0: ng = dec_q8_0(blk, grp); break;
        case TF_TYPE_Q4_K: ng = dec_q4_K(blk, grp); break;
        case TF_TYPE_Q5_K: ng = dec_q5_K(blk, grp); break;
        default: ng = dec_q6_K(blk, grp); break;
        }
        for (int k = 0; k < ng; k++, P++) {
            __m256 sc = _mm256_set1_ps(grp[k].scale);
            for (int oc = 0; oc < NO; oc++) {
                const tf_pack_group *Q = P + oc * G;
                __m256 dx = _mm256_load_ps(Q->d);
                if (type == TF_TYPE_Q6_K) {
                    __m256i sc0 = _mm256_set1_epi16(grp[k].sc16[0]), sc1 = _mm256_set1_epi16(grp[k].sc16[1]);
                    __m256i i32 = QUAD ? pk4_dot_u6(grp[k].q, Q, sc0, sc1) : pk_dot_u6(grp[k].q, Q, sc0, sc1);
                    acc[oc] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i32), _mm256_mul_ps(sc, dx), acc[oc]);
                    /* the -32 offset: -32 d (sc0 * sum of values 0..15 + sc1 * sum of 16..31) */
                    __m256 h0 = _mm256_load_ps(Q->h), h1 = _mm256_sub_ps(_mm256_load_ps(Q->s), h0);
                    acc[oc] = _mm256_fmadd_ps(_mm256_set1_ps(-32.0f * grp[k].scale * grp[k].sc16[0]), h0, acc[oc]);
                    acc[oc] = _mm256_fmadd_ps(_mm256_set1_ps(-32.0f * grp[k].scale * grp[k].sc16[1]), h1, acc[oc]);
                } else if (type == TF_TYPE_Q8_0) {
                    acc[oc] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(QUAD ? pk4_dot_s8(grp[k].q, Q) : pk_dot_s8(grp[k].q, Q)), _mm256_mul_ps(sc, dx), acc[oc]);
                } else {
                    acc[oc] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(QUAD ? pk4_dot_u5(grp[k].q, Q) : pk_dot_u5(grp[k].q, Q)), _mm256_mul_ps(sc, dx), acc[oc]);
                    acc[oc] = _mm256_fmadd_ps(_mm256_set1_ps(grp[k].offset), _mm256_load_ps(Q->s), acc[oc]);
                }
            }
        }
    }
    _Alignas(32) float res[16];
    _mm256_store_ps(res, acc[0]);
    _mm256_store_ps(res + 8, acc[1]);
    for (int t = 0; t < nt; t++) o[t * ostride] = res[QUAD ? pk_quartet_lane[t] : t];
}

/* Weight rows are fetched PF_AHEAD rows ahead: with few tokens per pass the kernel is fast
 * enough that waiting for memory shows (measured on a 100 MB Q5_0 matrix, 4 tokens). */
#ifndef PF_AHEAD
#define PF_AHEAD 2
#endif

/* Tiles: two octets (16 tokens) while they last, then one octet, or one quartet at the end. */
#define TF_PK_TYPE(TYPE, PER, BB)                                                              \
    for (int t0 = 0; t0 < ntok;) {                                                             \
        int left = ntok - t0;                                                                  \
        int quad = pk_is_quartet(ntok, t0), two = left > 8 && !pk_is_quartet(ntok, t0 + 8);   \
        int nt = two ? (left < 16 ? left : 16) : (left < 8 ? left : 8);                        \
        const tf_pack_group *tile = (const tf_pack_group *)packed + (size_t)(t0 / 8) * G;      \
        for (int r = 0; r < nrows; r++) {                                                      \
            const uint8_t *row = w + (size_t)r * stride;                                       \
            float *o = out + (size_t)t0 * ostride + r;                                         \
            if (r + PF_AHEAD < nrows)                                                          \
                for (size_t c = 0; c < stride; c += 64) _mm_prefetch((const char *)row + PF_AHEAD * stride + c, _MM_HINT_T0); \
            if (two) pk_row(TYPE, row, n / PER, BB, tile, G, 2, 0, nt, o, ostride);            \
            else if (quad) pk_row(TYPE, row, n / PER, BB, tile, G, 1, 1, nt, o, ostride);      \
            else pk_row(TYPE, row, n / PER, BB, tile, G, 1, 0, nt, o, ostride);                \
        }                                                                                      \
        t0 += nt;                                                                              \
    }                                                                                          \
    return 0;

int tf_gemm_packed(int type, int n, int nrows, const void *wrows, size_t stride,
                   const void *packed, int ntok, float *out, size_t ostride) {
    const uint8_t *w = wrows;
    size_t G = (size_t)(n / 32);
    switch (type) {
    case TF_TYPE_Q4_0: TF_PK_TYPE(TF_TYPE_Q4_0, 32, 18)
    case TF_TYPE_Q4_1: TF_PK_TYPE(TF_TYPE_Q4_1, 32, 20)
    case TF_TYPE_Q5_0: TF_PK_TYPE(TF_TYPE_Q5_0, 32, 22)
    case TF_TYPE_Q5_1: TF_PK_TYPE(TF_TYPE_Q5_1, 32, 24)
    case TF_TYPE_Q8_0: TF_PK_TYPE(TF_TYPE_Q8_0, 32, 34)
    case TF_TYPE_Q4_K: TF_PK_TYPE(TF_TYPE_Q4_K, 256, 144)
    case TF_TYPE_Q5_K: TF_PK_TYPE(TF_TYPE_Q5_K, 256, 176)
    case TF_TYPE_Q6_K: TF_PK_TYPE(TF_TYPE_Q6_K, 256, 210)
    default: return -1;
    }
}

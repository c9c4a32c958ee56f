/* Activation quantization and quantized dot products (AVX2 + FMA + F16C).
 *
 * Scheme (as in llama.cpp): activations are quantized to int8 per block, weights stay in their
 * ggml block format, and each block contributes (weight scale * activation scale) * integer dot.
 * K-quant "min" terms use the activation block sums (bsums) so the inner loops stay integer. */
#include "ckernels.h"
#include "lowbit_types.h"
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TF_INLINE static inline __attribute__((always_inline))

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
    /* the 16 bytes in both lanes (a load), the high lane shifted right by 4: bits that cross
     * into a byte from its neighbour are masked off with the rest */
    __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    return _mm256_and_si256(_mm256_srlv_epi32(b, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(0x0F));
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

/* 32-block rows. Per eight blocks the weight scales are gathered into one vector and multiplied
 * with the activation scales at once, so each block is one integer dot of the unsigned (Q8_0:
 * signed) q, one convert and one FMA (no scalar float work). The zero point is one FMA per eight
 * blocks: m * s_x for Q4_1/Q5_1, and for the offset formats (Q4_0: q - 8, Q5_0: q - 16) d * s_x,
 * times the offset once at the end. */
/* The activation record of one kernel call, one per 8 activation blocks (a K-quant superblock),
 * shared by every row of the call: the blocks' scales d and scaled sums s side by side (one vector
 * load instead of eight strided ones), and the sums of each 16 values (Q6_K's -32 offset). */
typedef struct { float d[8]; float s[8]; int16_t bs[16]; } tf_side;
/* The most activation rows the row kernels take at once (rows_q_n). */
#define TF_NT 4

static void act_side(int n, const tf_block_q8a *x, tf_side *side) {
    const __m256i ones = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    memset(side, 0, sizeof(tf_side) * (size_t)((n / 32 + 7) / 8));
    for (int b = 0; b < n / 32; b++) {
        tf_side *g = side + b / 8;
        int j = b % 8;
        g->d[j] = x[b].d; g->s[j] = x[b].s;
        __m256i s32 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, ld256(x[b].qs)), ones16);
        /* values 0..15 sit in the low four lanes, 16..31 in the high four */
        __m128i lo = _mm256_castsi256_si128(s32), hi = _mm256_extracti128_si256(s32, 1);
        lo = _mm_add_epi32(lo, _mm_shuffle_epi32(lo, 0x4E)); lo = _mm_add_epi32(lo, _mm_shuffle_epi32(lo, 0xB1));
        hi = _mm_add_epi32(hi, _mm_shuffle_epi32(hi, 0x4E)); hi = _mm_add_epi32(hi, _mm_shuffle_epi32(hi, 0xB1));
        g->bs[2 * j] = (int16_t)_mm_cvtsi128_si32(lo);
        g->bs[2 * j + 1] = (int16_t)_mm_cvtsi128_si32(hi);
    }
}

/* The K-quant row kernels' activation record, one per superblock (256 values, groups j = 0..7 of
 * 32): the activations rearranged so that one int32 accumulator lane only ever sums products of
 * one 16-value half of one group. Then a superblock costs per activation row 8 integer dots and
 * 2 converts + 2 FMAs, instead of a convert and an FMA per group (the float work per group was
 * what capped batched decode: a second sequence cost 55% of the first's time in cache).
 *
 * The rearrangement is kt4's 4 x 8 dword transpose: of four vectors V_c (dword lanes l = 0..7 of
 * 4 values each), step p (0..3) holds in lane 4h + c the dword 4h + p of V_c. Applied to the
 * activation groups V_c = group 2c (the "A" half of the record) and V_c = group 2c + 1 ("B"), and
 * in the kernels to the weights the same way, lane 4h + c of A then sums group 2c's values
 * 16h .. 16h + 15 over the four steps, and of B group 2c + 1's. d: the groups' activation scales
 * per lane; s: scale * sum per group in group order (the K-quant mins); z: -32 * the lane's
 * activation sum (Q6_K's -32 offset, exactly in the integer sum). A and B of a step are adjacent
 * (q[2p], q[2p + 1]), and so are dA, dB and zA, zB: the VNNI kernels read each pair as one 512-bit
 * vector (half the loads, which bound the 4-row kernel). 448 bytes: records stay 64-aligned. */
typedef struct { int8_t q[8][32]; float dA[8], dB[8]; int32_t zA[8], zB[8]; float s[8], pad_[8]; } tf_kact;

/* u[p] lane 4h + c = dword 4h + p of v[c] (unpack within each 128-bit half) */
static inline void kt4(const __m256i v[4], __m256i u[4]) {
    __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]), t1 = _mm256_unpackhi_epi32(v[0], v[1]);
    __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]), t3 = _mm256_unpackhi_epi32(v[2], v[3]);
    u[0] = _mm256_unpacklo_epi64(t0, t2); u[1] = _mm256_unpackhi_epi64(t0, t2);
    u[2] = _mm256_unpacklo_epi64(t1, t3); u[3] = _mm256_unpackhi_epi64(t1, t3);
}

/* Q6_K's scale picks for the record's lanes: A lane 4h + c is sub-block 4c + h (group 2c, half
 * h), B lane 4h + c sub-block 4c + 2 + h. */
static const int8_t k6_pick_ab[16] __attribute__((aligned(16))) = { 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15 };

/* One thread's records, kept between calls (grown when a longer or wider call comes). */
static _Thread_local tf_kact *kact_buf;
static _Thread_local size_t kact_cap;
static tf_kact *kact_scratch(size_t records) {
    if (records > kact_cap) {
        free(kact_buf);
        kact_buf = aligned_alloc(64, records * sizeof(tf_kact));
        kact_cap = kact_buf ? records : 0;
    }
    return kact_buf;
}

/* The records of one activation row of n values (n a multiple of 32): one per 8 blocks, the
 * last one zero-filled past the row's end (scale 0, sums 0), so a kernel can treat it as whole. */
static inline size_t kact_records(int n) { return (size_t)((n / 32 + 7) / 8); }
static void kact_build(int n, const tf_block_q8a *x, tf_kact *r) {
    const __m256i ones = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1), m32 = _mm256_set1_epi32(-32);
    const __m256i ia = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6), ib = _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7);
    const int nb = n / 32;
    for (int i = 0; i < nb; i += 8, x += 8, r++) {
        const int cnt = nb - i < 8 ? nb - i : 8;
        _Alignas(32) float d[8] = { 0 }, s[8] = { 0 };
        for (int j = 0; j < cnt; j++) { d[j] = x[j].d; s[j] = x[j].s; }
        for (int half = 0; half < 2; half++) {
            __m256i v[4], u[4], z = _mm256_setzero_si256();
            for (int c = 0; c < 4; c++) v[c] = 2 * c + half < cnt ? ld256(x[2 * c + half].qs) : _mm256_setzero_si256();
            kt4(v, u);
            for (int p = 0; p < 4; p++) {
                _mm256_store_si256((__m256i *)r->q[2 * p + half], u[p]);
                z = _mm256_add_epi32(z, _mm256_madd_epi16(_mm256_maddubs_epi16(ones, u[p]), ones16));
            }
            _mm256_store_si256((__m256i *)(half ? r->zB : r->zA), _mm256_mullo_epi32(z, m32));
        }
        __m256 dv = _mm256_load_ps(d);
        _mm256_store_ps(r->dA, _mm256_permutevar8x32_ps(dv, ia));
        _mm256_store_ps(r->dB, _mm256_permutevar8x32_ps(dv, ib));
        _mm256_store_ps(r->s, _mm256_load_ps(s));
    }
}

/* Row kernels fetch weights about PF_BYTES ahead (whole rows, at least one) while working on a
 * row: streaming from memory, the hardware prefetcher alone left the kernels waiting (a 1 GB
 * matrix ran at ~6.5 GB/s of the machine's ~10 GB/s per core; ~3 KB ahead measured best for
 * rows of 0.6-1.7 KB). */
#ifndef PF_BYTES
#define PF_BYTES 3072
#endif
static inline int rows_ahead(size_t stride) {
    if (stride == 0) return 1;   /* one row (the single-row entry points) */
    int a = (int)((PF_BYTES + stride - 1) / stride);
    return a < 1 ? 1 : a > 8 ? 8 : a;
}
/* Also past the last row of the call: the caller's next call usually continues the matrix, and
 * a prefetch never faults (an address outside the mapping is simply dropped). */
static inline void prefetch_ahead(const uint8_t *row, size_t stride, int ahead) {
    const uint8_t *p = row + (size_t)ahead * stride;
    for (size_t c = 0; c < stride; c += 64) _mm_prefetch((const char *)p + c, _MM_HINT_T0);
}

/* Eight f16 values `stride` bytes apart as f32 (the weight scales of eight blocks). */
static inline __m256 f16x8_strided(const uint8_t *p, int stride) {
    /* put together in two 64-bit integer registers: scalar loads and shifts leave the vector
     * units (the bottleneck of the row kernels) to the dot products; inserts cost two each */
    uint64_t a = (uint64_t)rd16(p) | (uint64_t)rd16(p + stride) << 16 | (uint64_t)rd16(p + 2 * stride) << 32 |
                 (uint64_t)rd16(p + 3 * stride) << 48;
    uint64_t b = (uint64_t)rd16(p + 4 * stride) | (uint64_t)rd16(p + 5 * stride) << 16 |
                 (uint64_t)rd16(p + 6 * stride) << 32 | (uint64_t)rd16(p + 7 * stride) << 48;
    return _mm256_cvtph_ps(_mm_set_epi64x((long long)b, (long long)a));
}

static inline int bytes32(int type) {
    switch (type) { case TF_TYPE_Q4_0: return 18; case TF_TYPE_Q4_1: return 20; case TF_TYPE_Q5_0: return 22;
                    case TF_TYPE_Q5_1: return 24; default: return 34; }
}
static inline int offset32(int type) { return type == TF_TYPE_Q4_0 ? 8 : type == TF_TYPE_Q5_0 ? 16 : 0; }


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
 * default model, so Tiefsee pays a float multiply-add per 32 values for the accuracy.)
 *
 * To keep that cheap the row kernels read the activation scales of a superblock from the call's
 * activation record (tf_side, with the sums for the mins and for Q6_K's offset). Q4_K/Q5_K fold their 6-bit scales into the float factors
 * d * sc_j * d_x (eight at once per superblock), so 32 values cost one integer dot, one convert
 * and one FMA; Q6_K's per-16 int8 scales are multiplied in by madd. */
/* shuffle masks: broadcast int16 element j of a 128-bit lane to the whole lane */
#define SC16(j) 2*(j), 2*(j)+1, 2*(j), 2*(j)+1, 2*(j), 2*(j)+1, 2*(j), 2*(j)+1, \
                2*(j), 2*(j)+1, 2*(j), 2*(j)+1, 2*(j), 2*(j)+1, 2*(j), 2*(j)+1
/* Q6_K: group s of a half takes the half's scale 2s in the low lane and 2s+1 in the high lane */
static const int8_t k6_sc_pick[4][32] __attribute__((aligned(32))) = {
    { SC16(0), SC16(1) }, { SC16(2), SC16(3) }, { SC16(4), SC16(5) }, { SC16(6), SC16(7) } };
#undef SC16

/* The 12 scale bytes of Q4_K/Q5_K as two vectors of 8 int16: the 6-bit scales and the mins. */
static inline void k_scales16(const uint8_t *s, __m128i *scv, __m128i *mnv) {
    uint32_t a = rd32(s), b = rd32(s + 4), c = rd32(s + 8);
    const uint32_t k6 = 0x3f3f3f3f, k4 = 0x0f0f0f0f, k2 = 0x03030303;
    uint32_t sc_hi = (c & k4) | (((a >> 6) & k2) << 4), mn_hi = ((c >> 4) & k4) | (((b >> 6) & k2) << 4);
    *scv = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)sc_hi, (int)(a & k6)));
    *mnv = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)mn_hi, (int)(b & k6)));
}

/* Public single-row entry points: the same kernels the dispatcher runs. */
#define TF_DOT_ENTRY(NAME, TYPE) \
    float NAME(int n, const void *vw, const void *vx) { float r; tf_vec_dot_rows(TYPE, n, 1, vw, 0, vx, &r); return r; }
TF_DOT_ENTRY(tf_vec_dot_q4_0, TF_TYPE_Q4_0)
TF_DOT_ENTRY(tf_vec_dot_q4_1, TF_TYPE_Q4_1)
TF_DOT_ENTRY(tf_vec_dot_q5_0, TF_TYPE_Q5_0)
TF_DOT_ENTRY(tf_vec_dot_q5_1, TF_TYPE_Q5_1)
TF_DOT_ENTRY(tf_vec_dot_q8_0, TF_TYPE_Q8_0)
TF_DOT_ENTRY(tf_vec_dot_q4_K, TF_TYPE_Q4_K)
TF_DOT_ENTRY(tf_vec_dot_q5_K, TF_TYPE_Q5_K)
TF_DOT_ENTRY(tf_vec_dot_q6_K, TF_TYPE_Q6_K)
#undef TF_DOT_ENTRY
float tf_vec_dot_lowbit(int type, int n, const void *vw, const void *vx) {
    float r = 0; tf_vec_dot_rows(type, n, 1, vw, 0, vx, &r); return r;
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

static int rows_q_avx2(int, int, int, const uint8_t *, size_t, const void *, float *);
static int rows_q_vnni(int, int, int, const uint8_t *, size_t, const void *, float *);

int tf_vec_dot_rows(int type, int n, int nrows, const void *wrows, size_t stride,
                    const void *x, float *out) {
    const uint8_t *w = wrows;
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
    default:
        return tf_kernel_isa() == TF_ISA_AVX512_VNNI ? rows_q_vnni(type, n, nrows, w, stride, x, out)
                                                     : rows_q_avx2(type, n, nrows, w, stride, x, out);
    }
}

static int rows_q_n_avx2(int, int, int, const uint8_t *, size_t, const void *, size_t, int, float *, size_t);
static int rows_q_n_vnni(int, int, int, const uint8_t *, size_t, const void *, size_t, int, float *, size_t);

int tf_vec_dot_rows_n(int type, int n, int nrows, const void *wrows, size_t stride,
                      const void *x, size_t xstride, int ntok, float *out, size_t ostride) {
    return tf_kernel_isa() == TF_ISA_AVX512_VNNI ? rows_q_n_vnni(type, n, nrows, wrows, stride, x, xstride, ntok, out, ostride)
                                                 : rows_q_n_avx2(type, n, nrows, wrows, stride, x, xstride, ntok, out, ostride);
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
    __m256i aq;      /* Q8_0: their magnitudes */
    float scale;     /* weight scale of the group: value = scale * q (Q6_K: times sc16) */
    float offset;    /* added per activation block as offset * s_x (zero points, K-quant mins) */
    int16_t sc16[2]; /* Q6_K, low-bit types: the int scales of values 0..15 and 16..31 */
    int16_t mn16[2]; /* Q2_K: the int mins of values 0..15 and 16..31 (offset = -dmin) */
} tf_group;

int tf_is_lowbit(int type) { return lb_bytes(type) != 0; }
/* Types decoded 256 values (8 groups) per block. */
static inline int tf_per256(int type) {
    return type == TF_TYPE_Q4_K || type == TF_TYPE_Q5_K || type == TF_TYPE_Q6_K || (tf_is_lowbit(type) && !lb_is32(type));
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
 * broadcast 4-byte piece of a weight row multiplies all 8 tokens at once. Per token: d = activation
 * scale, s = d * sum(q), and as integers for the weights' zero points nq16 = -16 * sum(q) and h16 = the
 * int16 pair (sum of q[0..15], sum of q[16..31]) (Q6_K's per-16 scales). */
typedef struct { int8_t q[8][32]; float d[8]; float s[8]; int32_t nq16[8]; int32_t h16[8]; } tf_pack_group;

size_t tf_gemm_pack_bytes(int n, int ntok) {
    /* octet tiles of G groups (a quartet tile uses (G + 1) / 2 of its slots) */
    return (size_t)((ntok + 7) / 8) * (size_t)(n / 32) * sizeof(tf_pack_group);
}

/* A chunk of <= 4 tokens is packed as a quartet instead, by pairs of groups: slot P of the tile
 * holds groups 2P and 2P+1, and dword lane l = 2t + p belongs to token t, group 2P + p (d, s and
 * h follow the lanes). Step j holds the 4-byte pieces pk_pair_piece[j] of both groups (the order
 * in which the kernel's interleaving of two decoded weight groups leaves them), so one broadcast
 * 8-byte piece of the two weight groups multiplies 4 tokens x 2 groups in all 8 lanes.
 *
 * Float steps, the same in every tile shape so that a token's result does not depend on which
 * other tokens share its batch: per group, fused multiply-adds of the group's exact integer sum
 * (zero points already taken off in integers where they are integers) into one of two
 * accumulators per token, even and odd groups, added at the end (see pk_acc). */
static const int pk_pair_piece[8] = { 0, 1, 4, 5, 2, 3, 6, 7 };
static int pk_is_quartet(int ntok, int t0) { return ntok - t0 <= 4; }

void tf_gemm_pack(int n, const void *x, size_t xstride, int ntok, void *packed) {
    int G = n / 32;
    tf_pack_group *p = packed;
    for (int t0 = 0; t0 < ntok; t0 += 8, p += G) {
        int nt = ntok - t0 < 8 ? ntok - t0 : 8, quartet = pk_is_quartet(ntok, t0);
        memset(p, 0, sizeof *p * (size_t)G);
        for (int t = 0; t < nt; t++) {
            const tf_block_q8a *row = (const tf_block_q8a *)((const uint8_t *)x + (size_t)(t0 + t) * xstride);
            for (int g = 0; g < G; g++) {
                const tf_block_q8a *b = row + g;
                int lo = 0, hi = 0;
                for (int j = 0; j < 16; j++) { lo += b->qs[j]; hi += b->qs[j + 16]; }
                tf_pack_group *q = quartet ? p + g / 2 : p + g;
                int l = quartet ? 2 * t + (g & 1) : t;
                q->d[l] = b->d; q->s[l] = b->s; q->nq16[l] = -16 * (lo + hi);
                q->h16[l] = (int32_t)((uint32_t)(uint16_t)lo | (uint32_t)(uint16_t)hi << 16);
                for (int j = 0; j < 8; j++) memcpy(&q->q[j][4 * l], b->qs + 4 * (quartet ? pk_pair_piece[j] : j), 4);
            }
        }
    }
}

/* ---------------------------------------------------------------- the two instantiations */

static inline __m256i ldp(const int8_t *p) { return _mm256_load_si256((const __m256i *)p); }

/* bits -> 0xFF in byte j where bit j is set; v negated there (AVX2's SIGNS) */
static inline __m256i signs_avx2(__m256i v, uint32_t bits) {
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bm = _mm256_set1_epi64x(0x8040201008040201LL);
    __m256i m = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf), bm), bm);
    return _mm256_sub_epi8(_mm256_xor_si256(v, m), m);
}

#define KFN(name) name##_avx2
#define K_VNNI 0
#define DOT_US(u, x) dot_us(u, x)
#define DOT_SS(w, x) dot_ss(w, x)
#define HIBITS(q, p) _mm256_or_si256(q, bits_to_0x10(p))
#define SIGNS(v, bits) signs_avx2(v, bits)
#include "quant_lowbit.h"
#include "quant_kernels.h"
#include "gemm_q8a.h"
#undef KFN
#undef K_VNNI
#undef DOT_US
#undef DOT_SS
#undef HIBITS
#undef SIGNS

#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))), apply_to = function)
/* q + 0x10 in the bytes whose bit is set in the 32 bits at p: one masked byte add (asm, since the
 * compiler turns it into an or and a masked blend, two instructions). */
static inline __m256i hibits_vnni(__m256i q, const uint8_t *p) {
    __mmask32 k = (__mmask32)rd32(p);
    __m256i c = _mm256_set1_epi8(0x10);
    __asm__("vpaddb %2, %1, %0%{%3%}" : "+v"(q) : "v"(q), "v"(c), "Yk"(k));
    return q;
}
/* The same for two blocks in one 512-bit vector: the 32 bits at a for its low half, at b for its high. */
static inline __m512i hibits2_vnni(__m512i q, const uint8_t *a, const uint8_t *b) {
    __mmask64 k = (__mmask64)rd32(a) | (__mmask64)rd32(b) << 32;
    __m512i c = _mm512_set1_epi8(0x10);
    __asm__("vpaddb %2, %1, %0%{%3%}" : "+v"(q) : "v"(q), "v"(c), "Yk"(k));
    return q;
}
#define KFN(name) name##_vnni
#define K_VNNI 1
#define DOT_US(u, x) _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, x)
#define DOT_SS(w, x) _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(x, w))
#define HIBITS(q, p) hibits_vnni(q, p)
/* one masked byte subtract from zero */
#define SIGNS(v, bits) _mm256_mask_sub_epi8(v, (__mmask32)(bits), _mm256_setzero_si256(), v)
#include "quant_lowbit.h"
#include "quant_kernels.h"
#include "gemm_q8a.h"
#pragma clang attribute pop

/* Which kernels run: AVX-512 VNNI where the CPU has it (and TIEFSEE_KERNELS is not "avx2"),
 * else AVX2. Decided once; tests switch it to run both. */
static int tf_isa = -1;
int tf_kernel_isa(void) {
    if (tf_isa < 0) {
        const char *e = getenv("TIEFSEE_KERNELS");
        int vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
        tf_isa = vnni && !(e && strcmp(e, "avx2") == 0) ? TF_ISA_AVX512_VNNI : TF_ISA_AVX2;
    }
    return tf_isa;
}
int tf_set_kernel_isa(int isa) {
    int old = tf_kernel_isa();
    if (isa == TF_ISA_AVX2 || (isa == TF_ISA_AVX512_VNNI && __builtin_cpu_supports("avx512vnni") &&
                               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")))
        tf_isa = isa;
    return old;
}

int tf_gemm_packed(int type, int n, int nrows, const void *wrows, size_t stride,
                   const void *packed, int ntok, float *out, size_t ostride) {
    return tf_kernel_isa() == TF_ISA_AVX512_VNNI ? gemm_packed_vnni(type, n, nrows, wrows, stride, packed, ntok, out, ostride)
                                                 : gemm_packed_avx2(type, n, nrows, wrows, stride, packed, ntok, out, ostride);
}

/* ---------------------------------------------------------------- panel matrix kernel (gemm_q8a.h) */

int tf_gemm_q8a_supports(int type) { return gq_supported(type); }
size_t tf_gemm_q8a_sums_bytes(int n, int ntok) { return (size_t)ntok * 3 * (size_t)(n / 32) * sizeof(int32_t); }
void tf_gemm_q8a_sums(int n, const void *x, size_t xstride, int ntok, int32_t *z) {
    const int G = n / 32;
    for (int t = 0; t < ntok; t++) {
        const tf_block_q8a *row = (const tf_block_q8a *)((const uint8_t *)x + (size_t)t * xstride);
        int32_t *zt = z + (size_t)t * 3 * G;
        for (int g = 0; g < G; g++) {
            int lo = 0, hi = 0;
            for (int j = 0; j < 16; j++) { lo += row[g].qs[j]; hi += row[g].qs[j + 16]; }
            zt[3 * g] = -128 * (lo + hi); zt[3 * g + 1] = -128 * lo; zt[3 * g + 2] = -128 * hi;
        }
    }
}
int tf_gemm_q8a(int type, int n, int nrows, const void *wrows, size_t stride, const void *x, size_t xstride,
                const int32_t *sums, int ntok, float *out, size_t ostride) {
    return tf_kernel_isa() == TF_ISA_AVX512_VNNI ? gemm_q8a_vnni(type, n, nrows, wrows, stride, x, xstride, sums, ntok, out, ostride)
                                                 : gemm_q8a_avx2(type, n, nrows, wrows, stride, x, xstride, sums, ntok, out, ostride);
}
/* The same sums and float steps one (row, token) at a time, from the same block decoder. */
int tf_gemm_q8a_ref(int type, int n, int nrows, const void *wrows, size_t stride, const void *vx, size_t xstride,
                    int ntok, float *out, size_t ostride) {
    if (!gq_supported(type) || n % gq_block_values(type) != 0 || n <= 0) return -1;
    const int bv = gq_block_values(type), bb = gq_block_bytes(type), halves = gq_halves(type), hasmin = gq_has_min(type);
    for (int r = 0; r < nrows; r++) {
        for (int t = 0; t < ntok; t++) {
            const tf_block_q8a *x = (const tf_block_q8a *)((const uint8_t *)vx + (size_t)t * xstride);
            float f = 0;
            for (int g0 = 0; g0 < n / 32; g0 += 8) {
                _Alignas(32) int8_t qq[8][32];
                float S[8 * 32] = { 0 }, M[8 * 16] = { 0 };
                const gq_block_avx2 B = { S, M };
                int cnt = bv == 256 ? 8 : (n / 32 - g0 < 8 ? n / 32 - g0 : 8);
                int ng = gq_decode_avx2(type, (const uint8_t *)wrows + (size_t)r * stride + (size_t)(g0 * 32 / bv) * bb, cnt, qq, &B);
                for (int j = 0; j < ng; j++) {
                    const int8_t *q = qq[j];
                    const tf_block_q8a *a = x + g0 + j;
                    int i0 = 0, i1 = 0;
                    for (int l = 0; l < 16; l++) { i0 += q[l] * a->qs[l]; i1 += q[l + 16] * a->qs[l + 16]; }
                    if (halves) {
                        f = fmaf((float)i0, S[32 * j] * a->d, f);
                        f = fmaf((float)i1, S[32 * j + 16] * a->d, f);
                    } else {
                        f = fmaf((float)(i0 + i1), S[32 * j] * a->d, f);
                    }
                    if (hasmin) f = fmaf(M[16 * j], a->s, f);
                }
            }
            out[(size_t)t * ostride + r] = f;
        }
    }
    return 0;
}

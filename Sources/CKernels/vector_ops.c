/* Elementwise kernels and single-query attention (AVX2/FMA). In C so that debug builds of the
 * Swift code (and so the test suite) run them at full speed too. */
#include <immintrin.h>
#include <math.h>
#include <string.h>
#include "ckernels.h"

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

void tf_axpy(int n, float a, const float *x, float *y) {
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

void tf_add(int n, const float *x, float *y) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += x[i];
}

/* out = x / sqrt(mean(x^2) + eps) * w. The sum of squares is accumulated like the reference
 * (f32), in eight lanes. */
void tf_rmsnorm(int n, const float *x, const float *w, float *out, float eps) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) { __m256 v = _mm256_loadu_ps(x + i); acc = _mm256_fmadd_ps(v, v, acc); }
    float ss = hsum8(acc);
    for (; i < n; i++) ss += x[i] * x[i];
    float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (i = 0; i < n; i++) out[i] = w[i] * (x[i] * inv);
}

/* e^x for 8 lanes: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial (Taylor
 * coefficients; relative error ~2e-7, about libm's float expf), 2^n through the exponent bits.
 * Inputs below -87 give 0 (as expf underflows), above 88 are clamped. */
static inline __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);        /* ln2 split: exact high part */
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

/* gate = silu(gate) * up = gate / (1 + e^-gate) * up */
void tf_swiglu(int n, float *gate, const float *up) {
    int i = 0;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) { float g = gate[i]; gate[i] = g / (1.0f + expf(-g)) * up[i]; }
}

void tf_softmax(int n, float *x) {
    if (n <= 0) return;
    float m = x[0];
    for (int i = 1; i < n; i++) if (x[i] > m) m = x[i];
    __m256 vm = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float s = hsum8(acc);
    for (; i < n; i++) { float e = expf(x[i] - m); x[i] = e; s += e; }
    float inv = 1.0f / s;
    for (i = 0; i < n; i++) x[i] *= inv;
}

/* One query against n cached positions: scores = q·k_j * scale, softmax, out = sum_j p_j v_j.
 * k_j = k + j*kstride, v_j = v + j*vstride (floats); `scores` has room for n floats.
 * The keys and values are each read once. */
void tf_attend(int n, int hd, const float *q, const float *k, size_t kstride, const float *v, size_t vstride,
               float scale, float *scores, float *out) {
    for (int j = 0; j < n; j++) scores[j] = tf_vec_dot_f32(hd, k + (size_t)j * kstride, q) * scale;
    tf_softmax(n, scores);
    for (int i = 0; i < hd; i++) out[i] = 0;
    for (int j = 0; j < n; j++) tf_axpy(hd, scores[j], v + (size_t)j * vstride, out);
}

/* Eight dot products of q with k_0..k_7 (hd floats each, hd % 8 == 0) as one vector: eight
 * accumulators reduced together by a horizontal-add tree instead of eight separate sums. */
static inline __m256 dot8(int hd, const float *q, const float *k, size_t kstride) {
    __m256 a[8];
    for (int j = 0; j < 8; j++) a[j] = _mm256_setzero_ps();
    for (int d = 0; d < hd; d += 8) {
        __m256 qv = _mm256_loadu_ps(q + d);
        for (int j = 0; j < 8; j++) a[j] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + j * kstride + d), a[j]);
    }
    __m256 s01 = _mm256_hadd_ps(a[0], a[1]), s23 = _mm256_hadd_ps(a[2], a[3]);
    __m256 s45 = _mm256_hadd_ps(a[4], a[5]), s67 = _mm256_hadd_ps(a[6], a[7]);
    __m256 s0 = _mm256_hadd_ps(s01, s23), s1 = _mm256_hadd_ps(s45, s67);
    return _mm256_add_ps(_mm256_permute2f128_ps(s0, s1, 0x20), _mm256_permute2f128_ps(s0, s1, 0x31));
}

/* nq query heads (q + i*qstride) that share one key/value head (grouped-query attention)
 * against n cached positions; out + i*ostride receives head i's output. The keys of a block of
 * eight positions are read once for all heads while in L1 (when hd % 8 == 0). */
void tf_attend_heads(int n, int hd, int nq, const float *q, size_t qstride, const float *k, size_t kstride,
                     const float *v, size_t vstride, float scale, float *scores, float *out, size_t ostride) {
    if (hd % 8 != 0) {   /* head sizes that are not whole vectors: one head at a time */
        for (int i = 0; i < nq; i++) tf_attend(n, hd, q + i * qstride, k, kstride, v, vstride, scale, scores, out + i * ostride);
        return;
    }
    __m256 vs = _mm256_set1_ps(scale);
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int i = 0; i < nq; i++)
            _mm256_storeu_ps(scores + (size_t)i * n + j, _mm256_mul_ps(dot8(hd, q + i * qstride, k + (size_t)j * kstride, kstride), vs));
    for (; j < n; j++)
        for (int i = 0; i < nq; i++) scores[(size_t)i * n + j] = tf_vec_dot_f32(hd, k + (size_t)j * kstride, q + i * qstride) * scale;
    for (int i = 0; i < nq; i++) tf_softmax(n, scores + (size_t)i * n);
    /* out = sum_j p_j v_j, 64 output values at a time held in registers. Positions go in
     * blocks of about 4 KiB of values (at least 8 rows) and every query head sharing this
     * key/value head takes its turn on a block while it is in L1: the values are read from
     * memory once per step instead of once per query head (a GQA group of 7 heads reads 7x
     * less at long context). Each output value still sums p_j v_j in order j = 0, 1, ...,
     * so the result is bit-identical to one head at a time. */
    int blk = 1024 / hd;
    if (blk < 8) blk = 8;
    if (n == 0) for (int i = 0; i < nq; i++) memset(out + i * ostride, 0, (size_t)hd * 4);
    for (int j0 = 0; j0 < n; j0 += blk) {
        int j1 = n - j0 < blk ? n : j0 + blk;
        for (int i = 0; i < nq; i++) {
            const float *p = scores + (size_t)i * n;
            float *o = out + i * ostride;
            for (int d0 = 0; d0 < hd; d0 += 64) {
                int w = hd - d0 < 64 ? (hd - d0) / 8 : 8;
                __m256 acc[8];
                for (int c = 0; c < w; c++) acc[c] = j0 == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(o + d0 + 8 * c);
                if (w == 8) {
                    for (int jj = j0; jj < j1; jj++) {
                        __m256 pj = _mm256_set1_ps(p[jj]);
                        const float *vj = v + (size_t)jj * vstride + d0;
                        for (int c = 0; c < 8; c++) acc[c] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * c), acc[c]);
                    }
                } else {
                    for (int jj = j0; jj < j1; jj++) {
                        __m256 pj = _mm256_set1_ps(p[jj]);
                        const float *vj = v + (size_t)jj * vstride + d0;
                        for (int c = 0; c < w; c++) acc[c] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * c), acc[c]);
                    }
                }
                for (int c = 0; c < w; c++) _mm256_storeu_ps(o + d0 + 8 * c, acc[c]);
            }
        }
    }
}

/* Index of the largest value, the first one on ties (as torch.argmax); NaNs never win. Two
 * passes: the maximum in eight lanes, then its first position. */
int tf_argmax(int n, const float *x) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_loadu_ps(x + i), m);   /* x NaN: keeps m */
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float best = _mm_cvtss_f32(h);
    for (; i < n; i++) if (x[i] > best) best = x[i];
    __m256 b = _mm256_set1_ps(best);
    for (i = 0; i + 8 <= n; i += 8) {
        int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), b, _CMP_EQ_OQ));
        if (mask) return i + __builtin_ctz(mask);
    }
    for (; i < n; i++) if (x[i] == best) return i;
    return 0;
}

/* A cached row of n values of type t (TF_KV_F32/F16/Q8_0/Q4_0, GGML type ids) as floats. */
static void kv_row(int t, const void *src, float *dst, int n) {
    switch (t) {
    case 0: memcpy(dst, src, (size_t)n * 4); break;
    case 1: tf_dequant_f16(src, dst, n); break;
    case 8: tf_dequant_q8_0(src, dst, n); break;
    case 2: tf_dequant_q4_0(src, dst, n); break;
    }
}

/* tf_attend_heads over a cache stored as f16, q8_0 or q4_0 (strides in bytes; k and v point
 * at this key/value head's first value). Positions go in chunks of TF_KV_CHUNK: a chunk's rows
 * are turned into floats once, in a scratch that stays in L1/L2, and serve all nq heads, so
 * each cached byte is read once per step however many query heads share it. */
#define TF_KV_CHUNK 64
void tf_attend_heads_kv(int n, int hd, int nq, const float *q, size_t qstride,
                        const void *k, int ktype, size_t kstride, const void *v, int vtype, size_t vstride,
                        float scale, float *scores, float *scratch, float *out, size_t ostride) {
    const uint8_t *kb = (const uint8_t *)k, *vb = (const uint8_t *)v;
    for (int j0 = 0; j0 < n; j0 += TF_KV_CHUNK) {
        int m = n - j0 < TF_KV_CHUNK ? n - j0 : TF_KV_CHUNK;
        for (int jj = 0; jj < m; jj++) kv_row(ktype, kb + (size_t)(j0 + jj) * kstride, scratch + (size_t)jj * hd, hd);
        for (int i = 0; i < nq; i++)
            for (int jj = 0; jj < m; jj++)
                scores[(size_t)i * n + j0 + jj] = tf_vec_dot_f32(hd, scratch + (size_t)jj * hd, q + i * qstride) * scale;
    }
    for (int i = 0; i < nq; i++) tf_softmax(n, scores + (size_t)i * n);
    for (int i = 0; i < nq; i++) memset(out + i * ostride, 0, (size_t)hd * 4);
    for (int j0 = 0; j0 < n; j0 += TF_KV_CHUNK) {
        int m = n - j0 < TF_KV_CHUNK ? n - j0 : TF_KV_CHUNK;
        for (int jj = 0; jj < m; jj++) kv_row(vtype, vb + (size_t)(j0 + jj) * vstride, scratch + (size_t)jj * hd, hd);
        for (int i = 0; i < nq; i++) {
            const float *p = scores + (size_t)i * n + j0;
            float *o = out + i * ostride;
            int d = 0;
            for (; d + 8 <= hd; d += 8) {
                __m256 acc = _mm256_loadu_ps(o + d);
                for (int jj = 0; jj < m; jj++)
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(p[jj]), _mm256_loadu_ps(scratch + (size_t)jj * hd + d), acc);
                _mm256_storeu_ps(o + d, acc);
            }
            for (; d < hd; d++) {
                float a = o[d];
                for (int jj = 0; jj < m; jj++) a += p[jj] * scratch[(size_t)jj * hd + d];
                o[d] = a;
            }
        }
    }
}

/* n floats to f16, round to nearest even (F16C). */
void tf_f32_to_f16_row(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

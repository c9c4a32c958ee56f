#include "bert_ops.h"
#include <immintrin.h>
#include <math.h>

void tf_layer_norm_rows(float *x, const float *w, const float *b, int64_t rows, int64_t n, float eps) {
    for (int64_t r = 0; r < rows; r++) {
        float *v = x + r * n;
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += v[i];
        float mean = (float)(s / (double)n);
        double q = 0;
        for (int64_t i = 0; i < n; i++) { float d = v[i] - mean; q += (double)d * d; }
        float inv = 1.0f / sqrtf((float)(q / (double)n) + eps);
        for (int64_t i = 0; i < n; i++) v[i] = (v[i] - mean) * inv * w[i] + b[i];
    }
}

/* e^x for x <= 0 (the only use below): 2^k * e^r with r in [-ln2/2, ln2/2] and e^r by its
 * Taylor series to r^7 (relative error < 1e-7 there). */
static inline __m256 exp_neg_avx2(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693145751953125f), x);   /* ln2 in two parts */
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(1.428606765330187e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* erf by Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7): for z >= 0,
 * erf(z) = 1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^{-z^2}, t = 1 / (1 + p z); odd in z. */
static inline __m256 erf_avx2(__m256 z) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 s = _mm256_and_ps(z, sign), a = _mm256_andnot_ps(sign, z);
    __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), a, _mm256_set1_ps(1.0f)));
    __m256 q = _mm256_set1_ps(1.061405429f);
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-1.453152027f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(1.421413741f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-0.284496736f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.254829592f));
    q = _mm256_mul_ps(q, t);
    __m256 y = _mm256_fnmadd_ps(q, exp_neg_avx2(_mm256_mul_ps(_mm256_xor_ps(a, sign), a)), _mm256_set1_ps(1.0f));
    return _mm256_or_ps(y, s);
}

/* GELU with the exact erf form, x * (1 + erf(x / sqrt 2)) / 2: 8 values at a time with the
 * approximation above (|error| <= 1.5e-7 * |x| / 2 against erff), erff for the tail. */
void tf_gelu_erf(float *x, int64_t n) {
    int64_t i = 0;
    const __m256 half = _mm256_set1_ps(0.5f), inv_sqrt2 = _mm256_set1_ps(0.70710678118654752440f), one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 e = erf_avx2(_mm256_mul_ps(v, inv_sqrt2));
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, e)));
    }
    for (; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752440f));
}


/* Helpers shared by the quantizers (quantize.c: legacy and K-quants, quantize_iq.c: the IQ
 * types). Not a public header. */
#ifndef TF_QUANTIZE_COMMON_H
#define TF_QUANTIZE_COMMON_H
#include "ckernels.h"
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define GROUP_EPS 1e-15f

static inline void wr16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline uint16_t f2h(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }
/* Round to nearest, ties to even (what ggml's nearest_int does for |x| < 2^22). */
static inline int nearest(float x) { return (int)lrintf(x); }
static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int iclamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The importance of each of the n values of a block: with an importance matrix `qw` (mean
 * squared activation per column) qw * sqrt(sigma2 + x^2), sigma2 the block's mean square — the
 * error of a weight counts as much as the activations it multiplies, and large weights a bit
 * more; without one the caller's default. */
static inline void importance(const float *x, const float *qw, int n, float sigma2, float *w) {
    for (int i = 0; i < n; i++) w[i] = qw[i] * sqrtf(sigma2 + x[i] * x[i]);
}

static inline float mean_square(const float *x, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += x[i] * x[i];
    return s / (float)n;
}

/* Non-negative values v[0..n) ≈ d * L[i], L in [0, nmax], weighted least squares: tries 19
 * inverse scales around nmax / max(v) and keeps the one whose refitted d leaves the smallest
 * weighted error. Used to quantize a super-block's sub-block scales. Returns d (0 if all v = 0). */
static inline float fit_positive(int n, int nmax, const float *v, const float *w, uint8_t *L) {
    float mx = 0;
    for (int i = 0; i < n; i++) if (v[i] > mx) mx = v[i];
    if (mx < GROUP_EPS) { memset(L, 0, (size_t)n); return 0.0f; }
    float best_d = mx / nmax, best = -1;
    for (int s = -9; s <= 9; s++) {
        float is = (nmax + 0.1f * s) / mx;
        float sxl = 0, sll = 0;
        for (int i = 0; i < n; i++) {
            int l = iclamp(nearest(is * v[i]), 0, nmax);
            sxl += w[i] * v[i] * l; sll += w[i] * l * l;
        }
        /* error = sum w v^2 - sxl^2 / sll: maximize sxl^2 / sll */
        if (sll > 0 && (best < 0 || sxl * sxl > best * sll)) { best = sxl * sxl / sll; best_d = sxl / sll; }
    }
    float id = best_d > 0 ? 1.0f / best_d : 0.0f;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)iclamp(nearest(id * v[i]), 0, nmax);
    return best_d;
}

/* Importance-weighted quantizers of quantize_iq.c (qw: one weight per value, or NULL). */
void tf_quantize_iq4_nl_w(const float *x, void *dst, int64_t n, const float *qw);
void tf_quantize_iq4_xs_w(const float *x, void *dst, int64_t n, const float *qw);
void tf_quantize_iq2_xxs_w(const float *x, void *dst, int64_t n, const float *qw);
void tf_quantize_iq2_xs_w(const float *x, void *dst, int64_t n, const float *qw);
void tf_quantize_iq1_s_w(const float *x, void *dst, int64_t n, const float *qw);
void tf_quantize_iq1_m_w(const float *x, void *dst, int64_t n, const float *qw);
#endif

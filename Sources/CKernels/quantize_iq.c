/* Quantization of f32 rows into the IQ block formats dequant_lowbit.c reads: IQ4_NL / IQ4_XS
 * (a 16-entry non-linear value table), IQ2_XXS / IQ2_XS (8 values at a time from a 256 / 512
 * entry codebook of {1, 3.125, 5.375} patterns, signs apart) and IQ1_S / IQ1_M (8 values from a
 * 2048-entry codebook of {-1, 0, 1} patterns plus a +-1/8 shift).
 *
 * The approach is the one of llama.cpp's reference quantizers (ggml-quants.c): the error is
 * weighted per value by its importance (importance matrix times sqrt(sigma^2 + x^2)), each small
 * block gets the best of a sweep of candidate scales, each candidate is refitted by least
 * squares, and a group of 8 that falls between codebook entries goes to the best of the entries
 * nearest to it (precomputed neighbour lists). Written independently, not a copy: in particular
 * the codebook search uses the codebook's true values (IQ2's 25/8 and 43/8, not 3 and 5), and
 * the super-block scale is refitted by least squares at the end instead of a fixed fudge factor. */
#pragma clang fp contract(off)
#pragma STDC FP_CONTRACT OFF

#include "quantize_common.h"
#include "iq_tables.h"
#include <pthread.h>
#include <stdlib.h>

/* ---------------------------------------------------------------------------------------------
 * IQ4_NL / IQ4_XS: x ≈ d * kv[L], kv the 16 sorted table values.
 * ------------------------------------------------------------------------------------------- */

/* Index of the table value nearest to v. */
static inline int nearest_kv(const int8_t *kv, float v) {
    if (v <= kv[0]) return 0;
    if (v >= kv[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) { int mid = (lo + hi) / 2; if (v < kv[mid]) hi = mid; else lo = mid; }
    return v - kv[lo] < kv[hi] - v ? lo : hi;
}

/* One block of n values: the best d over candidates that put the value of largest magnitude on
 * either end of the (asymmetric) table, each refitted by weighted least squares. */
static float fit_nl(const float *x, const float *w, int n, uint8_t *L) {
    const int8_t *kv = tf_iq4nl_values;
    float amax = 0, mx = 0;
    for (int i = 0; i < n; i++) { float a = fabsf(x[i]); if (a > amax) { amax = a; mx = x[i]; } }
    if (amax < GROUP_EPS) { memset(L, 8, (size_t)n); return 0.0f; }
    float best = -1, best_d = 0;
    uint8_t aux[32];
    for (int end = 0; end < 2; end++) {
        for (int t = -7; t <= 7; t++) {
            float id = ((end ? kv[15] : kv[0]) + t) / mx;
            float sqx = 0, sqq = 0;
            for (int i = 0; i < n; i++) {
                int l = nearest_kv(kv, id * x[i]);
                aux[i] = (uint8_t)l;
                sqx += w[i] * kv[l] * x[i]; sqq += w[i] * kv[l] * kv[l];
            }
            if (sqq > 0 && (best < 0 || sqx * sqx > best * sqq)) {
                best = sqx * sqx / sqq; best_d = sqx / sqq;
                memcpy(L, aux, (size_t)n);
            }
        }
    }
    return best_d;
}

static void nl_weights(const float *x, const float *qw, int n, float sigma2, float *w) {
    if (qw) importance(x, qw, n, sigma2, w);
    else for (int i = 0; i < n; i++) w[i] = x[i] * x[i];
}

/* Packs 32 indices into 16 bytes: low nibbles the first 16 values, high nibbles the rest. */
static inline void pack_nibbles(const uint8_t *L, uint8_t *q) {
    for (int j = 0; j < 16; j++) q[j] = (uint8_t)(L[j] | (L[16 + j] << 4));
}

/* IQ4_NL (18 bytes per 32): f16 d, 16 bytes of nibbles. */
void tf_quantize_iq4_nl_w(const float *x, void *dst, int64_t n, const float *qw) {
    uint8_t *b = dst;
    float w[32];
    uint8_t L[32];
    for (int64_t i = 0; i < n / 32; i++, x += 32, b += 18) {
        const float *q = qw ? qw + 32 * i : NULL;
        nl_weights(x, q, 32, mean_square(x, 32), w);
        float d = fit_nl(x, w, 32, L);
        uint16_t dh = f2h(d);
        wr16(b, dh);
        float dr = h2f(dh), id = dr != 0 ? 1.0f / dr : 0.0f;
        for (int j = 0; j < 32; j++) L[j] = (uint8_t)nearest_kv(tf_iq4nl_values, id * x[j]);
        pack_nibbles(L, b + 2);
    }
}

/* IQ4_XS (136 bytes per 256): f16 d, u16 scales_h, scales_l[4], qs[128]; per 32 values a 6-bit
 * scale ls (low 4 bits in scales_l, high 2 in scales_h), dl = d * (ls - 32). */
void tf_quantize_iq4_xs_w(const float *x, void *dst, int64_t n, const float *qw) {
    const int8_t *kv = tf_iq4nl_values;
    uint8_t *b = dst;
    float w[256], scales[8];
    uint8_t L[256];
    for (int64_t i = 0; i < n / 256; i++, x += 256, b += 136) {
        const float *q = qw ? qw + 256 * i : NULL;
        float sigma2 = mean_square(x, 256);
        float max_scale = 0, amax = 0;
        for (int ib = 0; ib < 8; ib++) {
            nl_weights(x + 32 * ib, q ? q + 32 * ib : NULL, 32, sigma2, w + 32 * ib);
            scales[ib] = fit_nl(x + 32 * ib, w + 32 * ib, 32, L + 32 * ib);
            if (fabsf(scales[ib]) > amax) { amax = fabsf(scales[ib]); max_scale = scales[ib]; }
        }
        memset(b, 0, 136);
        if (amax < GROUP_EPS) { memset(b + 8, 0x88, 128); continue; }
        /* The largest scale goes to -32 (the longer side of [-32, 31]); then the super-block d
         * is refitted by least squares with the integer scales and indices fixed. */
        float d = -max_scale / 32, id = 1 / d;
        int ls[8];
        for (int ib = 0; ib < 8; ib++) {
            ls[ib] = iclamp(nearest(id * scales[ib]), -32, 31);
            float dl = d * ls[ib], idl = dl != 0 ? 1 / dl : 0;
            for (int j = 0; j < 32; j++) L[32 * ib + j] = (uint8_t)nearest_kv(kv, idl * x[32 * ib + j]);
        }
        float sqx = 0, sqq = 0;
        for (int e = 0; e < 256; e++) {
            float qv = (float)ls[e / 32] * kv[L[e]];
            sqx += w[e] * qv * x[e]; sqq += w[e] * qv * qv;
        }
        if (sqq > 0) d = sqx / sqq;
        wr16(b, f2h(d));
        uint16_t sh = 0;
        for (int ib = 0; ib < 8; ib++) {
            int l = ls[ib] + 32;
            b[4 + ib / 2] |= (uint8_t)((l & 0xF) << (4 * (ib % 2)));
            sh |= (uint16_t)((l >> 4) << (2 * ib));
            pack_nibbles(L + 32 * ib, b + 8 + 16 * ib);
        }
        wr16(b + 2, sh);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Codebooks of 8-value patterns (IQ2: coordinates {1, 3.125, 5.375}; IQ1: {-1, 0, 1}).
 * A pattern is a point of the 3^8 cube, coded sum l_i 3^i with l_i in {0, 1, 2}. `code` maps a
 * cube point to its codebook entry, or to the list of entries nearest to it (two distance
 * levels) when it is not one itself.
 * ------------------------------------------------------------------------------------------- */
#define CUBE 6561

typedef struct {
    int n;                  /* entries */
    float val[3];           /* the coordinate values of levels 0, 1, 2 */
    uint8_t (*lev)[8];      /* per entry its 8 levels */
    int32_t code[CUBE];     /* >= 0: the entry; < 0: -(offset into neigh) - 1 */
    uint16_t *neigh;        /* at an offset: count, then that many entry indices */
} codebook;

static codebook cb_iq2xxs, cb_iq2xs, cb_iq1s;
static pthread_once_t once_iq2xxs = PTHREAD_ONCE_INIT, once_iq2xs = PTHREAD_ONCE_INIT, once_iq1s = PTHREAD_ONCE_INIT;

static int cube_code(const uint8_t l[8]) {
    int c = 0;
    for (int i = 7; i >= 0; i--) c = 3 * c + l[i];
    return c;
}

static void build_codebook(codebook *cb, int n, const float val[3], int (*level)(int entry, int i)) {
    cb->n = n;
    memcpy(cb->val, val, sizeof cb->val);
    cb->lev = malloc((size_t)n * 8);
    for (int c = 0; c < CUBE; c++) cb->code[c] = INT32_MIN;
    for (int e = 0; e < n; e++) {
        for (int i = 0; i < 8; i++) cb->lev[e][i] = (uint8_t)level(e, i);
        cb->code[cube_code(cb->lev[e])] = e;
    }
    size_t cap = 1 << 16, used = 0;
    cb->neigh = malloc(cap * sizeof(uint16_t));
    float *dist = malloc((size_t)n * sizeof(float));
    for (int c = 0; c < CUBE; c++) {
        if (cb->code[c] != INT32_MIN) continue;
        uint8_t l[8];
        for (int i = 0, r = c; i < 8; i++, r /= 3) l[i] = (uint8_t)(r % 3);
        float d1 = INFINITY, d2 = INFINITY;
        for (int e = 0; e < n; e++) {
            float d = 0;
            for (int i = 0; i < 8; i++) { float t = val[cb->lev[e][i]] - val[l[i]]; d += t * t; }
            dist[e] = d;
            if (d < d1 - 1e-6f) { d2 = d1; d1 = d; } else if (d > d1 + 1e-6f && d < d2 - 1e-6f) d2 = d;
        }
        int count = 0;
        for (int e = 0; e < n; e++) if (dist[e] <= d2 + 1e-6f) count++;
        if (used + (size_t)count + 1 > cap) { cap = 2 * (used + (size_t)count + 1); cb->neigh = realloc(cb->neigh, cap * sizeof(uint16_t)); }
        cb->code[c] = -(int32_t)used - 1;
        cb->neigh[used++] = (uint16_t)count;
        for (int e = 0; e < n; e++) if (dist[e] <= d2 + 1e-6f) cb->neigh[used++] = (uint16_t)e;
    }
    free(dist);
}

static int lev_iq2(uint8_t g) { return g == 8 ? 0 : g == 25 ? 1 : 2; }
static int lev_iq2xxs(int e, int i) { return lev_iq2(tf_iq2xxs_grid[e][i]); }
static int lev_iq2xs(int e, int i) { return lev_iq2(tf_iq2xs_grid[e][i]); }
static int lev_iq1s(int e, int i) { return tf_iq1s_grid[e][i] + 1; }
static const float IQ2_VAL[3] = { 1.0f, 3.125f, 5.375f }, IQ1_VAL[3] = { -1.0f, 0.0f, 1.0f };
static void init_iq2xxs(void) { build_codebook(&cb_iq2xxs, 256, IQ2_VAL, lev_iq2xxs); }
static void init_iq2xs(void) { build_codebook(&cb_iq2xs, 512, IQ2_VAL, lev_iq2xs); }
static void init_iq1s(void) { build_codebook(&cb_iq1s, 2048, IQ1_VAL, lev_iq1s); }

/* The codebook entry for 8 values x ≈ s * (val[level] + shift) with weights w: the cube point of
 * nearest levels if it is an entry (then it is the best entry), else the best of its neighbours. */
static int best_entry(const codebook *cb, const float *x, const float *w, float s, float shift) {
    uint8_t l[8];
    float t1 = s * (0.5f * (cb->val[0] + cb->val[1]) + shift), t2 = s * (0.5f * (cb->val[1] + cb->val[2]) + shift);
    for (int i = 0; i < 8; i++) l[i] = (uint8_t)(x[i] < t1 ? 0 : x[i] < t2 ? 1 : 2);
    int32_t c = cb->code[cube_code(l)];
    if (c >= 0) return c;
    const uint16_t *nb = cb->neigh + (-c - 1);
    int best = nb[1];
    float best_err = INFINITY;
    for (int k = 1; k <= nb[0]; k++) {
        const uint8_t *g = cb->lev[nb[k]];
        float err = 0;
        for (int i = 0; i < 8; i++) { float t = x[i] - s * (cb->val[g[i]] + shift); err += w[i] * t * t; }
        if (err < best_err) { best_err = err; best = nb[k]; }
    }
    return best;
}

/* ---------------------------------------------------------------------------------------------
 * IQ2_XXS / IQ2_XS: per group of 8 a codebook entry and 8 signs with an even number of minus
 * signs (7 are stored, the 8th is their parity); value = d * (1 + 2 s) * val[level] * sign.
 * ------------------------------------------------------------------------------------------- */

/* Takes the magnitudes of 8 values into a[] and returns their sign bits; if the number of
 * negative values is odd, the least important one keeps its sign wrong (a[] holds -|x| there, so
 * the fit sees the error it makes). */
static uint8_t even_signs(const float *x, const float *w, float *a) {
    uint8_t s = 0;
    int neg = 0;
    for (int i = 0; i < 8; i++) {
        a[i] = fabsf(x[i]);
        if (x[i] < 0) { s |= (uint8_t)(1 << i); neg++; }
    }
    if (neg & 1) {
        int k = 0;
        for (int i = 1; i < 8; i++) if (w[i] * a[i] * a[i] < w[k] * a[k] * a[k]) k = i;
        a[k] = -a[k];
        s ^= (uint8_t)(1 << k);
    }
    return s;
}

/* One block of ng groups of 8 magnitudes a[] (signs already taken out): the best scale over a
 * sweep that puts the largest magnitude near the top level, with the codebook entries `idx`
 * chosen for it; each candidate refitted by least squares. Returns the scale (0: all zero). */
static float fit_iq2_block(const codebook *cb, const float *a, const float *w, int ng, uint16_t *idx) {
    int n = 8 * ng;
    float mx = 0;
    for (int i = 0; i < n; i++) if (a[i] > mx) mx = a[i];
    if (mx < GROUP_EPS) { for (int k = 0; k < ng; k++) idx[k] = 0; return 0.0f; }
    float best = -1, best_s = 0;
    uint16_t cand[4];
    for (int t = -8; t <= 8; t++) {
        /* The candidate scale, then once more with the scale refitted to the entries it chose. */
        float s = mx / (cb->val[2] + 0.1f * t);
        for (int pass = 0; pass < 2 && s > 0; pass++) {
            float sqx = 0, sqq = 0;
            for (int k = 0; k < ng; k++) {
                cand[k] = (uint16_t)best_entry(cb, a + 8 * k, w + 8 * k, s, 0);
                const uint8_t *g = cb->lev[cand[k]];
                for (int i = 0; i < 8; i++) {
                    float q = cb->val[g[i]];
                    sqx += w[8 * k + i] * q * a[8 * k + i]; sqq += w[8 * k + i] * q * q;
                }
            }
            if (sqq <= 0 || sqx <= 0) break;
            if (best < 0 || sqx * sqx > best * sqq) {
                best = sqx * sqx / sqq; best_s = sqx / sqq;
                memcpy(idx, cand, (size_t)ng * sizeof(uint16_t));
            }
            s = sqx / sqq;
        }
    }
    return best_s;
}

/* The integer block scales s in [0, 15] for scales[] ≈ d * (1 + 2 s), d = max / 31, then d
 * refitted by least squares over the whole super-block (entries fixed). */
static float iq2_super_scale(const codebook *cb, const float *a, const float *w, const float *scales, int nb,
                             int per, const uint16_t *idx, int *ls) {
    float mx = 0;
    for (int ib = 0; ib < nb; ib++) if (scales[ib] > mx) mx = scales[ib];
    if (mx <= 0) { for (int ib = 0; ib < nb; ib++) ls[ib] = 0; return 0.0f; }
    float d = mx / 31, id = 1 / d;
    for (int ib = 0; ib < nb; ib++) ls[ib] = iclamp(nearest(0.5f * (id * scales[ib] - 1)), 0, 15);
    float sqx = 0, sqq = 0;
    for (int ib = 0; ib < nb; ib++) {
        for (int k = 0; k < per / 8; k++) {
            const uint8_t *g = cb->lev[idx[ib * (per / 8) + k]];
            for (int i = 0; i < 8; i++) {
                int e = ib * per + 8 * k + i;
                float q = (float)(1 + 2 * ls[ib]) * cb->val[g[i]];
                sqx += w[e] * q * a[e]; sqq += w[e] * q * q;
            }
        }
    }
    return sqq > 0 && sqx > 0 ? sqx / sqq : d;
}

static void iq2_weights(const float *x, const float *qw, float sigma2, float *w) {
    if (qw) importance(x, qw, 256, sigma2, w);
    else for (int i = 0; i < 256; i++) w[i] = sqrtf(sigma2 + x[i] * x[i]);
}

/* IQ2_XXS (66 bytes per 256): f16 d, then per 32 values two u32: four 8-bit entry indices, and
 * four 7-bit sign codes with the 4-bit scale s in the top bits. */
void tf_quantize_iq2_xxs_w(const float *x, void *dst, int64_t n, const float *qw) {
    pthread_once(&once_iq2xxs, init_iq2xxs);
    const codebook *cb = &cb_iq2xxs;
    uint8_t *b = dst;
    float w[256], a[256], scales[8];
    uint8_t signs[32];
    uint16_t idx[32];
    for (int64_t i = 0; i < n / 256; i++, x += 256, b += 66) {
        iq2_weights(x, qw ? qw + 256 * i : NULL, mean_square(x, 256), w);
        for (int k = 0; k < 32; k++) signs[k] = even_signs(x + 8 * k, w + 8 * k, a + 8 * k);
        for (int ib = 0; ib < 8; ib++) scales[ib] = fit_iq2_block(cb, a + 32 * ib, w + 32 * ib, 4, idx + 4 * ib);
        int ls[8];
        float d = iq2_super_scale(cb, a, w, scales, 8, 32, idx, ls);
        wr16(b, f2h(d));
        for (int ib = 0; ib < 8; ib++) {
            uint32_t q0 = 0, q1 = (uint32_t)ls[ib] << 28;
            for (int k = 0; k < 4; k++) {
                q0 |= (uint32_t)idx[4 * ib + k] << (8 * k);
                q1 |= (uint32_t)(signs[4 * ib + k] & 127) << (7 * k);
            }
            memcpy(b + 2 + 8 * ib, &q0, 4);
            memcpy(b + 6 + 8 * ib, &q1, 4);
        }
    }
}

/* IQ2_XS (74 bytes per 256): f16 d, 32 u16 (9-bit entry index, 7-bit sign code), 8 bytes of
 * 4-bit scales (one per 16 values, low nibble first). */
void tf_quantize_iq2_xs_w(const float *x, void *dst, int64_t n, const float *qw) {
    pthread_once(&once_iq2xs, init_iq2xs);
    const codebook *cb = &cb_iq2xs;
    uint8_t *b = dst;
    float w[256], a[256], scales[16];
    uint8_t signs[32];
    uint16_t idx[32];
    for (int64_t i = 0; i < n / 256; i++, x += 256, b += 74) {
        iq2_weights(x, qw ? qw + 256 * i : NULL, mean_square(x, 256), w);
        for (int k = 0; k < 32; k++) signs[k] = even_signs(x + 8 * k, w + 8 * k, a + 8 * k);
        for (int ib = 0; ib < 16; ib++) scales[ib] = fit_iq2_block(cb, a + 16 * ib, w + 16 * ib, 2, idx + 2 * ib);
        int ls[16];
        float d = iq2_super_scale(cb, a, w, scales, 16, 16, idx, ls);
        wr16(b, f2h(d));
        for (int k = 0; k < 32; k++) wr16(b + 2 + 2 * k, (uint16_t)(idx[k] | (signs[k] & 127) << 9));
        for (int ib = 0; ib < 8; ib++) b[66 + ib] = (uint8_t)(ls[2 * ib] | ls[2 * ib + 1] << 4);
    }
}

/* ---------------------------------------------------------------------------------------------
 * IQ1_S / IQ1_M: value = d * (2 s + 1) * (g + shift), g in {-1, 0, 1} from the codebook, shift
 * +-1/8 per block (IQ1_S) or per group of 8 (IQ1_M).
 * ------------------------------------------------------------------------------------------- */
#define IQ1_SHIFT 0.125f

/* The best three-level split of a block of n values (ng groups of 8, group k with shift
 * shift[k]): sorted by value, the lowest go to -1, the middle to 0, the highest to +1; every
 * split is scored by its least-squares scale (prefix sums make each O(1)). Writes the levels
 * (0, 1, 2) and returns the scale (0 if no split has a positive one). */
static float best_split(const float *x, const float *w, int n, const float *shift, uint8_t *lev) {
    int order[32];
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++) {   /* insertion sort: n <= 32 */
        int v = order[i], j = i - 1;
        while (j >= 0 && x[order[j]] > x[v]) { order[j + 1] = order[j]; j--; }
        order[j + 1] = v;
    }
    /* Per sorted prefix: sums of w, w*x, w*shift, w*x*shift, w*shift^2. */
    double pw[33], pwx[33], pws[33];
    pw[0] = pwx[0] = pws[0] = 0;
    double tx = 0, tq = 0;   /* totals of w*x*shift and w*shift^2 (every value carries its shift) */
    for (int k = 0; k < n; k++) {
        int i = order[k];
        float sh = shift[i / 8];
        pw[k + 1] = pw[k] + w[i]; pwx[k + 1] = pwx[k] + w[i] * x[i]; pws[k + 1] = pws[k] + w[i] * sh;
        tx += w[i] * x[i] * sh; tq += w[i] * sh * sh;
    }
    /* q = g + shift: sum w x q = (wx over +1) - (wx over -1) + tx;
     * sum w q^2 = (w over +-1) + 2 (ws over +1 - ws over -1) + tq. */
    double best = -1, best_s = 0;
    int b1 = 0, b2 = n;
    for (int i1 = 0; i1 <= n; i1++) {
        for (int i2 = i1; i2 <= n; i2++) {
            double sxq = (pwx[n] - pwx[i2]) - pwx[i1] + tx;
            double sqq = (pw[n] - pw[i2]) + pw[i1] + 2 * ((pws[n] - pws[i2]) - pws[i1]) + tq;
            if (sqq > 0 && sxq > 0 && sxq * sxq > best * sqq) { best = sxq * sxq / sqq; best_s = sxq / sqq; b1 = i1; b2 = i2; }
        }
    }
    for (int k = 0; k < n; k++) lev[order[k]] = (uint8_t)(k < b1 ? 0 : k < b2 ? 1 : 2);
    return (float)best_s;
}

/* Given a split's scale, the codebook entries of each group of 8, then the scale refitted to
 * them. Returns the weighted error (scale in *s; INFINITY if no positive scale). */
static float iq1_entries(const codebook *cb, const float *x, const float *w, int ng, const float *shift, float *s,
                         uint16_t *idx) {
    float sc = *s, sxq = 0, sqq = 0, sxx = 0;
    for (int k = 0; k < ng; k++) {
        idx[k] = (uint16_t)best_entry(cb, x + 8 * k, w + 8 * k, sc, shift[k]);
        const uint8_t *g = cb->lev[idx[k]];
        for (int i = 0; i < 8; i++) {
            int e = 8 * k + i;
            float q = cb->val[g[i]] + shift[k];
            sxq += w[e] * x[e] * q; sqq += w[e] * q * q; sxx += w[e] * x[e] * x[e];
        }
    }
    if (sqq <= 0 || sxq <= 0) return INFINITY;
    *s = sxq / sqq;
    return sxx - sxq * sxq / sqq;
}

/* One block of ng groups: every combination of shift signs (per block: ng_shift = 1 sign for all
 * groups; else one per group), the best split for each, entries for it; the best overall. */
static float fit_iq1_block(const codebook *cb, const float *x, const float *w, int ng, int per_group_shift,
                           float *shift_out, uint16_t *idx) {
    float best_err = INFINITY, best_s = 0;
    int combos = per_group_shift ? 1 << ng : 2;
    uint8_t lev[32];
    uint16_t cand[4];
    for (int c = 0; c < combos; c++) {
        float shift[4];
        for (int k = 0; k < ng; k++) shift[k] = ((per_group_shift ? c >> k : c) & 1) ? -IQ1_SHIFT : IQ1_SHIFT;
        float s = best_split(x, w, 8 * ng, shift, lev);
        if (s <= 0) continue;
        float err = iq1_entries(cb, x, w, ng, shift, &s, cand);
        if (err < best_err) {
            best_err = err; best_s = s;
            memcpy(idx, cand, (size_t)ng * sizeof(uint16_t));
            memcpy(shift_out, shift, (size_t)ng * sizeof(float));
        }
    }
    if (best_s <= 0) {
        for (int k = 0; k < ng; k++) { shift_out[k] = IQ1_SHIFT; idx[k] = 0; }
        return 0.0f;
    }
    return best_s;
}

/* Block scales[] ≈ d * (2 s + 1), s in [0, 7], d = max / 15; then d refitted over the super-block. */
static float iq1_super_scale(const codebook *cb, const float *x, const float *w, const float *scales, int nb, int per,
                             const uint16_t *idx, const float *shift, int *ls) {
    float mx = 0;
    for (int ib = 0; ib < nb; ib++) if (scales[ib] > mx) mx = scales[ib];
    if (mx <= 0) { for (int ib = 0; ib < nb; ib++) ls[ib] = 0; return 0.0f; }
    float d = mx / 15, id = 1 / d;
    for (int ib = 0; ib < nb; ib++) ls[ib] = iclamp(nearest(0.5f * (id * scales[ib] - 1)), 0, 7);
    float sxq = 0, sqq = 0;
    for (int k = 0; k < 32; k++) {
        const uint8_t *g = cb->lev[idx[k]];
        float m = (float)(2 * ls[(8 * k) / per] + 1);
        for (int i = 0; i < 8; i++) {
            int e = 8 * k + i;
            float q = m * (cb->val[g[i]] + shift[k]);
            sxq += w[e] * x[e] * q; sqq += w[e] * q * q;
        }
    }
    return sqq > 0 && sxq > 0 ? sxq / sqq : d;
}

/* IQ1_S (50 bytes per 256): f16 d, qs[32] (low 8 bits of the 11-bit entry indices), per 32
 * values a u16: four 3-bit high index bits, the 3-bit scale, the shift's sign in bit 15. */
void tf_quantize_iq1_s_w(const float *x, void *dst, int64_t n, const float *qw) {
    pthread_once(&once_iq1s, init_iq1s);
    const codebook *cb = &cb_iq1s;
    uint8_t *b = dst;
    float w[256], scales[8], shift[32];
    uint16_t idx[32];
    for (int64_t i = 0; i < n / 256; i++, x += 256, b += 50) {
        iq2_weights(x, qw ? qw + 256 * i : NULL, mean_square(x, 256), w);
        for (int ib = 0; ib < 8; ib++) {
            float sh[4];
            scales[ib] = fit_iq1_block(cb, x + 32 * ib, w + 32 * ib, 4, 0, sh, idx + 4 * ib);
            for (int k = 0; k < 4; k++) shift[4 * ib + k] = sh[k];
        }
        int ls[8];
        float d = iq1_super_scale(cb, x, w, scales, 8, 32, idx, shift, ls);
        wr16(b, f2h(d));
        for (int ib = 0; ib < 8; ib++) {
            uint16_t h = (uint16_t)(ls[ib] << 12 | (shift[4 * ib] < 0 ? 0x8000 : 0));
            for (int k = 0; k < 4; k++) {
                b[2 + 4 * ib + k] = (uint8_t)(idx[4 * ib + k] & 255);
                h |= (uint16_t)((idx[4 * ib + k] >> 8) << (3 * k));
            }
            wr16(b + 34 + 2 * ib, h);
        }
    }
}

/* IQ1_M (56 bytes per 256): qs[32] (low index bits), qh[16] (per group a nibble: 3 high index
 * bits, the shift's sign in bit 3), four u16 of 3-bit scales (one per 16 values) whose top
 * nibbles hold the f16 d. */
void tf_quantize_iq1_m_w(const float *x, void *dst, int64_t n, const float *qw) {
    pthread_once(&once_iq1s, init_iq1s);
    const codebook *cb = &cb_iq1s;
    uint8_t *b = dst;
    float w[256], scales[16], shift[32];
    uint16_t idx[32];
    for (int64_t i = 0; i < n / 256; i++, x += 256, b += 56) {
        iq2_weights(x, qw ? qw + 256 * i : NULL, mean_square(x, 256), w);
        for (int ib = 0; ib < 16; ib++) scales[ib] = fit_iq1_block(cb, x + 16 * ib, w + 16 * ib, 2, 1, shift + 2 * ib, idx + 2 * ib);
        int ls[16];
        uint16_t dh = f2h(iq1_super_scale(cb, x, w, scales, 16, 16, idx, shift, ls));
        memset(b, 0, 56);
        for (int k = 0; k < 32; k++) {
            b[k] = (uint8_t)(idx[k] & 255);
            int nib = (idx[k] >> 8) | (shift[k] < 0 ? 8 : 0);
            b[32 + k / 2] |= (uint8_t)(nib << (4 * (k & 1)));
        }
        for (int wd = 0; wd < 4; wd++) {
            uint16_t v = (uint16_t)(((dh >> (4 * wd)) & 0xF) << 12);
            for (int j = 0; j < 4; j++) v |= (uint16_t)(ls[4 * wd + j] << (3 * j));
            wr16(b + 48 + 2 * wd, v);
        }
    }
}

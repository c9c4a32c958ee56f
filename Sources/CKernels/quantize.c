/* Quantization of f32 rows into ggml block formats (the layouts dequant.c and dequant_lowbit.c
 * read).
 *
 * The algorithms follow llama.cpp's reference quantizers (ggml-quants.c): Q8_0 / Q4_0 / Q5_0 /
 * Q5_1 by block max, Q4_K / Q5_K by a weighted search over scale and min per 32-value sub-block
 * (then 6-bit packed super-block scales), Q6_K by an rms-weighted scale search per 16-value
 * sub-block (then int8 super-block scales), Q2_K (scale and min per 16 values, 2 bits) and Q3_K
 * (symmetric per 16 values, 3 bits) the same way with 4-bit resp. 6-bit sub-block scales; Q2_K,
 * Q3_K and the IQ types (quantize_iq.c) take an importance matrix. Written independently from
 * the description of the math; not a copy. */
#pragma clang fp contract(off)
#pragma STDC FP_CONTRACT OFF

#include "quantize_common.h"

/* ---- Q8_0: d = max|x| / 127, q = round-half-away(x / d) ---- */
void tf_quantize_q8_0(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / 32; i++, x += 32, b += 34) {
        float amax = 0;
        for (int j = 0; j < 32; j++) { float a = fabsf(x[j]); if (a > amax) amax = a; }
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(b, f2h(d));
        int8_t *q = (int8_t *)(b + 2);
        for (int j = 0; j < 32; j++) q[j] = (int8_t)roundf(x[j] * id);
    }
}

/* The value of largest magnitude, with its sign. */
static inline float signed_absmax(const float *x, int n) {
    float amax = 0, m = 0;
    for (int j = 0; j < n; j++) { float a = fabsf(x[j]); if (a > amax) { amax = a; m = x[j]; } }
    return m;
}

/* ---- Q4_0: d = max / -8, q = clamp(trunc(x/d + 8.5), 0, 15) ---- */
void tf_quantize_q4_0(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / 32; i++, x += 32, b += 18) {
        float d = signed_absmax(x, 32) / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(b, f2h(d));
        for (int j = 0; j < 16; j++) {
            int q0 = imin(15, (int)(int8_t)(x[j] * id + 8.5f));
            int q1 = imin(15, (int)(int8_t)(x[16 + j] * id + 8.5f));
            b[2 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* ---- Q5_0: d = max / -16, q = clamp(trunc(x/d + 16.5), 0, 31), 5th bits in qh ---- */
void tf_quantize_q5_0(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / 32; i++, x += 32, b += 22) {
        float d = signed_absmax(x, 32) / -16.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(b, f2h(d));
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = imin(31, (int)(int8_t)(x[j] * id + 16.5f));
            int q1 = imin(31, (int)(int8_t)(x[16 + j] * id + 16.5f));
            b[6 + j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
            qh |= (uint32_t)((q0 >> 4) & 1) << j;
            qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
        }
        memcpy(b + 2, &qh, 4);
    }
}

/* ---- Q5_1: d = (max - min) / 31, m = min, q = clamp(trunc((x - min)/d + 0.5), 0, 31) ---- */
void tf_quantize_q5_1(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / 32; i++, x += 32, b += 24) {
        float mn = x[0], mx = x[0];
        for (int j = 1; j < 32; j++) { if (x[j] < mn) mn = x[j]; if (x[j] > mx) mx = x[j]; }
        float d = (mx - mn) / 31.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(b, f2h(d)); wr16(b + 2, f2h(mn));
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = imin(31, (int)(uint8_t)((x[j] - mn) * id + 0.5f));
            int q1 = imin(31, (int)(uint8_t)((x[16 + j] - mn) * id + 0.5f));
            b[8 + j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
            qh |= (uint32_t)((q0 >> 4) & 1) << j;
            qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
        }
        memcpy(b + 4, &qh, 4);
    }
}

/* Asymmetric sub-block fit: x ≈ scale * L - min_out, L in [0, nmax], trying nstep+1 candidate
 * inverse scales around nmax / (max - min), each refitted by weighted least squares; a candidate
 * is kept when its weighted squared error (or, with `mad`, absolute error, which Q2_K's
 * reference uses) is smaller. Returns scale; min_out >= 0. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *min_out,
                           float rmin, float rdelta, int nstep, int mad) {
    float lo = x[0], hi = x[0], sw = w[0], sx = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        sw += w[i]; sx += w[i] * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) { memset(L, 0, (size_t)n); *min_out = -lo; return 0.0f; }
    float iscale = nmax / (hi - lo), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(0, imin(nmax, nearest(iscale * (x[i] - lo))));
        L[i] = (uint8_t)l;
        float diff = scale * l + lo - x[i];
        best += mad ? w[i] * fabsf(diff) : w[i] * diff * diff;
    }
    uint8_t aux[32];
    for (int s = 0; s <= nstep; s++) {
        float is = (rmin + rdelta * s + nmax) / (hi - lo);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(0, imin(nmax, nearest(is * (x[i] - lo))));
            aux[i] = (uint8_t)l;
            sl += w[i] * l; sl2 += w[i] * l * l; sxl += w[i] * l * x[i];
        }
        float D = sw * sl2 - sl * sl;
        if (D > 0) {
            float ts = (sw * sxl - sx * sl) / D;
            float tm = (sl2 * sx - sl * sxl) / D;
            if (tm > 0) { tm = 0; ts = sxl / sl2; }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = ts * aux[i] + tm - x[i];
                err += mad ? w[i] * fabsf(diff) : w[i] * diff * diff;
            }
            if (err < best) { memcpy(L, aux, (size_t)n); best = err; scale = ts; lo = tm; }
        }
    }
    *min_out = -lo;
    return scale;
}

/* Packs 8 6-bit scales and 8 6-bit mins into the 12 bytes Q4_K/Q5_K use. */
static void pack_k_scales(const uint8_t ls[8], const uint8_t lm[8], uint8_t out[12]) {
    for (int j = 0; j < 4; j++) {
        out[j] = (uint8_t)((ls[j] & 63) | ((ls[j + 4] >> 4) << 6));
        out[j + 4] = (uint8_t)((lm[j] & 63) | ((lm[j + 4] >> 4) << 6));
        out[j + 8] = (uint8_t)((ls[j + 4] & 0xF) | ((lm[j + 4] & 0xF) << 4));
    }
}

/* Q4_K (nmax 15) and Q5_K (nmax 31): per 256 values, 8 sub-blocks of 32. */
static void quantize_k_asym(const float *x, uint8_t *b, int nmax, float rmin, int nstep, uint8_t L[256]) {
    float scales[8], mins[8], w[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float s2 = 0;
        for (int l = 0; l < 32; l++) s2 += xs[l] * xs[l];
        float av = sqrtf(s2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av + fabsf(xs[l]);
        scales[j] = fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep, 0);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_s = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    float inv_m = max_min > 0 ? 63.0f / max_min : 0.0f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)imin(63, nearest(inv_s * scales[j]));
        lm[j] = (uint8_t)imin(63, nearest(inv_m * mins[j]));
    }
    uint16_t dh = f2h(max_scale / 63.0f), mh = f2h(max_min / 63.0f);
    wr16(b, dh); wr16(b + 2, mh);
    pack_k_scales(ls, lm, b + 4);
    float d = h2f(dh), dmin = h2f(mh);
    /* Re-quantize against the rounded scales. */
    for (int j = 0; j < 8; j++) {
        float dl = d * ls[j];
        if (dl == 0.0f) continue;
        float ml = dmin * lm[j];
        for (int l = 0; l < 32; l++) {
            int q = nearest((x[32 * j + l] + ml) / dl);
            L[32 * j + l] = (uint8_t)imax(0, imin(nmax, q));
        }
    }
}

void tf_quantize_q4_K(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    uint8_t L[256];
    for (int64_t i = 0; i < n / 256; i++, x += 256, b += 144) {
        quantize_k_asym(x, b, 15, -1.0f, 20, L);
        uint8_t *qs = b + 16;
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) qs[32 * k + l] = (uint8_t)(L[64 * k + l] | (L[64 * k + 32 + l] << 4));
    }
}

void tf_quantize_q5_K(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    uint8_t L[256];
    for (int64_t i = 0; i < n / 256; i++, x += 256, b += 176) {
        quantize_k_asym(x, b, 31, -0.5f, 15, L);
        uint8_t *qh = b + 16, *qs = b + 48;
        memset(qh, 0, 32);
        for (int k = 0; k < 4; k++) {
            for (int l = 0; l < 32; l++) {
                int a = L[64 * k + l], c = L[64 * k + 32 + l];
                if (a > 15) qh[l] |= (uint8_t)(1 << (2 * k));
                if (c > 15) qh[l] |= (uint8_t)(1 << (2 * k + 1));
                qs[32 * k + l] = (uint8_t)((a & 0xF) | ((c & 0xF) << 4));
            }
        }
    }
}

/* Symmetric fit for Q6_K's and Q3_K's 16-value sub-blocks: L in [0, 2*nmax) holding q + nmax,
 * weights w (NULL: x^2), 19 candidate inverse scales. Returns the (signed) scale. */
static float fit_symmetric(int n, int nmax, const float *x, const float *wt, uint8_t *L) {
    float amax = 0, mx = 0;
    for (int i = 0; i < n; i++) { float a = fabsf(x[i]); if (a > amax) { amax = a; mx = x[i]; } }
    if (amax < GROUP_EPS) { memset(L, 0, (size_t)n); return 0.0f; }
    float iscale = -nmax / mx;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, nearest(iscale * x[i])));
        L[i] = (uint8_t)(l + nmax);
        float w = wt ? wt[i] : x[i] * x[i];
        sumlx += w * x[i] * l; suml2 += w * l * l;
    }
    float scale = suml2 > 0 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int s = -9; s <= 9; s++) {
        if (s == 0) continue;
        float is = -(nmax + 0.1f * s) / mx;
        float slx = 0, sl2 = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(-nmax, imin(nmax - 1, nearest(is * x[i])));
            float w = wt ? wt[i] : x[i] * x[i];
            slx += w * x[i] * l; sl2 += w * l * l;
        }
        if (sl2 > 0 && slx * slx > best * sl2) {
            for (int i = 0; i < n; i++) L[i] = (uint8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest(is * x[i]))));
            scale = slx / sl2; best = scale * slx;
        }
    }
    return scale;
}

void tf_quantize_q6_K(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    uint8_t L[256];
    float scales[16];
    for (int64_t i = 0; i < n / 256; i++, x += 256, b += 210) {
        float max_scale = 0, max_abs = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_symmetric(16, 32, x + 16 * j, NULL, L + 16 * j);
            float a = fabsf(scales[j]);
            if (a > max_abs) { max_abs = a; max_scale = scales[j]; }
        }
        uint8_t *ql = b, *qh = b + 128;
        int8_t *sc = (int8_t *)(b + 192);
        if (max_abs < GROUP_EPS) { memset(b, 0, 210); continue; }
        float iscale = -128.0f / max_scale;
        uint16_t dh = f2h(1 / iscale);
        wr16(b + 208, dh);
        for (int j = 0; j < 16; j++) sc[j] = (int8_t)imin(127, nearest(iscale * scales[j]));
        float d = h2f(dh);
        for (int j = 0; j < 16; j++) {
            float dl = d * sc[j];
            if (dl == 0.0f) continue;
            for (int l = 0; l < 16; l++) {
                int q = imax(-32, imin(31, nearest(x[16 * j + l] / dl)));
                L[16 * j + l] = (uint8_t)(q + 32);
            }
        }
        for (int h = 0; h < 2; h++) {
            const uint8_t *Lh = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                ql[64 * h + l] = (uint8_t)((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
                ql[64 * h + 32 + l] = (uint8_t)((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
                qh[32 * h + l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}

/* Q2_K (84 bytes per 256): scales[16] (per 16 values a 4-bit scale, low nibble, and a 4-bit
 * min, high nibble), qs[64] (2 bits per value: element 128h + 32s + l in bits 2s of
 * qs[32h + l]), f16 d, f16 dmin; x = d * sc * q - dmin * m. Per 16 values a scale/min fit with
 * weights |x| and absolute error (the reference) or, with an importance matrix, the imatrix
 * weights, squared error and a finer candidate sweep; then the 16 scales and the 16 mins are
 * quantized to 4 bits against the super-block maxima (weighted by each sub-block's total
 * importance when there is an imatrix) and the values re-quantized against the rounded scales. */
static void quantize_q2_K_block(const float *x, uint8_t *b, const float *qw) {
    uint8_t L[256], ls[16], lm[16];
    float scales[16], mins[16], w[16], sw[16];
    float sigma2 = qw ? mean_square(x, 256) : 0;
    for (int j = 0; j < 16; j++) {
        const float *xs = x + 16 * j;
        if (qw) importance(xs, qw + 16 * j, 16, sigma2, w);
        else for (int l = 0; l < 16; l++) w[l] = fabsf(xs[l]);
        sw[j] = 0;
        for (int l = 0; l < 16; l++) sw[j] += w[l];
        scales[j] = qw ? fit_scale_min(16, 3, xs, w, L + 16 * j, &mins[j], -0.9f, 0.05f, 36, 0)
                       : fit_scale_min(16, 3, xs, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, 1);
    }
    float d, dmin;
    if (qw) {
        d = fit_positive(16, 15, scales, sw, ls);
        dmin = fit_positive(16, 15, mins, sw, lm);
    } else {
        float ms = 0, mm = 0;
        for (int j = 0; j < 16; j++) { if (scales[j] > ms) ms = scales[j]; if (mins[j] > mm) mm = mins[j]; }
        float is = ms > 0 ? 15.0f / ms : 0.0f, im = mm > 0 ? 15.0f / mm : 0.0f;
        for (int j = 0; j < 16; j++) {
            ls[j] = (uint8_t)imin(15, nearest(is * scales[j]));
            lm[j] = (uint8_t)imin(15, nearest(im * mins[j]));
        }
        d = ms / 15.0f; dmin = mm / 15.0f;
    }
    uint16_t dh = f2h(d), mh = f2h(dmin);
    d = h2f(dh); dmin = h2f(mh);
    for (int j = 0; j < 16; j++) {
        b[j] = (uint8_t)(ls[j] | (lm[j] << 4));
        float dl = d * ls[j], ml = dmin * lm[j];
        if (dl == 0.0f) continue;
        for (int l = 0; l < 16; l++) L[16 * j + l] = (uint8_t)iclamp(nearest((x[16 * j + l] + ml) / dl), 0, 3);
    }
    uint8_t *qs = b + 16;
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *Lh = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(Lh[0] | (Lh[32] << 2) | (Lh[64] << 4) | (Lh[96] << 6));
        }
    wr16(b + 80, dh); wr16(b + 82, mh);
}

void tf_quantize_q2_K_w(const float *x, void *dst, int64_t n, const float *qw) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / 256; i++, x += 256, b += 84) quantize_q2_K_block(x, b, qw ? qw + 256 * i : NULL);
}

/* Q3_K (110 bytes per 256): hmask[32], qs[64], scales[12] (16 6-bit scales, stored + 32), f16 d;
 * x = d * (scale - 32) * q, q in [-4, 3] (low 2 bits in qs as Q2_K, the third in hmask[l] bit
 * (e / 32) for element e = 32k + l). Per 16 values a symmetric fit (weights x^2, or the
 * imatrix's), then the 16 scales to 6 bits against the one of largest magnitude (weighted by
 * sub-block importance with an imatrix), values re-quantized against the rounded scales. */
static void quantize_q3_K_block(const float *x, uint8_t *b, const float *qw) {
    uint8_t L[256];
    float scales[16], w[16], sw[16];
    float sigma2 = qw ? mean_square(x, 256) : 0;
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; j++) {
        const float *xs = x + 16 * j;
        if (qw) importance(xs, qw + 16 * j, 16, sigma2, w);
        else for (int l = 0; l < 16; l++) w[l] = xs[l] * xs[l];
        sw[j] = 0;
        for (int l = 0; l < 16; l++) sw[j] += w[l];
        scales[j] = fit_symmetric(16, 4, xs, w, L + 16 * j);
        if (fabsf(scales[j]) > amax) { amax = fabsf(scales[j]); max_scale = scales[j]; }
    }
    memset(b, 0, 110);
    if (amax < GROUP_EPS) return;
    int8_t sc[16];
    float d;
    if (qw) {
        uint8_t Ls[16];
        d = fit_symmetric(16, 32, scales, sw, Ls);
        for (int j = 0; j < 16; j++) sc[j] = (int8_t)(Ls[j] - 32);
    } else {
        float iscale = -32.0f / max_scale;
        for (int j = 0; j < 16; j++) sc[j] = (int8_t)iclamp(nearest(iscale * scales[j]), -32, 31);
        d = 1 / iscale;
    }
    uint8_t *hm = b, *qs = b + 32, *scp = b + 96;
    for (int j = 0; j < 16; j++) {
        int l = sc[j] + 32;
        if (j < 8) scp[j] = (uint8_t)(l & 0xF); else scp[j - 8] |= (uint8_t)((l & 0xF) << 4);
        scp[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
    }
    uint16_t dh = f2h(d);
    wr16(b + 108, dh);
    d = h2f(dh);
    for (int j = 0; j < 16; j++) {
        float dl = d * sc[j];
        if (dl == 0.0f) { memset(L + 16 * j, 4, 16); continue; }
        for (int l = 0; l < 16; l++) L[16 * j + l] = (uint8_t)(iclamp(nearest(x[16 * j + l] / dl), -4, 3) + 4);
    }
    for (int e = 0; e < 256; e++) if (L[e] > 3) hm[e % 32] |= (uint8_t)(1 << (e / 32));
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *Lh = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)((Lh[0] & 3) | ((Lh[32] & 3) << 2) | ((Lh[64] & 3) << 4) | ((Lh[96] & 3) << 6));
        }
}

void tf_quantize_q3_K_w(const float *x, void *dst, int64_t n, const float *qw) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / 256; i++, x += 256, b += 110) quantize_q3_K_block(x, b, qw ? qw + 256 * i : NULL);
}

/* One row of `n` values (qw: its n importances, or NULL). */
static int quantize_one_row(int type, const float *x, void *dst, int64_t n, const float *qw) {
    int bs = type == TF_TYPE_Q4_0 || type == TF_TYPE_Q5_0 || type == TF_TYPE_Q5_1 || type == TF_TYPE_Q8_0 ||
             type == TF_TYPE_IQ4_NL ? 32 : type == TF_TYPE_F32 || type == TF_TYPE_F16 ? 1 : 256;
    if (n % bs) return -1;
    switch (type) {
    case TF_TYPE_Q4_0: tf_quantize_q4_0(x, dst, n); return 0;
    case TF_TYPE_Q5_0: tf_quantize_q5_0(x, dst, n); return 0;
    case TF_TYPE_Q5_1: tf_quantize_q5_1(x, dst, n); return 0;
    case TF_TYPE_Q8_0: tf_quantize_q8_0(x, dst, n); return 0;
    case TF_TYPE_Q4_K: tf_quantize_q4_K(x, dst, n); return 0;
    case TF_TYPE_Q5_K: tf_quantize_q5_K(x, dst, n); return 0;
    case TF_TYPE_Q6_K: tf_quantize_q6_K(x, dst, n); return 0;
    case TF_TYPE_Q2_K: tf_quantize_q2_K_w(x, dst, n, qw); return 0;
    case TF_TYPE_Q3_K: tf_quantize_q3_K_w(x, dst, n, qw); return 0;
    case TF_TYPE_IQ4_NL: tf_quantize_iq4_nl_w(x, dst, n, qw); return 0;
    case TF_TYPE_IQ4_XS: tf_quantize_iq4_xs_w(x, dst, n, qw); return 0;
    case TF_TYPE_IQ2_XXS: tf_quantize_iq2_xxs_w(x, dst, n, qw); return 0;
    case TF_TYPE_IQ2_XS: tf_quantize_iq2_xs_w(x, dst, n, qw); return 0;
    case TF_TYPE_IQ1_S: tf_quantize_iq1_s_w(x, dst, n, qw); return 0;
    case TF_TYPE_IQ1_M: tf_quantize_iq1_m_w(x, dst, n, qw); return 0;
    case TF_TYPE_F32: memcpy(dst, x, (size_t)n * 4); return 0;
    case TF_TYPE_F16: { uint8_t *o = dst; for (int64_t i = 0; i < n; i++) wr16(o + 2 * i, f2h(x[i])); return 0; }
    default: return -1;
    }
}

/* Bytes of one row of n values of `type` (0 when unsupported or n is not whole blocks). */
static int64_t row_bytes(int type, int64_t n) {
    switch (type) {
    case TF_TYPE_Q4_0: return n % 32 ? 0 : n / 32 * 18;
    case TF_TYPE_Q5_0: return n % 32 ? 0 : n / 32 * 22;
    case TF_TYPE_Q5_1: return n % 32 ? 0 : n / 32 * 24;
    case TF_TYPE_Q8_0: return n % 32 ? 0 : n / 32 * 34;
    case TF_TYPE_IQ4_NL: return n % 32 ? 0 : n / 32 * 18;
    case TF_TYPE_F32: return n * 4;
    case TF_TYPE_F16: return n * 2;
    default: break;
    }
    int per = type == TF_TYPE_Q4_K ? 144 : type == TF_TYPE_Q5_K ? 176 : type == TF_TYPE_Q6_K ? 210 :
              type == TF_TYPE_Q2_K ? 84 : type == TF_TYPE_Q3_K ? 110 : type == TF_TYPE_IQ4_XS ? 136 :
              type == TF_TYPE_IQ2_XXS ? 66 : type == TF_TYPE_IQ2_XS ? 74 : type == TF_TYPE_IQ1_S ? 50 :
              type == TF_TYPE_IQ1_M ? 56 : 0;
    return n % 256 ? 0 : n / 256 * per;
}

int tf_quantize_rows(int type, const float *x, void *dst, int64_t nrows, int64_t n_per_row, const float *qw) {
    int64_t rb = row_bytes(type, n_per_row);
    if (rb == 0 && n_per_row > 0) return -1;
    for (int64_t r = 0; r < nrows; r++)
        if (quantize_one_row(type, x + r * n_per_row, (uint8_t *)dst + r * rb, n_per_row, qw) != 0) return -1;
    return 0;
}

int tf_quantize_row(int type, const float *x, void *dst, int64_t n) {
    return tf_quantize_rows(type, x, dst, 1, n, NULL);
}

/* The register-blocked matrix kernel over decoded weight panels (prefill, MoE expert passes),
 * instantiated by quant_dot.c for AVX2 and for AVX-512 VNNI next to quant_kernels.h. Not a
 * public header.
 *
 * Why: the packed kernel (quant_kernels.h) keeps the tokens in the vector lanes, so every 4-byte
 * piece of a decoded weight group has to be permuted into all lanes once per token tile; on this
 * CPU's shuffle port that, not the multiplies, set its speed (IQ1_S 4.6 ns per token and block).
 * Here the lanes hold weight *rows* instead, as in a classic int8 GEMM:
 *
 *   1. Decode a tile of 16 weight rows once into a panel: per 32-value group g, eight steps k of
 *      one vector per 8 rows holding values 4k..4k+3 of each row (an 8x8 transpose of the decoded
 *      groups' 4-byte pieces), and per row and group the float factors of
 *          weight = S * q + M      (q signed bytes; S per 16 values for the per-16-scaled types)
 *   2. For every tile of up to 6 tokens, per group: broadcast each token's 4 activation bytes of
 *      step k (a load, no shuffle) and multiply-accumulate them with the two row vectors:
 *      exact int32 sums per (row, token), then in float, per row lane
 *          acc = fma(I, S * d_x, acc)        (and fma(I_hi, S_hi * d_x, acc) per-16 types)
 *          acc = fma(M, s_x, acc)             (only types with a min: Q4_1, Q5_1, Q4_K, Q5_K)
 *      where d_x is the token's activation scale of the group and s_x = d_x * sum(a).
 *
 * Every token's float steps are the same whatever the tile or the number of tokens in the call,
 * so a token's results do not depend on its batch. The integer sums are the same with AVX2
 * (|q| with the sign moved onto the activations, maddubs + madd) and VNNI (vpdpbusd on q + 128,
 * the sums starting from -128 * sum(a), which the caller's prepared sums hold), so both give
 * bit-identical results, and so does the scalar reference tf_gemm_q8a_ref. */

#ifndef TF_GQ_ONCE
#define TF_GQ_ONCE
#define GQ_ROWS 16            /* weight rows per panel: two vectors of 8 */
#define GQ_MAXT 6             /* tokens per register tile */
/* Types the panel kernel takes; halves: two scales per group (per 16 values); min: an M term. */
static inline int gq_supported(int type) {
    switch (type) {
    case TF_TYPE_Q4_0: case TF_TYPE_Q4_1: case TF_TYPE_Q5_0: case TF_TYPE_Q5_1: case TF_TYPE_Q8_0:
    case TF_TYPE_Q4_K: case TF_TYPE_Q5_K: case TF_TYPE_Q6_K:
    case TF_TYPE_Q3_K: case TF_TYPE_IQ2_XXS: case TF_TYPE_IQ2_XS: case TF_TYPE_IQ2_S: case TF_TYPE_IQ3_XXS:
    case TF_TYPE_IQ3_S: case TF_TYPE_IQ1_S: case TF_TYPE_IQ1_M: case TF_TYPE_IQ4_XS: case TF_TYPE_IQ4_NL:
    case TF_TYPE_MXFP4: case TF_TYPE_TQ1_0: case TF_TYPE_TQ2_0:
        return 1;
    default: return 0;   /* Q2_K's per-16 mins would need per-16 activation sums in float */
    }
}
static inline int gq_halves(int type) { return type == TF_TYPE_Q6_K || lb_scale_class(type) == LB_PER16; }
static inline int gq_has_min(int type) {
    return type == TF_TYPE_Q4_1 || type == TF_TYPE_Q5_1 || type == TF_TYPE_Q4_K || type == TF_TYPE_Q5_K;
}
/* values per decoded block and the block's bytes */
static inline int gq_block_values(int type) { return tf_per256(type) ? 256 : 32; }
static inline int gq_block_bytes(int type) {
    if (lb_bytes(type)) return lb_bytes(type);
    return type == TF_TYPE_Q4_K ? 144 : type == TF_TYPE_Q5_K ? 176 : type == TF_TYPE_Q6_K ? 210 : bytes32(type);
}
/* One thread's panel, kept between calls (grown when a longer row comes). */
static _Thread_local uint8_t *gq_buf;
static _Thread_local size_t gq_cap;
static uint8_t *gq_scratch(size_t bytes) {
    if (bytes > gq_cap) {
        free(gq_buf);
        gq_buf = aligned_alloc(64, (bytes + 63) / 64 * 64);
        gq_cap = gq_buf ? bytes : 0;
    }
    return gq_buf;
}
/* Panel layout for G groups: W[g][k][16 rows][4 bytes] (512 B per group), then S[g][2][16] floats
 * (the scale of values 0..15 and of 16..31; equal for per-32 types), then M[g][16]. */
static inline size_t gq_panel_bytes(int G) { return (size_t)G * (512 + 2 * 16 * 4 + 16 * 4); }
#endif

/* Where a decoded row's factors go: group j's scales at S[32 j] (values 0..15) and S[32 j + 16]
 * (16..31, written for the per-16 types only), its min at M[16 j] (types with one only). */
typedef struct { float *S; float *M; } KFN(gq_block);
#define GQ_S(j, s0, s1) do { B->S[32 * (j)] = (s0); if (halves) B->S[32 * (j) + 16] = (s1); } while (0)
#define GQ_M(j, m) do { if (hasmin) B->M[16 * (j)] = (m); } while (0)

/* Decodes up to 256 values at b into q[0..ng) (ng returned): one superblock, or `cnt` (<= 8)
 * consecutive 32-blocks of a 32-block type. */
TF_INLINE int KFN(gq_decode)(int type, const uint8_t *b, int cnt, int8_t (*q)[32], const KFN(gq_block) *B) {
    const int halves = gq_halves(type), hasmin = gq_has_min(type);
    tf_group g[8];
#define GQ_Q(j, v) _mm256_store_si256((__m256i *)q[j], v)
    switch (type) {
    case TF_TYPE_Q4_0: case TF_TYPE_Q4_1: case TF_TYPE_Q5_0: case TF_TYPE_Q5_1: case TF_TYPE_Q8_0: {
        const int bb = gq_block_bytes(type);
        for (int j = 0; j < cnt; j++, b += bb) {
            float d = h2f(b), m = 0;
            __m256i v;
            switch (type) {
            case TF_TYPE_Q4_0: v = _mm256_sub_epi8(unpack_nibbles(b + 2), _mm256_set1_epi8(8)); break;
            case TF_TYPE_Q4_1: v = unpack_nibbles(b + 4); m = h2f(b + 2); break;
            case TF_TYPE_Q5_0: v = _mm256_sub_epi8(HIBITS(unpack_nibbles(b + 6), b + 2), _mm256_set1_epi8(16)); break;
            case TF_TYPE_Q5_1: v = HIBITS(unpack_nibbles(b + 8), b + 4); m = h2f(b + 2); break;
            default: v = ld256(b + 2); break;
            }
            GQ_Q(j, v); GQ_S(j, d, d); GQ_M(j, m);
        }
        return cnt;
    }
    case TF_TYPE_Q4_K: case TF_TYPE_Q5_K:
        if (type == TF_TYPE_Q4_K) KFN(dec_q4_K)(b, g); else KFN(dec_q5_K)(b, g);
        for (int j = 0; j < 8; j++) { GQ_Q(j, g[j].q); GQ_S(j, g[j].scale, g[j].scale); GQ_M(j, g[j].offset); }
        return 8;
    case TF_TYPE_Q6_K:
        KFN(dec_q6_K)(b, g);
        for (int j = 0; j < 8; j++) {
            GQ_Q(j, _mm256_sub_epi8(g[j].q, _mm256_set1_epi8(32)));
            GQ_S(j, g[j].scale * (float)g[j].sc16[0], g[j].scale * (float)g[j].sc16[1]);
        }
        return 8;
    default: {
        KFN(lb_t) L;
        int cls = lb_scale_class(type), ng = lb_is32(type) ? cnt : 8;
        KFN(lb_decode)(type, b, cnt, &L);
        _Alignas(32) float D[8];
        _Alignas(32) int16_t sc16[16];
        _Alignas(32) int32_t sc32[8];
        _mm256_store_ps(D, L.D);
        if (cls == LB_PER16) _mm256_store_si256((__m256i *)sc16, L.sc);
        if (cls == LB_PER32) _mm256_store_si256((__m256i *)sc32, L.sc);
        for (int j = 0; j < ng; j++) {
            GQ_Q(j, L.q[j]);
            float s0 = D[j], s1 = D[j];
            if (cls == LB_PER16) { s0 = D[j] * (float)sc16[2 * j]; s1 = D[j] * (float)sc16[2 * j + 1]; }
            if (cls == LB_PER32) s0 = s1 = D[j] * (float)sc32[j];
            GQ_S(j, s0, s1);
        }
        return ng;
    }
    }
#undef GQ_Q
}
#undef GQ_S
#undef GQ_M

/* 8 vectors of 8 dwords (rows) -> 8 vectors of 8 dwords (steps): out[k] lane r = in[r] lane k. */
TF_INLINE void KFN(gq_transpose8)(const __m256i in[8], __m256i out[8]) {
    __m256i t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_epi32(in[2 * i], in[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_epi32(in[2 * i], in[2 * i + 1]);
    }
    for (int h = 0; h < 2; h++) {   /* rows 4h .. 4h+3 */
        u[4 * h + 0] = _mm256_unpacklo_epi64(t[4 * h], t[4 * h + 2]);
        u[4 * h + 1] = _mm256_unpackhi_epi64(t[4 * h], t[4 * h + 2]);
        u[4 * h + 2] = _mm256_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
        u[4 * h + 3] = _mm256_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
    }
    for (int k = 0; k < 4; k++) {
        out[k] = _mm256_permute2x128_si256(u[k], u[4 + k], 0x20);
        out[k + 4] = _mm256_permute2x128_si256(u[k], u[4 + k], 0x31);
    }
}

/* Decodes rows [0, nr) (nr <= 16) of a tile into the panel; missing rows are zero. VNNI stores
 * q + 128 (unsigned), AVX2 q itself. */
TF_INLINE void KFN(gq_build_t)(const int type, int n, int nr, const uint8_t *w, size_t stride, uint8_t *panel) {
    const int G = n / 32, bv = gq_block_values(type), bb = gq_block_bytes(type);
    uint8_t *W = panel;
    float *S = (float *)(panel + (size_t)G * 512), *M = S + (size_t)G * 32;
    _Alignas(32) int8_t q[GQ_ROWS][8][32];
    /* 256 values at a time: one superblock, or eight 32-blocks */
    for (int g0 = 0; g0 < G; g0 += 8) {
        const int cnt = bv == 256 ? 8 : (G - g0 < 8 ? G - g0 : 8);
        const uint8_t *src = w + (size_t)(g0 * 32 / bv) * bb;
        for (int r = 0; r < GQ_ROWS; r++) {
            if (r < nr) {
                const KFN(gq_block) B = { S + (size_t)g0 * 32 + r, M + (size_t)g0 * 16 + r };
                KFN(gq_decode)(type, src + (size_t)r * stride, cnt, q[r], &B);
            } else {
                for (int j = 0; j < cnt; j++) {
                    _mm256_store_si256((__m256i *)q[r][j], _mm256_setzero_si256());
                    S[(g0 + j) * 32 + r] = S[(g0 + j) * 32 + 16 + r] = M[(g0 + j) * 16 + r] = 0;
                }
            }
        }
        for (int j = 0; j < cnt; j++) {
            uint8_t *Wg = W + (size_t)(g0 + j) * 512;
            for (int h = 0; h < 2; h++) {
                __m256i in[8], out[8];
                for (int r = 0; r < 8; r++) in[r] = _mm256_load_si256((const __m256i *)q[8 * h + r][j]);
                KFN(gq_transpose8)(in, out);
                for (int k = 0; k < 8; k++) {
                    __m256i v = K_VNNI ? _mm256_xor_si256(out[k], _mm256_set1_epi8((char)0x80)) : out[k];
                    _mm256_store_si256((__m256i *)(Wg + 64 * k + 32 * h), v);
                }
            }
        }
    }
}

/* One copy of the build loop per type, so that its decoder's branches fold away. */
static __attribute__((noinline)) void KFN(gq_build)(int type, int n, int nr, const uint8_t *w, size_t stride, uint8_t *panel) {
#define GQ_BUILD(T) case T: KFN(gq_build_t)(T, n, nr, w, stride, panel); break;
    switch (type) {
    GQ_BUILD(TF_TYPE_Q4_0) GQ_BUILD(TF_TYPE_Q4_1) GQ_BUILD(TF_TYPE_Q5_0) GQ_BUILD(TF_TYPE_Q5_1) GQ_BUILD(TF_TYPE_Q8_0)
    GQ_BUILD(TF_TYPE_Q4_K) GQ_BUILD(TF_TYPE_Q5_K) GQ_BUILD(TF_TYPE_Q6_K) GQ_BUILD(TF_TYPE_Q3_K) GQ_BUILD(TF_TYPE_IQ2_XXS)
    GQ_BUILD(TF_TYPE_IQ2_XS) GQ_BUILD(TF_TYPE_IQ2_S) GQ_BUILD(TF_TYPE_IQ3_XXS) GQ_BUILD(TF_TYPE_IQ3_S) GQ_BUILD(TF_TYPE_IQ1_S)
    GQ_BUILD(TF_TYPE_IQ1_M) GQ_BUILD(TF_TYPE_IQ4_XS) GQ_BUILD(TF_TYPE_IQ4_NL) GQ_BUILD(TF_TYPE_MXFP4) GQ_BUILD(TF_TYPE_TQ1_0)
    GQ_BUILD(TF_TYPE_TQ2_0)
    default: break;
    }
#undef GQ_BUILD
}

/* a_t: the token's 4 activation bytes of step k, in every lane */
#define GQ_A(t, g, k) _mm256_set1_epi32(*(const int32_t *)(x[t][g].qs + 4 * (k)))
#if K_VNNI
#define GQ_MAC(acc, wv, awv, a) acc = _mm256_dpbusd_epi32(acc, wv, a)
#else
#define GQ_MAC(acc, wv, awv, a) acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(awv, _mm256_sign_epi8(a, wv)), ones))
#endif

/* NT tokens (constant after inlining) against the panel: out[t][0..15] (rows in lanes). */
TF_INLINE void KFN(gq_tile)(const int NT, int halves, int hasmin, int G, const uint8_t *panel,
                           const tf_block_q8a *const *x, const int32_t *const *z, float (*res)[GQ_ROWS]) {
    const uint8_t *W = panel;
    const float *S = (const float *)(panel + (size_t)G * 512), *M = S + (size_t)G * 32;
    const __m256i ones = _mm256_set1_epi16(1);
    (void)ones; (void)z;
    __m256 f[GQ_MAXT][2];
    for (int t = 0; t < NT; t++) f[t][0] = f[t][1] = _mm256_setzero_ps();
    for (int g = 0; g < G; g++) {
        const uint8_t *Wg = W + (size_t)g * 512;
        __m256i ia[GQ_MAXT][2], ib[GQ_MAXT][2];
        for (int t = 0; t < NT; t++) {
#if K_VNNI
            /* sums start at -128 * sum(a) (the whole group, or each half) for the + 128 in the weights */
            if (halves) {
                ia[t][0] = ia[t][1] = _mm256_set1_epi32(z[t][3 * g + 1]);
                ib[t][0] = ib[t][1] = _mm256_set1_epi32(z[t][3 * g + 2]);
            } else {
                ia[t][0] = ia[t][1] = _mm256_set1_epi32(z[t][3 * g]);
            }
#else
            ia[t][0] = ia[t][1] = _mm256_setzero_si256();
            ib[t][0] = ib[t][1] = _mm256_setzero_si256();
#endif
        }
        for (int k = 0; k < 8; k++) {
            __m256i w0 = _mm256_load_si256((const __m256i *)(Wg + 64 * k)), w1 = _mm256_load_si256((const __m256i *)(Wg + 64 * k + 32));
#if K_VNNI
            __m256i aw0 = w0, aw1 = w1;
#else
            __m256i aw0 = _mm256_abs_epi8(w0), aw1 = _mm256_abs_epi8(w1);
#endif
            (void)aw0; (void)aw1;
            for (int t = 0; t < NT; t++) {
                __m256i a = GQ_A(t, g, k);
                if (halves && k >= 4) { GQ_MAC(ib[t][0], w0, aw0, a); GQ_MAC(ib[t][1], w1, aw1, a); }
                else { GQ_MAC(ia[t][0], w0, aw0, a); GQ_MAC(ia[t][1], w1, aw1, a); }
            }
        }
        const float *Sg = S + (size_t)g * 32;
        __m256 s0[2] = { _mm256_load_ps(Sg), _mm256_load_ps(Sg + 8) };
        for (int t = 0; t < NT; t++) {
            __m256 dx = _mm256_broadcast_ss(&x[t][g].d);
            for (int v = 0; v < 2; v++) f[t][v] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia[t][v]), _mm256_mul_ps(s0[v], dx), f[t][v]);
        }
        if (halves) {
            __m256 s1[2] = { _mm256_load_ps(Sg + 16), _mm256_load_ps(Sg + 24) };
            for (int t = 0; t < NT; t++) {
                __m256 dx = _mm256_broadcast_ss(&x[t][g].d);
                for (int v = 0; v < 2; v++) f[t][v] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ib[t][v]), _mm256_mul_ps(s1[v], dx), f[t][v]);
            }
        }
        if (hasmin) {
            __m256 m[2] = { _mm256_load_ps(M + (size_t)g * 16), _mm256_load_ps(M + (size_t)g * 16 + 8) };
            for (int t = 0; t < NT; t++) {
                __m256 sx = _mm256_broadcast_ss(&x[t][g].s);
                for (int v = 0; v < 2; v++) f[t][v] = _mm256_fmadd_ps(m[v], sx, f[t][v]);
            }
        }
    }
    for (int t = 0; t < NT; t++) { _mm256_storeu_ps(res[t], f[t][0]); _mm256_storeu_ps(res[t] + 8, f[t][1]); }
}
#undef GQ_A
#undef GQ_MAC

/* The three kernel shapes as separate functions (constant NT, halves, min), one per tile size. */
#define GQ_SHAPE(NAME, H, MN)                                                                       \
    static __attribute__((noinline)) void KFN(NAME)(int nt, int G, const uint8_t *panel, const tf_block_q8a *const *x, \
                                                   const int32_t *const *z, float (*res)[GQ_ROWS]) { \
        switch (nt) {                                                                               \
        case 1: KFN(gq_tile)(1, H, MN, G, panel, x, z, res); break;                                 \
        case 2: KFN(gq_tile)(2, H, MN, G, panel, x, z, res); break;                                 \
        case 3: KFN(gq_tile)(3, H, MN, G, panel, x, z, res); break;                                 \
        case 4: KFN(gq_tile)(4, H, MN, G, panel, x, z, res); break;                                 \
        case 5: KFN(gq_tile)(5, H, MN, G, panel, x, z, res); break;                                 \
        default: KFN(gq_tile)(6, H, MN, G, panel, x, z, res); break;                                \
        }                                                                                           \
    }
GQ_SHAPE(gq_plain, 0, 0)
GQ_SHAPE(gq_halves, 1, 0)
GQ_SHAPE(gq_min, 0, 1)
#undef GQ_SHAPE

static int KFN(gemm_q8a)(int type, int n, int nrows, const uint8_t *w, size_t stride, const void *vx, size_t xstride,
                         const int32_t *zsums, int ntok, float *out, size_t ostride) {
    if (!gq_supported(type) || n % gq_block_values(type) != 0 || n <= 0) return -1;
    const int G = n / 32, halves = gq_halves(type), hasmin = gq_has_min(type);
    uint8_t *panel = gq_scratch(gq_panel_bytes(G));
    if (!panel) return -1;
    for (int r0 = 0; r0 < nrows; r0 += GQ_ROWS) {
        int nr = nrows - r0 < GQ_ROWS ? nrows - r0 : GQ_ROWS;
        KFN(gq_build)(type, n, nr, w + (size_t)r0 * stride, stride, panel);
        /* the next 16 rows, also past the call's last row (the next call usually continues the
         * matrix; a prefetch never faults): while the tokens pass this panel they arrive, so the
         * next build does not wait on memory (it did: a fifth of a prompt's time) */
        const size_t rbytes = (size_t)(n / gq_block_values(type)) * (size_t)gq_block_bytes(type);
        for (int r = 0; r < GQ_ROWS; r++) {
            const char *p = (const char *)w + (size_t)(r0 + GQ_ROWS + r) * stride;
            for (size_t c = 0; c < rbytes; c += 64) _mm_prefetch(p + c, _MM_HINT_T0);
        }
        for (int t0 = 0; t0 < ntok; t0 += GQ_MAXT) {
            int nt = ntok - t0 < GQ_MAXT ? ntok - t0 : GQ_MAXT;
            const tf_block_q8a *x[GQ_MAXT];
            const int32_t *z[GQ_MAXT];
            for (int t = 0; t < nt; t++) {
                x[t] = (const tf_block_q8a *)((const uint8_t *)vx + (size_t)(t0 + t) * xstride);
                z[t] = zsums + (size_t)(t0 + t) * 3 * G;
            }
            float res[GQ_MAXT][GQ_ROWS];
            if (halves) KFN(gq_halves)(nt, G, panel, x, z, res);
            else if (hasmin) KFN(gq_min)(nt, G, panel, x, z, res);
            else KFN(gq_plain)(nt, G, panel, x, z, res);
            for (int t = 0; t < nt; t++) memcpy(out + (size_t)(t0 + t) * ostride + r0, res[t], sizeof(float) * (size_t)nr);
        }
    }
    return 0;
}

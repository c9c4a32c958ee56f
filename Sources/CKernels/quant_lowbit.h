/* Low-bit row and group decoders and the row kernel, instantiated by quant_dot.c for AVX2 and for
 * AVX-512 VNNI next to quant_kernels.h (same macros: KFN, K_VNNI, DOT_US, plus SIGNS below).
 * Types: Q2_K, Q3_K, IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_XS, IQ4_NL, MXFP4,
 * TQ1_0, TQ2_0. Not a public header.
 *
 * One scheme for all of them: 256 values (a superblock, or eight 32-blocks for IQ4_NL/MXFP4)
 * are decoded into eight groups of 32 signed bytes q (|q| <= 127), integer scales sc (one per
 * 16 or per 32 values, or none), a float factor D per group, and for Q2_K integer mins:
 *     weight = D_j * sc * q  (- dmin * mn)
 * The codebook types become integers by scaling: IQ2's (0.5 + s) / 4 is (2s + 1) / 8, IQ1's
 * grid + 1/8 offset is (8 g +- 1) / 8, so the eighths move into D. Against Q8A activations
 * (x = d_x * a per 32 values), group j contributes the exact integer
 *     S_j = sum over its halves h of sc_h * sum(q * a)     (M_j = sum mn_h * sum(a) for Q2_K)
 * and the float steps are, per lane j of one vector: acc_j = fma(S_j, D_j * d_x, acc_j)
 * (then fma(M_j, -dmin * d_x, acc_j)), summed at the end as hsum_ps does. The integer sums are
 * the same whatever the instruction set (maddubs pairs stay below the int16 limit: 2*127*127),
 * so AVX2, VNNI and the scalar reference (quant_lowbit_ref.c) give bit-identical results.
 *
 * SIGNS(v, bits)  negates byte j of v where bit j of the 32-bit `bits` is set. */

#ifndef TF_LOWBIT_ONCE
#define TF_LOWBIT_ONCE
static inline long long lb_g8(const void *row) { long long v; memcpy(&v, row, 8); return v; }
static inline int lb_g4(const uint8_t *row) { int v; memcpy(&v, row, 4); return v; }
/* Four 8-value grid rows as one vector (rows a, b, c, d in order). */
#define LB_GRID8(G, a, b, c, d) _mm256_set_epi64x(lb_g8(G[d]), lb_g8(G[c]), lb_g8(G[b]), lb_g8(G[a]))
/* Eight 4-value IQ3 grid rows, indices idx[0..7]. */
static inline __m256i lb_grid4(const uint8_t (*G)[4], const int *idx) {
    return _mm256_setr_epi32(lb_g4(G[idx[0]]), lb_g4(G[idx[1]]), lb_g4(G[idx[2]]), lb_g4(G[idx[3]]),
                             lb_g4(G[idx[4]]), lb_g4(G[idx[5]]), lb_g4(G[idx[6]]), lb_g4(G[idx[7]]));
}
/* 8 bytes of two 4-bit scales each (low nibble first) as 16 int16 2s + 1 (IQ2_XS, IQ2_S). */
static inline __m256i lb_nibble_scales16(const uint8_t *p) {
    __m128i v = _mm_loadl_epi64((const __m128i *)p), m = _mm_set1_epi8(0x0F);
    __m256i s = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(_mm_and_si128(v, m), _mm_and_si128(_mm_srli_epi16(v, 4), m)));
    return _mm256_add_epi16(_mm256_slli_epi16(s, 1), _mm256_set1_epi16(1));
}
/* The 32 sign bytes (0xFF: negative) of four 7-bit ksigns indices in bits 0..27 of aux, computed
 * instead of looked up (IQ2_XXS, IQ3_XXS: measured 5-10% faster than four table loads there; IQ2_XS,
 * whose indices sit one per u16, is faster with the table): bit i < 7 of entry k is bit 7k + i of aux, bit 7 makes the number of
 * negatives even (the ksigns rule), here the parity of the other seven counted by psadbw. */
static inline __m256i lb_ksigns_mask(uint32_t aux) {
    const __m256i byte_of = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, -128, 0, 1, 1, 1, 1, 1, 1, -128, 1, 1, 2, 2, 2, 2, 2, -128, 2, 2, 2, 3, 3, 3, 3, -128);
    const __m256i bit_of = _mm256_setr_epi8((char)1, (char)2, (char)4, (char)8, (char)16, (char)32, (char)64, (char)0, (char)128, (char)1, (char)2, (char)4, (char)8, (char)16, (char)32, (char)0, (char)64, (char)128, (char)1, (char)2, (char)4, (char)8, (char)16, (char)0, (char)32, (char)64, (char)128, (char)1, (char)2, (char)4, (char)8, (char)0);
    const __m256i low7 = _mm256_set1_epi64x(0x00FFFFFFFFFFFFFFLL), one = _mm256_set1_epi8(1);
    __m256i m = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)aux), byte_of), bit_of), bit_of), low7);
    __m256i odd = _mm256_and_si256(_mm256_sad_epu8(_mm256_and_si256(m, one), _mm256_setzero_si256()), _mm256_set1_epi64x(1));
    return _mm256_or_si256(m, _mm256_andnot_si256(low7, _mm256_sub_epi64(_mm256_setzero_si256(), odd)));
}
/* v negated where m is 0xFF */
static inline __m256i lb_negate(__m256i v, __m256i m) { return _mm256_sub_epi8(_mm256_xor_si256(v, m), m); }
/* Per byte: trit (digit) of b selected by the multiplier p (b * p mod 256, times 3, >> 8), - 1. */
static inline __m256i lb_trits(__m256i b, __m256i p) {
    const __m256i lo8 = _mm256_set1_epi16(0x00FF), three = _mm256_set1_epi16(3);
    __m256i lo = _mm256_and_si256(_mm256_mullo_epi16(_mm256_and_si256(b, lo8), _mm256_and_si256(p, lo8)), lo8);
    __m256i hi = _mm256_and_si256(_mm256_mullo_epi16(_mm256_srli_epi16(b, 8), _mm256_srli_epi16(p, 8)), lo8);
    lo = _mm256_srli_epi16(_mm256_mullo_epi16(lo, three), 8);
    hi = _mm256_srli_epi16(_mm256_mullo_epi16(hi, three), 8);
    return _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 8)), _mm256_set1_epi8(1));
}
/* The int32 totals of eight vectors: lane j = sum of the lanes of v[j] (exact). */
static inline __m256i lb_tree(const __m256i v[8]) {
    __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}
/* Per-16 scales of group j (scale 2j in the low lane, 2j+1 in the high) from 16 int16. */
static inline __m256i lb_pick16(__m256i sc, int j) {
    __m256i h = j < 4 ? _mm256_permute2x128_si256(sc, sc, 0x00) : _mm256_permute2x128_si256(sc, sc, 0x11);
    return _mm256_shuffle_epi8(h, _mm256_load_si256((const __m256i *)k6_sc_pick[j & 3]));
}
#endif

/* A decoded superblock. */
typedef struct {
    __m256i q[8];   /* eight groups of 32 signed values */
    __m256i sc;     /* LB_PER16: 16 int16 scales; LB_PER32: 8 int32; LB_UNIT: unused */
    __m256i mn;     /* Q2_K: 16 int16 mins */
    __m256 D;       /* float factor of each group */
    float dmin;     /* Q2_K */
} KFN(lb_t);

/* ------------------------------------------------------------------ decoders, one per type */

TF_INLINE void KFN(lb_iq2_xxs)(const uint8_t *b, KFN(lb_t) *L) {
    _Alignas(32) int32_t sc[8];
    L->D = _mm256_set1_ps(h2f(b) * 0.125f);
    for (int j = 0; j < 8; j++) {
        const uint8_t *q = b + 2 + 8 * j;
        uint32_t aux = rd32(q + 4);
        L->q[j] = lb_negate(LB_GRID8(tf_iq2xxs_grid, q[0], q[1], q[2], q[3]), lb_ksigns_mask(aux));
        sc[j] = 2 * (int)(aux >> 28) + 1;
    }
    L->sc = _mm256_load_si256((const __m256i *)sc);
}
TF_INLINE void KFN(lb_iq2_xs)(const uint8_t *b, KFN(lb_t) *L) {
    L->D = _mm256_set1_ps(h2f(b) * 0.125f);
    for (int j = 0; j < 8; j++) {
        uint16_t v[4];
        for (int k = 0; k < 4; k++) v[k] = rd16(b + 2 + 8 * j + 2 * k);
        uint32_t s = tf_iq_ksigns[v[0] >> 9] | (uint32_t)tf_iq_ksigns[v[1] >> 9] << 8 |
                     (uint32_t)tf_iq_ksigns[v[2] >> 9] << 16 | (uint32_t)tf_iq_ksigns[v[3] >> 9] << 24;
        L->q[j] = SIGNS(LB_GRID8(tf_iq2xs_grid, v[0] & 511, v[1] & 511, v[2] & 511, v[3] & 511), s);
    }
    L->sc = lb_nibble_scales16(b + 66);
}
TF_INLINE void KFN(lb_iq2_s)(const uint8_t *b, KFN(lb_t) *L) {
    const uint8_t *qs = b + 2, *sg = b + 34, *qh = b + 66;
    L->D = _mm256_set1_ps(h2f(b) * 0.125f);
    for (int j = 0; j < 8; j++) {
        int i[4];
        for (int k = 0; k < 4; k++) i[k] = qs[4 * j + k] | ((qh[j] >> (2 * k)) & 3) << 8;
        L->q[j] = SIGNS(LB_GRID8(tf_iq2s_grid, i[0], i[1], i[2], i[3]), rd32(sg + 4 * j));
    }
    L->sc = lb_nibble_scales16(b + 74);
}
TF_INLINE void KFN(lb_iq3_xxs)(const uint8_t *b, KFN(lb_t) *L) {
    _Alignas(32) int32_t sc[8];
    L->D = _mm256_set1_ps(h2f(b) * 0.25f);
    for (int j = 0; j < 8; j++) {
        int i[8];
        for (int k = 0; k < 8; k++) i[k] = b[2 + 8 * j + k];
        uint32_t aux = rd32(b + 66 + 4 * j);
        L->q[j] = lb_negate(lb_grid4(tf_iq3xxs_grid, i), lb_ksigns_mask(aux));
        sc[j] = 2 * (int)(aux >> 28) + 1;
    }
    L->sc = _mm256_load_si256((const __m256i *)sc);
}
TF_INLINE void KFN(lb_iq3_s)(const uint8_t *b, KFN(lb_t) *L) {
    const uint8_t *qs = b + 2, *qh = b + 66, *sg = b + 74, *scb = b + 106;
    _Alignas(32) int32_t sc[8];
    L->D = _mm256_set1_ps(h2f(b));
    for (int j = 0; j < 8; j++) {
        int i[8];
        for (int k = 0; k < 8; k++) i[k] = qs[8 * j + k] | ((qh[j] >> k) & 1) << 8;
        L->q[j] = SIGNS(lb_grid4(tf_iq3s_grid, i), rd32(sg + 4 * j));
        sc[j] = 1 + 2 * ((scb[j / 2] >> (4 * (j & 1))) & 0xF);
    }
    L->sc = _mm256_load_si256((const __m256i *)sc);
}
/* IQ1: 8 * grid (-1, 0, 1) + delta (+-1), delta per 8 values as bytes */
TF_INLINE __m256i KFN(lb_iq1_q)(__m256i grid, __m256i delta) {
    return _mm256_add_epi8(_mm256_sign_epi8(_mm256_set1_epi8(8), grid), delta);
}
/* The 32 grid indices of an IQ1_S superblock (b: its first byte): index k of group j is
 * qs[4j + k] | ((qh_j >> 3k) & 7) << 8, eight at a time (groups 2m, 2m + 1) in SIMD. */
TF_INLINE void KFN(lb_iq1s_index)(const uint8_t *b, int32_t idx[32]) {
    const __m256i m7 = _mm256_set1_epi32(7), sh = _mm256_setr_epi32(0, 3, 6, 9, 0, 3, 6, 9);
    const uint8_t *qs = b + 2, *qh = b + 34;
    for (int m = 0; m < 4; m++) {
        int h0 = rd16(qh + 4 * m), h1 = rd16(qh + 4 * m + 2);
        __m256i h = _mm256_setr_epi32(h0, h0, h0, h0, h1, h1, h1, h1);
        __m256i hi = _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(h, sh), m7), 8);
        __m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8 * m)));
        _mm256_store_si256((__m256i *)(idx + 8 * m), _mm256_or_si256(lo, hi));
    }
}
TF_INLINE void KFN(lb_iq1_s)(const uint8_t *b, KFN(lb_t) *L) {
    _Alignas(32) int32_t sc[8], idx[32];
    L->D = _mm256_set1_ps(h2f(b) * 0.125f);
    KFN(lb_iq1s_index)(b, idx);
    for (int j = 0; j < 8; j++) {
        uint16_t h = rd16(b + 34 + 2 * j);
        __m256i g = LB_GRID8(tf_iq1s_grid, idx[4 * j], idx[4 * j + 1], idx[4 * j + 2], idx[4 * j + 3]);
        L->q[j] = KFN(lb_iq1_q)(g, _mm256_set1_epi8(h & 0x8000 ? -1 : 1));
        sc[j] = 2 * ((h >> 12) & 7) + 1;
    }
    L->sc = _mm256_load_si256((const __m256i *)sc);
}
TF_INLINE void KFN(lb_iq1_m)(const uint8_t *b, KFN(lb_t) *L) {
    const uint8_t *qs = b, *qh = b + 32, *scb = b + 48;
    /* delta sign of grid row k of a group: bit 3 (rows 0, 2) or 7 (rows 1, 3) of qh[2j + k/2] */
    const __m256i dbit = _mm256_setr_epi64x(0x0808080808080808LL, (long long)0x8080808080808080ULL,
                                            0x0808080808080808LL, (long long)0x8080808080808080ULL);
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    L->D = _mm256_set1_ps(lb_iq1m_d(scb) * 0.125f);
    for (int j = 0; j < 8; j++) {
        uint16_t h = rd16(qh + 2 * j);
        __m256i g = LB_GRID8(tf_iq1s_grid, qs[4 * j] | (h & 7) << 8, qs[4 * j + 1] | ((h >> 4) & 7) << 8,
                             qs[4 * j + 2] | ((h >> 8) & 7) << 8, qs[4 * j + 3] | ((h >> 12) & 7) << 8);
        __m256i neg = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi16((short)h), pick), dbit), dbit);
        L->q[j] = KFN(lb_iq1_q)(g, _mm256_or_si256(neg, _mm256_set1_epi8(1)));
    }
    /* 16 3-bit scales, four per u16 word: 2s + 1 */
    const __m256i sh = _mm256_setr_epi32(0, 3, 6, 9, 0, 3, 6, 9), m7 = _mm256_set1_epi32(7);
    __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(_mm256_setr_epi32(rd16(scb), rd16(scb), rd16(scb), rd16(scb),
                                                                      rd16(scb + 2), rd16(scb + 2), rd16(scb + 2), rd16(scb + 2)), sh), m7);
    __m256i hi = _mm256_and_si256(_mm256_srlv_epi32(_mm256_setr_epi32(rd16(scb + 4), rd16(scb + 4), rd16(scb + 4), rd16(scb + 4),
                                                                      rd16(scb + 6), rd16(scb + 6), rd16(scb + 6), rd16(scb + 6)), sh), m7);
    __m256i s16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8);   /* in-lane packs: back in order */
    L->sc = _mm256_add_epi16(_mm256_slli_epi16(s16, 1), _mm256_set1_epi16(1));
}
/* IQ4_NL / MXFP4: `cnt` (<= 8) consecutive 32-blocks; absent groups are zero. */
TF_INLINE void KFN(lb_nl32)(const uint8_t *b, int cnt, int mx, KFN(lb_t) *L) {
    const __m256i kv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(mx ? tf_mxfp4_values : tf_iq4nl_values)));
    _Alignas(32) float D[8] = { 0 };
    for (int j = 0; j < 8; j++) {
        if (j >= cnt) { L->q[j] = _mm256_setzero_si256(); continue; }
        const uint8_t *blk = b + j * (mx ? 17 : 18);
        D[j] = mx ? lb_e8m0_half(blk[0]) : h2f(blk);
        L->q[j] = _mm256_shuffle_epi8(kv, unpack_nibbles(blk + (mx ? 1 : 2)));
    }
    L->D = _mm256_load_ps(D);
}
TF_INLINE void KFN(lb_iq4_xs)(const uint8_t *b, KFN(lb_t) *L) {
    const __m256i kv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)tf_iq4nl_values));
    _Alignas(32) int32_t sc[8];
    uint16_t sh = rd16(b + 2);
    L->D = _mm256_set1_ps(h2f(b));
    for (int j = 0; j < 8; j++) {
        sc[j] = (((b[4 + j / 2] >> (4 * (j & 1))) & 0xF) | ((sh >> (2 * j)) & 3) << 4) - 32;
        L->q[j] = _mm256_shuffle_epi8(kv, unpack_nibbles(b + 8 + 16 * j));
    }
    L->sc = _mm256_load_si256((const __m256i *)sc);
}
/* TQ1_0: groups 0-4 are trit k of qs[0..31]; 5, 6 trits (0,1) and (2,3) of qs[32..47]; 7 trit 4
 * of qs[32..47] then the four trits of qh[0..3] (4 values each). */
TF_INLINE void KFN(lb_tq1_0)(const uint8_t *b, KFN(lb_t) *L) {
    __m256i q0 = ld256(b), q1 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(b + 32)));
    L->D = _mm256_set1_ps(h2f(b + 52));
    const int p3[5] = { 1, 3, 9, 27, 81 };
    for (int k = 0; k < 5; k++) L->q[k] = lb_trits(q0, _mm256_set1_epi8((char)p3[k]));
    L->q[5] = lb_trits(q1, _mm256_setr_m128i(_mm_set1_epi8(1), _mm_set1_epi8(3)));
    L->q[6] = lb_trits(q1, _mm256_setr_m128i(_mm_set1_epi8(9), _mm_set1_epi8(27)));
    __m256i last = _mm256_setr_m128i(_mm_loadu_si128((const __m128i *)(b + 32)), _mm_set1_epi32((int)rd32(b + 48)));
    L->q[7] = lb_trits(last, _mm256_setr_m128i(_mm_set1_epi8(81), _mm_setr_epi32(0x01010101, 0x03030303, 0x09090909, 0x1B1B1B1B)));
}
TF_INLINE void KFN(lb_tq2_0)(const uint8_t *b, KFN(lb_t) *L) {
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    L->D = _mm256_set1_ps(h2f(b + 64));
    for (int j = 0; j < 8; j++)
        L->q[j] = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(ld256(b + 32 * (j / 4)), 2 * (j % 4)), m3), one);
}
/* Q2_K: value 128h + 32m + l is bits 2m of qs[32h + l]; scales: low nibble scale, high min. */
TF_INLINE void KFN(lb_q2_K)(const uint8_t *b, KFN(lb_t) *L) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m128i s = _mm_loadu_si128((const __m128i *)b), m4 = _mm_set1_epi8(0x0F);
    L->sc = _mm256_cvtepu8_epi16(_mm_and_si128(s, m4));
    L->mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), m4));
    L->D = _mm256_set1_ps(h2f(b + 80));
    L->dmin = h2f(b + 82);
    for (int j = 0; j < 8; j++) L->q[j] = _mm256_and_si256(_mm256_srli_epi16(ld256(b + 16 + 32 * (j / 4)), 2 * (j % 4)), m3);
}
/* Q3_K: low 2 bits as Q2_K, the high bit of value 128h + 32m + l in bit 4h + m of hmask[l]
 * (set: q = low, clear: q = low - 4); 16 6-bit scales - 32. */
TF_INLINE void KFN(lb_q3_K)(const uint8_t *b, KFN(lb_t) *L) {
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    uint32_t a0 = rd32(b + 96), a1 = rd32(b + 100), a2 = rd32(b + 104);
    const uint32_t k4 = 0x0F0F0F0F, k2 = 0x03030303;
    __m128i s8 = _mm_setr_epi32((int)((a0 & k4) | (a2 & k2) << 4), (int)((a1 & k4) | ((a2 >> 2) & k2) << 4),
                                (int)(((a0 >> 4) & k4) | ((a2 >> 4) & k2) << 4), (int)(((a1 >> 4) & k4) | ((a2 >> 6) & k2) << 4));
    L->sc = _mm256_sub_epi16(_mm256_cvtepu8_epi16(s8), _mm256_set1_epi16(32));
    L->D = _mm256_set1_ps(h2f(b + 108));
    __m256i hm = ld256(b);
    for (int j = 0; j < 8; j++) {
        __m256i lo = _mm256_and_si256(_mm256_srli_epi16(ld256(b + 32 + 32 * (j / 4)), 2 * (j % 4)), m3);
        __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, j), one);
        L->q[j] = _mm256_sub_epi8(lo, _mm256_slli_epi16(_mm256_xor_si256(hb, one), 2));
    }
}

/* The superblock at w (for IQ4_NL/MXFP4: `cnt` blocks from w). */
TF_INLINE void KFN(lb_decode)(int type, const uint8_t *w, int cnt, KFN(lb_t) *L) {
    switch (type) {
    case TF_TYPE_Q2_K: KFN(lb_q2_K)(w, L); break;
    case TF_TYPE_Q3_K: KFN(lb_q3_K)(w, L); break;
    case TF_TYPE_IQ2_XXS: KFN(lb_iq2_xxs)(w, L); break;
    case TF_TYPE_IQ2_XS: KFN(lb_iq2_xs)(w, L); break;
    case TF_TYPE_IQ2_S: KFN(lb_iq2_s)(w, L); break;
    case TF_TYPE_IQ3_XXS: KFN(lb_iq3_xxs)(w, L); break;
    case TF_TYPE_IQ3_S: KFN(lb_iq3_s)(w, L); break;
    case TF_TYPE_IQ1_S: KFN(lb_iq1_s)(w, L); break;
    case TF_TYPE_IQ1_M: KFN(lb_iq1_m)(w, L); break;
    case TF_TYPE_IQ4_XS: KFN(lb_iq4_xs)(w, L); break;
    case TF_TYPE_IQ4_NL: KFN(lb_nl32)(w, cnt, 0, L); break;
    case TF_TYPE_MXFP4: KFN(lb_nl32)(w, cnt, 1, L); break;
    case TF_TYPE_TQ1_0: KFN(lb_tq1_0)(w, L); break;
    default: KFN(lb_tq2_0)(w, L); break;
    }
}

/* ------------------------------------------------------------------ row kernel */

/* IQ1_S rows, the same sums by a shorter road: the grid's -1/0/1 taken as u = g + 1 (0..2), so a
 * group's exact sum  S_j = sum (8 g + delta_j) a = 8 sum u a + (delta_j - 8) sum a  needs no
 * magnitude or sign step per group (sum a per 32 values comes from the activation side record),
 * and the 32 grid indices of a superblock are computed in SIMD instead of one by one. The
 * integers are those of the generic loop, so the results are bit-identical to it. */
TF_INLINE void KFN(dot_iq1s_n)(int nt, int n, const uint8_t *w, const tf_block_q8a *const *xs, const tf_side *const *sides,
                               float *out) {
    const __m256i one8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1), m7 = _mm256_set1_epi32(7);
    __m256 acc[TF_NT];
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    for (int i = 0; i < n / 256; i++, w += 50) {
        const uint8_t *qh = w + 34;
        _Alignas(32) int32_t idx[32];
        KFN(lb_iq1s_index)(w, idx);
        __m256i h32 = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)qh));
        __m256i sc = _mm256_add_epi32(_mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h32, 12), m7), 1), _mm256_set1_epi32(1));
        __m256i c = _mm256_sub_epi32(_mm256_set1_epi32(-7), _mm256_slli_epi32(_mm256_srli_epi32(h32, 15), 1));   /* delta - 8 */
        __m256i u[8];
        for (int j = 0; j < 8; j++)
            u[j] = _mm256_add_epi8(LB_GRID8(tf_iq1s_grid, idx[4 * j], idx[4 * j + 1], idx[4 * j + 2], idx[4 * j + 3]), one8);
        __m256 D = _mm256_set1_ps(h2f(w) * 0.125f);
        for (int t = 0; t < nt; t++) {
            const tf_block_q8a *x = xs[t] + 8 * i;
            const tf_side *side = sides[t] + i;
            __m256i v[8];
            for (int j = 0; j < 8; j++) v[j] = DOT_US(u[j], ld256(x[j].qs));
            __m256i asum = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)side->bs), ones16);
            __m256i S = _mm256_add_epi32(_mm256_slli_epi32(lb_tree(v), 3), _mm256_mullo_epi32(c, asum));
            S = _mm256_mullo_epi32(S, sc);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(S), _mm256_mul_ps(D, _mm256_loadu_ps(side->d)), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) out[t] = hsum_ps(acc[t]);
}

/* IQ2_XXS rows: the grid rows are the magnitudes already (8, 25, 43), so the signs go onto the
 * activations (-a where the weight is negative) and the group's sum is one unsigned dot, with
 * no magnitude or sign step on the weights. The same integers as the generic loop. */
TF_INLINE void KFN(dot_iq2xxs_n)(int nt, int n, const uint8_t *w, const tf_block_q8a *const *xs, const tf_side *const *sides,
                                 float *out) {
    __m256 acc[TF_NT];
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    for (int i = 0; i < n / 256; i++, w += 66) {
        _Alignas(32) int32_t scv[8];
        __m256i g[8], neg[8];
        for (int j = 0; j < 8; j++) {
            const uint8_t *q = w + 2 + 8 * j;
            uint32_t aux = rd32(q + 4);
            g[j] = LB_GRID8(tf_iq2xxs_grid, q[0], q[1], q[2], q[3]);
            neg[j] = lb_ksigns_mask(aux);
            scv[j] = 2 * (int)(aux >> 28) + 1;
        }
        __m256i sc = _mm256_load_si256((const __m256i *)scv);
        __m256 D = _mm256_set1_ps(h2f(w) * 0.125f);
        for (int t = 0; t < nt; t++) {
            const tf_block_q8a *x = xs[t] + 8 * i;
            const tf_side *side = sides[t] + i;
            __m256i v[8];
            for (int j = 0; j < 8; j++) v[j] = DOT_US(g[j], lb_negate(ld256(x[j].qs), neg[j]));
            __m256i S = _mm256_mullo_epi32(lb_tree(v), sc);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(S), _mm256_mul_ps(D, _mm256_loadu_ps(side->d)), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) out[t] = hsum_ps(acc[t]);
}

/* One weight row against Q8A activations: per superblock the eight groups' exact integer sums in
 * one vector (lane j = group j), then one FMA with D_j * d_x (see the top of this file). Inlined
 * with a constant type into rows_lb, so each type gets its own loop (no per-group branches on
 * the scale layout, the decoded groups kept in registers). */
TF_INLINE void KFN(dot_lb_n)(int type, int nt, int n, const uint8_t *w, const tf_block_q8a *const *xs, const tf_side *const *sides,
                             float *out) {
    if (type == TF_TYPE_IQ1_S) { KFN(dot_iq1s_n)(nt, n, w, xs, sides, out); return; }
    if (type == TF_TYPE_IQ2_XXS) { KFN(dot_iq2xxs_n)(nt, n, w, xs, sides, out); return; }
    const int cls = lb_scale_class(type), is32 = lb_is32(type), bb = lb_bytes(type), nb = n / 32;
    __m256 acc[TF_NT];
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    for (int g = 0; g < nb; g += 8) {
        int cnt = nb - g < 8 ? nb - g : 8;   /* < 8 only in the last 32-blocks of a row */
        KFN(lb_t) L;
        KFN(lb_decode)(type, w, cnt, &L);
        w += is32 ? (size_t)cnt * bb : (size_t)bb;
        for (int t = 0; t < nt; t++) {   /* the decoded groups serve every row's activations */
            const tf_block_q8a *x = xs[t] + g;
            const tf_side *side = sides[t] + g / 8;
            __m256i v[8];
            for (int j = 0; j < 8; j++) {
                __m256i a = j < cnt ? ld256(x[j].qs) : _mm256_setzero_si256();
                __m256i aq = _mm256_abs_epi8(L.q[j]), sa = _mm256_sign_epi8(a, L.q[j]);
                v[j] = cls == LB_PER16 ? _mm256_madd_epi16(_mm256_maddubs_epi16(aq, sa), lb_pick16(L.sc, j)) : DOT_US(aq, sa);
            }
            __m256i S = lb_tree(v);
            if (cls == LB_PER32) S = _mm256_mullo_epi32(S, L.sc);
            __m256 dx = _mm256_loadu_ps(side->d);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(S), _mm256_mul_ps(L.D, dx), acc[t]);
            if (type == TF_TYPE_Q2_K) {
                __m256i M = _mm256_madd_epi16(L.mn, _mm256_loadu_si256((const __m256i *)side->bs));
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(M), _mm256_mul_ps(_mm256_set1_ps(-L.dmin), dx), acc[t]);
            }
        }
    }
    for (int t = 0; t < nt; t++) out[t] = hsum_ps(acc[t]);
}
TF_INLINE float KFN(dot_lb)(int type, int n, const uint8_t *w, const tf_block_q8a *x, const tf_side *side) {
    float r;
    KFN(dot_lb_n)(type, 1, n, w, &x, &side, &r);
    return r;
}

/* Rows of a low-bit type, prefetching ahead as rows_q does: one specialised loop per type. */
static void KFN(rows_lb)(int type, int n, int nrows, const uint8_t *w, size_t stride, const tf_block_q8a *x,
                         const tf_side *side, float *out) {
    const int ahead = rows_ahead(stride);
#define LB_ROWS(T) case T:                                                                  \
        for (int r = 0; r < nrows; r++) {                                                   \
            prefetch_ahead(w + (size_t)r * stride, stride, ahead);                          \
            out[r] = KFN(dot_lb)(T, n, w + (size_t)r * stride, x, side);                    \
        }                                                                                   \
        break;
    switch (type) {
    LB_ROWS(TF_TYPE_Q2_K) LB_ROWS(TF_TYPE_Q3_K) LB_ROWS(TF_TYPE_IQ2_XXS) LB_ROWS(TF_TYPE_IQ2_XS)
    LB_ROWS(TF_TYPE_IQ2_S) LB_ROWS(TF_TYPE_IQ3_XXS) LB_ROWS(TF_TYPE_IQ3_S) LB_ROWS(TF_TYPE_IQ1_S)
    LB_ROWS(TF_TYPE_IQ1_M) LB_ROWS(TF_TYPE_IQ4_XS) LB_ROWS(TF_TYPE_IQ4_NL) LB_ROWS(TF_TYPE_MXFP4)
    LB_ROWS(TF_TYPE_TQ1_0) LB_ROWS(TF_TYPE_TQ2_0)
    default: break;
    }
#undef LB_ROWS
}

/* ------------------------------------------------------------------ packed matrix kernel */

/* Decodes one block into the packed kernel's groups (q signed with aq = |q|, scale = D, sc16 the
 * integer scales of values 0..15 and 16..31, Q2_K's mins and -dmin); returns the group count. */
TF_INLINE int KFN(dec_lb)(int type, const uint8_t *blk, tf_group *g) {
    KFN(lb_t) L;
    int cls = lb_scale_class(type), ng = lb_is32(type) ? 1 : 8;
    KFN(lb_decode)(type, blk, 1, &L);
    _Alignas(32) float D[8];
    _Alignas(32) int16_t sc[16], mn[16];
    _Alignas(32) int32_t sc32[8];
    _mm256_store_ps(D, L.D);
    if (cls == LB_PER16) _mm256_store_si256((__m256i *)sc, L.sc);
    if (cls == LB_PER32) _mm256_store_si256((__m256i *)sc32, L.sc);
    if (type == TF_TYPE_Q2_K) _mm256_store_si256((__m256i *)mn, L.mn);
    const int z = lb_zero_point(type);
    for (int j = 0; j < ng; j++) {
        if (z) { g[j].q = _mm256_add_epi8(L.q[j], _mm256_set1_epi8((char)z)); g[j].aq = g[j].q; }
        else { g[j].q = L.q[j]; g[j].aq = _mm256_abs_epi8(L.q[j]); }
        g[j].scale = D[j]; g[j].offset = 0;
        int s0 = 1, s1 = 1;
        if (cls == LB_PER16) { s0 = sc[2 * j]; s1 = sc[2 * j + 1]; }
        if (cls == LB_PER32) s0 = s1 = sc32[j];
        g[j].sc16[0] = (int16_t)s0; g[j].sc16[1] = (int16_t)s1;
        if (type == TF_TYPE_Q2_K) { g[j].mn16[0] = mn[2 * j]; g[j].mn16[1] = mn[2 * j + 1]; g[j].offset = -L.dmin; }
    }
    return ng;
}

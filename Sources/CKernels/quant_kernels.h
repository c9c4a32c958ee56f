/* Quantized row kernels, instantiated twice by quant_dot.c: once for AVX2 and once for AVX-512
 * VNNI at 256-bit width (AVX512VL/BW + VNNI), which the dispatcher picks at run time when the CPU
 * has it. The two differ only where the wider instruction set saves work, through the macros
 * below, and give bit-identical integer sums (vpdpbusd does not saturate, and no maddubs pair
 * here can reach the int16 limit), so identical results whatever the CPU.
 *   KFN(name)     the instantiation's function name
 *   DOT_US(u, x)  unsigned x signed bytes -> 8 int32 sums of 4 products
 *   DOT_SS(w, x)  signed x signed bytes (Q8_0): the sign moves onto x
 *   HIBITS(q, p)  adds 0x10 to byte j of q where bit j of the 32 bits at p is set (Q5 formats)
 * Not a public header. */

/* ---------------------------------------------------------------- 32-block rows */

#if K_VNNI
/* two 256-bit halves as one 512-bit vector (AVX-512F only: no DQ insert needed), and back */
TF_INLINE __m512i kjoin_si(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }
TF_INLINE __m512 kjoin_ps(__m256 lo, __m256 hi) {
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
}
TF_INLINE __m256 khigh_ps(__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }
#endif
/* The integer sum of one accumulator lane set over the four steps of a K-quant record half: u[p]
 * the weights' unsigned bytes in the record's order, a the half's activation steps (a[2p]), from
 * the int32 start z. AVX2 adds the maddubs pairs in int16 first: exact while four steps' pairs
 * stay below 2^15 (Q4_K 4 * 2 * 15 * 127, Q5_K 4 * 2 * 31 * 127), which `pairs16` says; Q6_K's
 * 6-bit values allow two (2 * 2 * 63 * 127). VNNI and AVX2 give the same integers. */
TF_INLINE __m256i KFN(kdot4)(const __m256i u[4], const int8_t (*a)[32], __m256i z, const int pairs16) {
#if K_VNNI
    (void)pairs16;
    for (int p = 0; p < 4; p++) z = _mm256_dpbusd_epi32(z, u[p], ld256(a[2 * p]));
    return z;
#else
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256i m0 = _mm256_maddubs_epi16(u[0], ld256(a[0])), m1 = _mm256_maddubs_epi16(u[1], ld256(a[2]));
    __m256i m2 = _mm256_maddubs_epi16(u[2], ld256(a[4])), m3 = _mm256_maddubs_epi16(u[3], ld256(a[6]));
    if (pairs16 == 4)
        return _mm256_add_epi32(z, _mm256_madd_epi16(_mm256_add_epi16(_mm256_add_epi16(m0, m1), _mm256_add_epi16(m2, m3)), ones16));
    return _mm256_add_epi32(z, _mm256_add_epi32(_mm256_madd_epi16(_mm256_add_epi16(m0, m1), ones16),
                                                _mm256_madd_epi16(_mm256_add_epi16(m2, m3), ones16)));
#endif
}

/* One weight record of a row kernel (256 values in the activation record's order, tf_kact): the
 * unsigned bytes of the A and B lanes' four steps and each lane's float factor (d, or d * sc).
 * VNNI holds A and B side by side in 512-bit vectors. */
typedef struct {
#if K_VNNI
    __m512i u[4];
    __m512 S;
#else
    __m256i uA[4], uB[4];
    __m256 SA, SB;
#endif
} KFN(kw);
/* A row's float sums of A and B lanes over the records (one 512-bit accumulator with VNNI). */
typedef struct {
#if K_VNNI
    __m512 ab;
#else
    __m256 a, b;
#endif
} KFN(kacc);
/* Where a lane's integer sum starts, from the record's z = -32 * the lane's activation sum: the
 * weight offset times that sum, so the sum is of (q - offset) * a exactly. */
#ifndef KZ_DEFINED
#define KZ_DEFINED
enum { KZ_NONE, KZ_M32 /* q - 32: z */, KZ_M16 /* z >> 1 */, KZ_M8 /* z >> 2 */, KZ_P128 /* q + 128: z << 2 */ };
#endif

TF_INLINE KFN(kw) KFN(kw_make)(const __m256i uA[4], const __m256i uB[4], __m256 SA, __m256 SB) {
    KFN(kw) r;
#if K_VNNI
    for (int p = 0; p < 4; p++) r.u[p] = kjoin_si(uA[p], uB[p]);
    r.S = kjoin_ps(SA, SB);
#else
    for (int p = 0; p < 4; p++) { r.uA[p] = uA[p]; r.uB[p] = uB[p]; }
    r.SA = SA; r.SB = SB;
#endif
    return r;
}
TF_INLINE KFN(kacc) KFN(kacc_zero)(void) {
    KFN(kacc) c;
#if K_VNNI
    c.ab = _mm512_setzero_ps();
#else
    c.a = c.b = _mm256_setzero_ps();
#endif
    return c;
}
#if !K_VNNI
/* AVX2: add integer sums sA, sB of a record's A and B lanes into c (one convert, multiply, FMA each). */
TF_INLINE void KFN(kacc_add)(const KFN(kw) *w, const tf_kact *a, __m256i sA, __m256i sB, KFN(kacc) *c) {
    c->a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sA), _mm256_mul_ps(w->SA, _mm256_load_ps(a->dA)), c->a);
    c->b = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sB), _mm256_mul_ps(w->SB, _mm256_load_ps(a->dB)), c->b);
}
#endif
/* The lanes' start values (KZ_*) for z = the record's zA|zB. */
#if K_VNNI
TF_INLINE __m512i KFN(kz_start)(__m512i z, const int start) {
    switch (start) {
    case KZ_M32: return z;
    case KZ_M16: return _mm512_srai_epi32(z, 1);
    case KZ_M8: return _mm512_srai_epi32(z, 2);
    case KZ_P128: return _mm512_slli_epi32(z, 2);
    default: return _mm512_setzero_si512();
    }
}
#else
TF_INLINE __m256i KFN(kz_start)(__m256i z, const int start) {
    switch (start) {
    case KZ_M32: return z;
    case KZ_M16: return _mm256_srai_epi32(z, 1);
    case KZ_M8: return _mm256_srai_epi32(z, 2);
    default: return _mm256_setzero_si256();   /* KZ_P128 is VNNI's only */
    }
}
#endif
/* One activation row's step for a weight record: the A and B lanes' integer sums (from `start`,
 * `pairs16` as kdot4's), each converted once and times the weight factor and the record's
 * activation scale, into c. */
TF_INLINE void KFN(kw_acc)(const KFN(kw) *w, const tf_kact *a, const int start, const int pairs16, KFN(kacc) *c) {
#if K_VNNI
    (void)pairs16;
    __m512i s = start == KZ_NONE ? _mm512_setzero_si512() : KFN(kz_start)(_mm512_load_si512(a->zA), start);
    for (int p = 0; p < 4; p++) s = _mm512_dpbusd_epi32(s, w->u[p], _mm512_load_si512(a->q[2 * p]));
    c->ab = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(w->S, _mm512_load_ps(a->dA)), c->ab);
#else
    const __m256i zA = start == KZ_NONE ? _mm256_setzero_si256() : KFN(kz_start)(_mm256_load_si256((const __m256i *)a->zA), start);
    const __m256i zB = start == KZ_NONE ? _mm256_setzero_si256() : KFN(kz_start)(_mm256_load_si256((const __m256i *)a->zB), start);
    KFN(kacc_add)(w, a, KFN(kdot4)(w->uA, a->q, zA, pairs16), KFN(kdot4)(w->uB, a->q + 1, zB, pairs16), c);
#endif
}
/* The row's result: A + B lanes, summed. */
TF_INLINE __m256 KFN(kacc_lanes)(KFN(kacc) c) {
#if K_VNNI
    return _mm256_add_ps(_mm512_castps512_ps256(c.ab), khigh_ps(c.ab));
#else
    return _mm256_add_ps(c.a, c.b);
#endif
}

/* Block b of a 32-block row as unsigned bytes q (Q8_0: signed with AVX2, + 128 with VNNI), with
 * value = d * (q - offset) + m. */
TF_INLINE __m256i KFN(dec32)(int type, const uint8_t *b) {
    switch (type) {
    case TF_TYPE_Q4_0: return unpack_nibbles(b + 2);
    case TF_TYPE_Q4_1: return unpack_nibbles(b + 4);
    case TF_TYPE_Q5_0: return HIBITS(unpack_nibbles(b + 6), b + 2);
    case TF_TYPE_Q5_1: return HIBITS(unpack_nibbles(b + 8), b + 4);
    default: return K_VNNI ? _mm256_xor_si256(ld256(b + 2), _mm256_set1_epi8((char)0x80)) : ld256(b + 2);
    }
}
/* Row kernels for nt = 1..TF_NT activation rows at once (batched decode: a few sequences, one
 * token each): each weight block is loaded and decoded once and multiplied with every row's
 * activations. Every row's float steps are exactly those of the single-row kernel (nt = 1), in
 * the same order into the same accumulators, so a token decoded in a batch of 2..4 gets
 * bit-identical results to decoding it alone. Inlined with a constant nt, the per-row arrays
 * below stay in registers.
 *
 * 32-block rows, eight blocks at a time in the activation record's order (tf_kact: blocks 0, 2,
 * 4, 6 in the A lanes, 1, 3, 5, 7 in B, a lane per half block), so eight blocks cost per row 8
 * integer dots and one convert, multiply and FMA for A and B each. The integer sum includes the
 * offset (Q4_0: q - 8, Q5_0: q - 16, Q8_0 on VNNI: the + 128): it starts from offset * the lane's
 * activation sum, which is the record's -32 * sum shifted (exact). The zero points of Q4_1/Q5_1:
 * m * s_x, one FMA per eight blocks. A row whose length is not a multiple of 256 ends in a part
 * record: its missing blocks decode as zero against zero activations. */
TF_INLINE void KFN(dot32_n)(int type, int nt, int n, const uint8_t *w, const tf_kact *const *ka, float *out) {
    const int bb = bytes32(type), nb = n / 32, zp = type == TF_TYPE_Q4_1 || type == TF_TYPE_Q5_1;
    const __m256i ia = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6), ib = _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7);
    const int start = type == TF_TYPE_Q4_0 ? KZ_M8 : type == TF_TYPE_Q5_0 ? KZ_M16 : type == TF_TYPE_Q8_0 ? KZ_P128 : KZ_NONE;
    KFN(kacc) acc[TF_NT];
    __m256 accm[TF_NT];
    for (int t = 0; t < nt; t++) { acc[t] = KFN(kacc_zero)(); accm[t] = _mm256_setzero_ps(); }
    for (int g = 0, i = 0; g < nb; g += 8, i++, w += 8 * bb) {
        const int cnt = nb - g < 8 ? nb - g : 8;
        __m256 dw, mw = _mm256_setzero_ps();
        __m256i q[8];
        if (cnt == 8) {
            dw = f16x8_strided(w, bb);
            if (zp) mw = f16x8_strided(w + 2, bb);
            for (int j = 0; j < 8; j++) q[j] = KFN(dec32)(type, w + (size_t)j * bb);
        } else {   /* the row's last blocks: nothing past them is read */
            _Alignas(32) float d[8] = { 0 }, m[8] = { 0 };
            for (int j = 0; j < 8; j++) {
                if (j < cnt) { d[j] = h2f(w + (size_t)j * bb); m[j] = zp ? h2f(w + (size_t)j * bb + 2) : 0.0f; }
                q[j] = j < cnt ? KFN(dec32)(type, w + (size_t)j * bb) : _mm256_setzero_si256();
            }
            dw = _mm256_load_ps(d); mw = _mm256_load_ps(m);
        }
        __m256i uA[4], uB[4];
        { const __m256i va[4] = { q[0], q[2], q[4], q[6] }, vb[4] = { q[1], q[3], q[5], q[7] }; kt4(va, uA); kt4(vb, uB); }
        const KFN(kw) kw = KFN(kw_make)(uA, uB, _mm256_permutevar8x32_ps(dw, ia), _mm256_permutevar8x32_ps(dw, ib));
#if !K_VNNI
        if (type == TF_TYPE_Q8_0) {   /* AVX2: Q8_0's signed bytes, the sign moved onto the activations */
            const __m256i ones16 = _mm256_set1_epi16(1);
            __m256i aA[4], aB[4];
            for (int p = 0; p < 4; p++) { aA[p] = _mm256_abs_epi8(uA[p]); aB[p] = _mm256_abs_epi8(uB[p]); }
            for (int t = 0; t < nt; t++) {
                const tf_kact *a = ka[t] + i;
                __m256i sA = _mm256_setzero_si256(), sB = _mm256_setzero_si256();
                for (int p = 0; p < 4; p++) {
                    sA = _mm256_add_epi32(sA, _mm256_madd_epi16(_mm256_maddubs_epi16(aA[p], _mm256_sign_epi8(ld256(a->q[2 * p]), uA[p])), ones16));
                    sB = _mm256_add_epi32(sB, _mm256_madd_epi16(_mm256_maddubs_epi16(aB[p], _mm256_sign_epi8(ld256(a->q[2 * p + 1]), uB[p])), ones16));
                }
                KFN(kacc_add)(&kw, a, sA, sB, &acc[t]);
            }
            continue;
        }
#endif
        /* the others' unsigned bytes: four maddubs steps in int16 on AVX2 (q <= 31: 4 * 2 * 31 * 127 < 2^15) */
        for (int t = 0; t < nt; t++) {
            const tf_kact *a = ka[t] + i;
            KFN(kw_acc)(&kw, a, start, 4, &acc[t]);
            if (zp) accm[t] = _mm256_fmadd_ps(mw, _mm256_load_ps(a->s), accm[t]);
        }
    }
    for (int t = 0; t < nt; t++) out[t] = hsum_ps(_mm256_add_ps(KFN(kacc_lanes)(acc[t]), accm[t]));
}
TF_INLINE float KFN(dot32)(int type, int n, const uint8_t *w, const tf_kact *ka) {
    float r;
    KFN(dot32_n)(type, 1, n, w, &ka, &r);
    return r;
}

/* ---------------------------------------------------------------- K-quant rows */

/* Q4_K / Q5_K rows: 8 sub-blocks of 32, value = d*sc_j*q - dmin*m_j. Sub-block pair k: 32 bytes
 * of nibbles, low nibbles = sub-block 2k, high nibbles = 2k+1; Q5_K adds bit j of qh[l]. The
 * weights take the activation record's order (tf_kact): Q4_K transposes the four packed vectors
 * before splitting the nibbles (low nibbles = A, groups 2c; high = B, groups 2c + 1), Q5_K the
 * split values. Per activation row: A and B's integer sums, each times d * sc of its lanes' group
 * and the activation scale (one convert, one multiply, one FMA), and the mins in float. */
TF_INLINE void KFN(dot_q45_K_n)(int nt, int n, const uint8_t *w, const tf_kact *const *ka, float *out, int five) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), b16 = _mm256_set1_epi8(0x10);
    const __m256i ia = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6), ib = _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7);
    const int bb = five ? 176 : 144;
    KFN(kacc) acc[TF_NT];
    __m256 accm[TF_NT];
    for (int t = 0; t < nt; t++) { acc[t] = KFN(kacc_zero)(); accm[t] = _mm256_setzero_ps(); }
    for (int i = 0; i < n / 256; i++, w += bb) {
        __m128i scv, mnv;
        k_scales16(w + 4, &scv, &mnv);
        const __m256 d = _mm256_set1_ps(h2f(w));
        __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(scv));
        __m256 SA = _mm256_mul_ps(_mm256_permutevar8x32_ps(sc, ia), d), SB = _mm256_mul_ps(_mm256_permutevar8x32_ps(sc, ib), d);
        __m256 mn = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(mnv)), _mm256_set1_ps(h2f(w + 2)));
        const uint8_t *qs = w + (five ? 48 : 16);
        __m256i uA[4], uB[4];
        if (!five) {
            __m256i v[4], u[4];
            for (int c = 0; c < 4; c++) v[c] = ld256(qs + 32 * c);
            kt4(v, u);
            for (int p = 0; p < 4; p++) { uA[p] = _mm256_and_si256(u[p], m4); uB[p] = _mm256_and_si256(_mm256_srli_epi16(u[p], 4), m4); }
        } else {
            __m256i lo[4], hi[4], qh = ld256(w + 16);
            for (int c = 0; c < 4; c++) {
                __m256i q = ld256(qs + 32 * c);
                lo[c] = _mm256_or_si256(_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * c), 4), b16));
                hi[c] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                                        _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * c + 1), 4), b16));
            }
            kt4(lo, uA); kt4(hi, uB);
        }
        const KFN(kw) kw = KFN(kw_make)(uA, uB, SA, SB);
        for (int t = 0; t < nt; t++) {
            const tf_kact *a = ka[t] + i;
            KFN(kw_acc)(&kw, a, KZ_NONE, 4, &acc[t]);
            accm[t] = _mm256_fmadd_ps(mn, _mm256_load_ps(a->s), accm[t]);
        }
    }
    for (int t = 0; t < nt; t++) out[t] = hsum_ps(_mm256_sub_ps(KFN(kacc_lanes)(acc[t]), accm[t]));
}
TF_INLINE float KFN(dot_q45_K)(int n, const uint8_t *w, const tf_kact *ka, int five) {
    float r;
    KFN(dot_q45_K_n)(1, n, w, &ka, &r, five);
    return r;
}

/* Q6_K rows: 16 sub-blocks of 16 with int8 scales, value = d*sc_g*(q - 32), q in 0..63 from 4
 * low bits (ql) and 2 high bits (qh): group 4h' + k of half h' from ql[64h' ..] and qh[32h' ..].
 * q stays unsigned in the integer dot, which starts from the record's -32 * sum (z), so each
 * lane sums its sub-block's (q - 32) * a exactly; the lane's int8 scale and d go into the float
 * factor. The groups, in the record's order: A = groups 0, 2, 4, 6, B = 1, 3, 5, 7. */
TF_INLINE void KFN(dot_q6_K_n)(int nt, int n, const uint8_t *w, const tf_kact *const *ka, float *out) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x30);
    KFN(kacc) acc[TF_NT];
    for (int t = 0; t < nt; t++) acc[t] = KFN(kacc_zero)();
    for (int i = 0; i < n / 256; i++, w += 210) {
        const uint8_t *ql = w, *qhp = w + 128;
        __m128i sc = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(w + 192)), _mm_load_si128((const __m128i *)k6_pick_ab));
        const __m256 d = _mm256_set1_ps(h2f(w + 208));
        __m256 SA = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)), d);
        __m256 SB = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))), d);
        __m256i ga[4], gb[4], uA[4], uB[4];
        for (int h = 0; h < 2; h++) {
            __m256i l0 = ld256(ql + 64 * h), l1 = ld256(ql + 64 * h + 32), hb = ld256(qhp + 32 * h);
            ga[2 * h] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m3));
            gb[2 * h] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m3));
            ga[2 * h + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m3));
            gb[2 * h + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(hb, 2), m3));
        }
        kt4(ga, uA); kt4(gb, uB);
        const KFN(kw) kw = KFN(kw_make)(uA, uB, SA, SB);
        for (int t = 0; t < nt; t++) KFN(kw_acc)(&kw, ka[t] + i, KZ_M32, 2, &acc[t]);
    }
    for (int t = 0; t < nt; t++) out[t] = hsum_ps(KFN(kacc_lanes)(acc[t]));
}
TF_INLINE float KFN(dot_q6_K)(int n, const uint8_t *w, const tf_kact *ka) {
    float r;
    KFN(dot_q6_K_n)(1, n, w, &ka, &r);
    return r;
}

/* Rows of any quantized type (0, or -1 for a type without a kernel): one activation record for
 * the call (tf_kact, in the thread's scratch; the low-bit types' tf_side, on the stack for rows
 * up to 16k values), then each row, prefetching ahead. */
static int KFN(rows_q)(int type, int n, int nrows, const uint8_t *w, size_t stride, const void *vx, float *out) {
    const tf_block_q8a *x = vx;
    int kq = type == TF_TYPE_Q4_K || type == TF_TYPE_Q5_K || type == TF_TYPE_Q6_K, lb = tf_is_lowbit(type);
    if (!kq && !lb && type != TF_TYPE_Q4_0 && type != TF_TYPE_Q4_1 && type != TF_TYPE_Q5_0 && type != TF_TYPE_Q5_1 && type != TF_TYPE_Q8_0)
        return -1;
    size_t records = (size_t)((n / 32 + 7) / 8);
    tf_side stack[64], *side = stack;
    const tf_kact *ka = NULL;
    if (!lb) {   /* the K-quants and 32-block types read the rearranged record instead */
        tf_kact *k = kact_scratch(kact_records(n));
        if (!k) return -1;
        kact_build(n, x, k);
        ka = k;
    } else {
        side = records <= 64 ? stack : aligned_alloc(32, sizeof(tf_side) * records);
        if (!side) return -1;
        act_side(n, x, side);
    }
    const int ahead = rows_ahead(stride);
    if (lb) KFN(rows_lb)(type, n, nrows, w, stride, x, side, out);
    for (int r = 0; r < nrows && !lb; r++) {
        const uint8_t *row = w + r * stride;
        prefetch_ahead(row, stride, ahead);
        switch (type) {
        case TF_TYPE_Q4_0: out[r] = KFN(dot32)(TF_TYPE_Q4_0, n, row, ka); break;
        case TF_TYPE_Q4_1: out[r] = KFN(dot32)(TF_TYPE_Q4_1, n, row, ka); break;
        case TF_TYPE_Q5_0: out[r] = KFN(dot32)(TF_TYPE_Q5_0, n, row, ka); break;
        case TF_TYPE_Q5_1: out[r] = KFN(dot32)(TF_TYPE_Q5_1, n, row, ka); break;
        case TF_TYPE_Q8_0: out[r] = KFN(dot32)(TF_TYPE_Q8_0, n, row, ka); break;
        case TF_TYPE_Q4_K: out[r] = KFN(dot_q45_K)(n, row, ka, 0); break;
        case TF_TYPE_Q5_K: out[r] = KFN(dot_q45_K)(n, row, ka, 1); break;
        default: out[r] = KFN(dot_q6_K)(n, row, ka); break;
        }
    }
    if (side != stack) free(side);
    return 0;
}

/* nt = 2..TF_NT activation rows (Q8A records xstride bytes apart) against nrows weight rows:
 * out[t * ostride + r]. Each weight row is read and decoded once for all nt rows (the *_n
 * kernels), with each activation row's results bit-identical to rows_q's for it alone. For the
 * few rows of batched decode, where the packed matrix kernel's 8-token (or 4 x 2-group) lanes
 * would stay partly empty. */
#define RQN_ROW(T, CALL)                                                                    \
    case T:                                                                                 \
        for (int r = 0; r < nrows; r++) {                                                   \
            const uint8_t *row = w + (size_t)r * stride;                                    \
            float o[TF_NT];                                                                 \
            prefetch_ahead(row, stride, ahead);                                             \
            CALL;                                                                           \
            for (int t = 0; t < NT; t++) out[(size_t)t * ostride + r] = o[t];               \
        }                                                                                   \
        break;
#define RQN_LB(T) RQN_ROW(T, KFN(dot_lb_n)(T, NT, n, row, xs, sides, o))
#define RQN_STANDARD                                                                        \
    RQN_ROW(TF_TYPE_Q4_0, KFN(dot32_n)(TF_TYPE_Q4_0, NT, n, row, kas, o))                   \
    RQN_ROW(TF_TYPE_Q4_1, KFN(dot32_n)(TF_TYPE_Q4_1, NT, n, row, kas, o))                   \
    RQN_ROW(TF_TYPE_Q5_0, KFN(dot32_n)(TF_TYPE_Q5_0, NT, n, row, kas, o))                   \
    RQN_ROW(TF_TYPE_Q5_1, KFN(dot32_n)(TF_TYPE_Q5_1, NT, n, row, kas, o))                   \
    RQN_ROW(TF_TYPE_Q8_0, KFN(dot32_n)(TF_TYPE_Q8_0, NT, n, row, kas, o))                   \
    RQN_ROW(TF_TYPE_Q4_K, KFN(dot_q45_K_n)(NT, n, row, kas, o, 0))                          \
    RQN_ROW(TF_TYPE_Q5_K, KFN(dot_q45_K_n)(NT, n, row, kas, o, 1))                          \
    RQN_ROW(TF_TYPE_Q6_K, KFN(dot_q6_K_n)(NT, n, row, kas, o))
#define RQN_LOWBIT                                                                          \
    RQN_LB(TF_TYPE_Q2_K) RQN_LB(TF_TYPE_Q3_K) RQN_LB(TF_TYPE_IQ2_XXS) RQN_LB(TF_TYPE_IQ2_XS)  \
    RQN_LB(TF_TYPE_IQ2_S) RQN_LB(TF_TYPE_IQ3_XXS) RQN_LB(TF_TYPE_IQ3_S) RQN_LB(TF_TYPE_IQ1_S) \
    RQN_LB(TF_TYPE_IQ1_M) RQN_LB(TF_TYPE_IQ4_XS) RQN_LB(TF_TYPE_IQ4_NL) RQN_LB(TF_TYPE_MXFP4) \
    RQN_LB(TF_TYPE_TQ1_0) RQN_LB(TF_TYPE_TQ2_0)
/* The low-bit types' loops, one function per row count and not inlined into rows_q_n: compiled
 * as one function with the standard types', clang 21 (-O3, AVX-512 target) scheduled TQ2_0's
 * 4-row loop wrongly (every result off; the opt-bisect points at the machine instruction
 * scheduler of rows_q_n_vnni); apart, every type and row count is bit-identical to rows_q
 * (GemmTests.testRowKernelsForSeveralRowsAreBitIdenticalToOneRow). */
#define RQN_LB_FUNCTION(NAME)                                                               \
    static __attribute__((noinline)) int KFN(NAME)(int type, int n, int nrows, const uint8_t *w, size_t stride, \
                                                  const tf_block_q8a *const *xs, const tf_side *const *sides, \
                                                  float *out, size_t ostride, int ahead) {   \
        int rc = 0;                                                                         \
        switch (type) { RQN_LOWBIT default: rc = -1; break; }                               \
        return rc;                                                                          \
    }
#define NT 2
RQN_LB_FUNCTION(rows_lb_n2)
#undef NT
#define NT 3
RQN_LB_FUNCTION(rows_lb_n3)
#undef NT
#define NT 4
RQN_LB_FUNCTION(rows_lb_n4)
#undef NT
#define RQN_TYPES(LOWBIT)                                                                   \
    switch (type) {                                                                         \
    RQN_STANDARD                                                                            \
    default: rc = KFN(LOWBIT)(type, n, nrows, w, stride, xs, sides, out, ostride, ahead); break;       \
    }
static int KFN(rows_q_n)(int type, int n, int nrows, const uint8_t *w, size_t stride, const void *vx, size_t xstride,
                         int nt, float *out, size_t ostride) {
    if (nt < 2 || nt > TF_NT) return -1;
    const int kq = !tf_is_lowbit(type);   /* the types that read tf_kact records; the low-bit ones tf_side */
    size_t records = (size_t)((n / 32 + 7) / 8);
    tf_side stack[TF_NT * 64], *buf = kq || records <= 64 ? stack : aligned_alloc(32, sizeof(tf_side) * records * TF_NT);
    const tf_block_q8a *xs[TF_NT];
    const tf_side *sides[TF_NT];
    const tf_kact *kas[TF_NT];
    const size_t krec = kact_records(n);
    tf_kact *k = kq ? kact_scratch(krec * (size_t)nt) : NULL;
    if (kq && !k) return -1;
    if (!buf) return -1;
    for (int t = 0; t < nt; t++) {
        xs[t] = (const tf_block_q8a *)((const uint8_t *)vx + (size_t)t * xstride);
        sides[t] = kq ? NULL : buf + (size_t)t * records;
        if (kq) { kact_build(n, xs[t], k + (size_t)t * krec); kas[t] = k + (size_t)t * krec; }
        else act_side(n, xs[t], buf + (size_t)t * records);
    }
    const int ahead = rows_ahead(stride);
    int rc = 0;
    switch (nt) {
#define NT 2
    case 2: RQN_TYPES(rows_lb_n2) break;
#undef NT
#define NT 3
    case 3: RQN_TYPES(rows_lb_n3) break;
#undef NT
#define NT 4
    default: RQN_TYPES(rows_lb_n4) break;
#undef NT
    }
    if (buf != stack) free(buf);
    return rc;
}
#undef RQN_TYPES
#undef RQN_LB_FUNCTION
#undef RQN_LOWBIT
#undef RQN_STANDARD
#undef RQN_LB
#undef RQN_ROW

/* ---------------------------------------------------------------- packed matrix kernel */

/* Decoders: one block of the weight row into its 32-value groups; return the group count. */
TF_INLINE int KFN(dec_q4_0)(const uint8_t *b, tf_group *g) {
    float d = h2f(b);
    g->q = unpack_nibbles(b + 2); g->scale = d; g->offset = -8.0f * d;
    return 1;
}
TF_INLINE int KFN(dec_q4_1)(const uint8_t *b, tf_group *g) {
    g->q = unpack_nibbles(b + 4); g->scale = h2f(b); g->offset = h2f(b + 2);
    return 1;
}
TF_INLINE int KFN(dec_q5_0)(const uint8_t *b, tf_group *g) {
    float d = h2f(b);
    g->q = HIBITS(unpack_nibbles(b + 6), b + 2);
    g->scale = d; g->offset = -16.0f * d;
    return 1;
}
TF_INLINE int KFN(dec_q5_1)(const uint8_t *b, tf_group *g) {
    g->q = HIBITS(unpack_nibbles(b + 8), b + 4);
    g->scale = h2f(b); g->offset = h2f(b + 2);
    return 1;
}
TF_INLINE int KFN(dec_q8_0)(const uint8_t *b, tf_group *g) {
    /* VNNI: unsigned w + 128 (zero point 128, integer); AVX2: signed, with the magnitudes */
    g->q = ld256(b + 2); g->scale = h2f(b); g->offset = 0;
    if (K_VNNI) g->q = _mm256_xor_si256(g->q, _mm256_set1_epi8((char)0x80)); else g->aq = _mm256_abs_epi8(g->q);
    return 1;
}
TF_INLINE int KFN(dec_q4_K)(const uint8_t *w, tf_group *g) {
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
TF_INLINE int KFN(dec_q5_K)(const uint8_t *w, tf_group *g) {
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

/* Q6_K group as unsigned 0..63 (value = d * sc * (q - 32)); sc16 = the two per-16 scales. */
TF_INLINE int KFN(dec_q6_K)(const uint8_t *w, tf_group *g) {
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

/* Integer part of the packed kernel. Each result is an exact int32 per lane: the dot of one
 * decoded 32-value weight group with one token's 32 activations, *minus the weights' integer
 * zero point* (Q4_0: 8, Q5_0: 16, Q6_K: 32 times its per-16 scales, and Q8_0 with VNNI, whose
 * signed weights go in as unsigned w + 128) times the token's activation sums, which the pack
 * holds as integers. So the float steps see the same integer whatever the instruction set. */

/* Where a type's decoded weights carry an integer zero point (value = q - z: Q4_0 8, Q5_0 16,
 * Q8_0 under VNNI 128), the integer sums start from -z * (sum of the token's activations): the pack
 * holds -16 * sum, which shifts exactly to the other two. Zero for the other types. */
TF_INLINE int KFN(zp_of)(int type, int nq16) {
    return type == TF_TYPE_Q5_0 ? nq16 : type == TF_TYPE_Q4_0 ? nq16 >> 1 : type == TF_TYPE_Q8_0 && K_VNNI ? nq16 * 8 : 0;
}
/* zp_of for the 8 lanes of a pack group */
TF_INLINE __m256i KFN(zp_init)(int type, const tf_pack_group *P) {
    __m256i n16 = ldp((const int8_t *)P->nq16);
    if (lb_zero_point(type)) return _mm256_mullo_epi32(_mm256_srai_epi32(n16, 4), _mm256_set1_epi32(lb_zero_point(type)));
    if (type == TF_TYPE_Q5_0) return n16;
    if (type == TF_TYPE_Q4_0) return _mm256_srai_epi32(n16, 1);
    if (type == TF_TYPE_Q8_0 && K_VNNI) return _mm256_slli_epi32(n16, 3);
    return _mm256_setzero_si256();
}
/* Q6_K's per-16 int scales (sc0, sc1) of one group as an int16 pair, for madd with h16. */
TF_INLINE uint32_t KFN(q6_pair)(const tf_group *g) { return (uint16_t)g->sc16[0] | (uint32_t)(uint16_t)g->sc16[1] << 16; }
/* Q2_K's per-16 mins of one group as an int16 pair. */
TF_INLINE uint32_t KFN(mn_pair)(const tf_group *g) { return (uint16_t)g->mn16[0] | (uint32_t)(uint16_t)g->mn16[1] << 16; }
/* Q6_K's zero point 32, times its per-16 scales: -32 (sc0 * sum q[0..15] + sc1 * sum q[16..31]). */
TF_INLINE __m256i KFN(q6_zero_point)(__m256i isum, const tf_pack_group *P, __m256i sc01) {
    return _mm256_sub_epi32(isum, _mm256_slli_epi32(_mm256_madd_epi16(ldp((const int8_t *)P->h16), sc01), 5));
}

/* Octet: one decoded group against 8 tokens. Step k multiplies weight bytes 4k..4k+3, put in
 * every lane by a register permute (reloading them from the stored group measured slower: store
 * forwarding), with the octet's q[k]. */
#define WB4(g, k) _mm256_permutevar8x32_epi32((g)->q, _mm256_set1_epi32(k))
#define WA4(g, k) _mm256_permutevar8x32_epi32((g)->aq, _mm256_set1_epi32(k))
TF_INLINE __m256i KFN(pk_step)(const tf_group *g, const tf_pack_group *P, int k) {
    return _mm256_maddubs_epi16(WB4(g, k), ldp(P->q[k]));
}
TF_INLINE __m256i KFN(pk_dot)(int type, const tf_group *g, const tf_pack_group *P, __m256i sc01) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i r = _mm256_setzero_si256(), r1 = KFN(zp_init)(type, P);
    if (lb_zero_point(type)) {
        /* unsigned weights q + z, one integer scale for the group: sum (q + z) a - z sum a, times it */
#if K_VNNI
        for (int k = 0; k < 4; k++) { r = _mm256_dpbusd_epi32(r, WB4(g, k), ldp(P->q[k])); r1 = _mm256_dpbusd_epi32(r1, WB4(g, k + 4), ldp(P->q[k + 4])); }
#else
        for (int k = 0; k < 8; k++) r = _mm256_add_epi32(r, _mm256_madd_epi16(KFN(pk_step)(g, P, k), ones));
#endif
        return _mm256_mullo_epi32(_mm256_add_epi32(r, r1), _mm256_set1_epi32(g->sc16[0]));
    }
    if (tf_is_lowbit(type)) {
        /* signed weights (the sign moves onto the activations), values 0..15 (steps 0-3) times
         * sc16[0], 16..31 times sc16[1]; VNNI: the two halves' sums by vpdpbusd, then scaled */
#if K_VNNI
        for (int k = 0; k < 4; k++) {
            r = _mm256_dpbusd_epi32(r, WA4(g, k), _mm256_sign_epi8(ldp(P->q[k]), WB4(g, k)));
            r1 = _mm256_dpbusd_epi32(r1, WA4(g, k + 4), _mm256_sign_epi8(ldp(P->q[k + 4]), WB4(g, k + 4)));
        }
        return _mm256_add_epi32(_mm256_mullo_epi32(r, _mm256_set1_epi32(g->sc16[0])), _mm256_mullo_epi32(r1, _mm256_set1_epi32(g->sc16[1])));
#else
        __m256i s0 = _mm256_set1_epi16(g->sc16[0]), s1 = _mm256_set1_epi16(g->sc16[1]);
        for (int k = 0; k < 8; k++)
            r = _mm256_add_epi32(r, _mm256_madd_epi16(_mm256_maddubs_epi16(WA4(g, k), _mm256_sign_epi8(ldp(P->q[k]), WB4(g, k))), k < 4 ? s0 : s1));
        return r;
#endif
    }
    if (type == TF_TYPE_Q6_K) {
        /* 0..63 with the per-16 scales folded in by madd: steps 0-3 are values 0..15 (sc0), 4-7 16..31 */
        __m256i sc0 = _mm256_set1_epi16(g->sc16[0]), sc1 = _mm256_set1_epi16(g->sc16[1]);
        for (int k = 0; k < 8; k += 2)
            r = _mm256_add_epi32(r, _mm256_madd_epi16(_mm256_add_epi16(KFN(pk_step)(g, P, k), KFN(pk_step)(g, P, k + 1)), k < 4 ? sc0 : sc1));
        return KFN(q6_zero_point)(r, P, sc01);
    }
    if (type == TF_TYPE_Q8_0 && !K_VNNI) {   /* signed weights: the sign moves onto the activations */
        for (int k = 0; k < 8; k++)
            r = _mm256_add_epi32(r, _mm256_madd_epi16(_mm256_maddubs_epi16(WA4(g, k), _mm256_sign_epi8(ldp(P->q[k]), WB4(g, k))), ones));
        return r;
    }
#if K_VNNI
    for (int k = 0; k < 4; k++) { r = _mm256_dpbusd_epi32(r, WB4(g, k), ldp(P->q[k])); r1 = _mm256_dpbusd_epi32(r1, WB4(g, k + 4), ldp(P->q[k + 4])); }
    return _mm256_add_epi32(r, r1);
#else
    /* unsigned weights <= 31: four maddubs results fit an int16 sum before widening */
    __m256i zp = r1, s0 = KFN(pk_step)(g, P, 0), s1 = KFN(pk_step)(g, P, 4);
    for (int k = 1; k < 4; k++) { s0 = _mm256_add_epi16(s0, KFN(pk_step)(g, P, k)); s1 = _mm256_add_epi16(s1, KFN(pk_step)(g, P, k + 4)); }
    return _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(s0, ones), _mm256_madd_epi16(s1, ones)), zp);
#endif
}

/* Quartet: two decoded groups interleaved by 4-byte pieces (lo = unpacklo_epi32, hi =
 * unpackhi_epi32 of the two) against one pair slot; lanes = (token, group). Step j takes the 8-byte
 * piece j of the interleaving (pieces pk_pair_piece[j] of both groups) into every lane by a
 * register permute (a store and 8-byte reloads measured slower: they wait on store forwarding). */
#define PK4_W(lo, hi, j) _mm256_permute4x64_epi64((j) < 4 ? (lo) : (hi), ((j) & 3) * 0x55)
#define PK4_STEP(j) _mm256_maddubs_epi16(PK4_W(lo, hi, j), ldp(P->q[j]))
TF_INLINE __m256i KFN(pk4_dot)(int type, const tf_group *g0, const tf_group *g1, const tf_pack_group *P, __m256i sc01) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i lo = _mm256_unpacklo_epi32(g0->q, g1->q), hi = _mm256_unpackhi_epi32(g0->q, g1->q);
    __m256i r = _mm256_setzero_si256(), r1 = KFN(zp_init)(type, P);
    if (lb_zero_point(type)) {   /* as pk_dot's: unsigned q + z, then each group's integer scale */
        __m256i c = _mm256_set1_epi64x((int64_t)((uint64_t)(uint32_t)g1->sc16[0] << 32 | (uint32_t)g0->sc16[0]));
#if K_VNNI
#define U_STEP(j) r = _mm256_dpbusd_epi32(r, PK4_W(lo, hi, j), ldp(P->q[j])); r1 = _mm256_dpbusd_epi32(r1, PK4_W(lo, hi, j + 1), ldp(P->q[j + 1]))
        U_STEP(0); U_STEP(2); U_STEP(4); U_STEP(6);
#undef U_STEP
#else
#define Z_STEP(j) r = _mm256_add_epi32(r, _mm256_madd_epi16(PK4_STEP(j), ones))
        Z_STEP(0); Z_STEP(1); Z_STEP(2); Z_STEP(3); Z_STEP(4); Z_STEP(5); Z_STEP(6); Z_STEP(7);
#undef Z_STEP
#endif
        return _mm256_mullo_epi32(_mm256_add_epi32(r, r1), c);
    }
    if (tf_is_lowbit(type)) {
        /* as pk_dot's low-bit form; steps 0,1,4,5 are values 0..15 of both groups, 2,3,6,7 16..31 */
        __m256i alo = _mm256_unpacklo_epi32(g0->aq, g1->aq), ahi = _mm256_unpackhi_epi32(g0->aq, g1->aq);
#define LB4_STEP(j) _mm256_maddubs_epi16(PK4_W(alo, ahi, j), _mm256_sign_epi8(ldp(P->q[j]), PK4_W(lo, hi, j)))
#if K_VNNI
#define LB4_DP(acc, j) acc = _mm256_dpbusd_epi32(acc, PK4_W(alo, ahi, j), _mm256_sign_epi8(ldp(P->q[j]), PK4_W(lo, hi, j)))
        LB4_DP(r, 0); LB4_DP(r, 1); LB4_DP(r, 4); LB4_DP(r, 5); LB4_DP(r1, 2); LB4_DP(r1, 3); LB4_DP(r1, 6); LB4_DP(r1, 7);
#undef LB4_DP
        __m256i c0 = _mm256_set1_epi64x((int64_t)((uint64_t)(uint32_t)g1->sc16[0] << 32 | (uint32_t)g0->sc16[0]));
        __m256i c1 = _mm256_set1_epi64x((int64_t)((uint64_t)(uint32_t)g1->sc16[1] << 32 | (uint32_t)g0->sc16[1]));
        return _mm256_add_epi32(_mm256_mullo_epi32(r, c0), _mm256_mullo_epi32(r1, c1));
#else
        __m256i c0 = _mm256_set1_epi64x((int64_t)((uint64_t)(uint16_t)g1->sc16[0] * 0x10001u << 32 | (uint16_t)g0->sc16[0] * 0x10001u));
        __m256i c1 = _mm256_set1_epi64x((int64_t)((uint64_t)(uint16_t)g1->sc16[1] * 0x10001u << 32 | (uint16_t)g0->sc16[1] * 0x10001u));
#define LB4_MADD(j, c) r = _mm256_add_epi32(r, _mm256_madd_epi16(LB4_STEP(j), c))
        LB4_MADD(0, c0); LB4_MADD(1, c0); LB4_MADD(2, c1); LB4_MADD(3, c1);
        LB4_MADD(4, c0); LB4_MADD(5, c0); LB4_MADD(6, c1); LB4_MADD(7, c1);
#undef LB4_MADD
        return r;
#endif
#undef LB4_STEP
    }
    if (type == TF_TYPE_Q6_K) {
        /* dword lanes alternate the two groups: each int16 scale twice per lane; steps 0,1 and 4,5
         * are pieces of values 0..15 (sc0), steps 2,3 and 6,7 of 16..31 (sc1) */
        __m256i sc0 = _mm256_set1_epi64x((int64_t)((uint64_t)(uint16_t)g1->sc16[0] * 0x10001u << 32 | (uint16_t)g0->sc16[0] * 0x10001u));
        __m256i sc1 = _mm256_set1_epi64x((int64_t)((uint64_t)(uint16_t)g1->sc16[1] * 0x10001u << 32 | (uint16_t)g0->sc16[1] * 0x10001u));
#define Q6_PAIR(j, sc) r = _mm256_add_epi32(r, _mm256_madd_epi16(_mm256_add_epi16(PK4_STEP(j), PK4_STEP(j + 1)), sc))
        Q6_PAIR(0, sc0); Q6_PAIR(2, sc1); Q6_PAIR(4, sc0); Q6_PAIR(6, sc1);
#undef Q6_PAIR
        return KFN(q6_zero_point)(r, P, sc01);
    }
    if (type == TF_TYPE_Q8_0 && !K_VNNI) {
        __m256i alo = _mm256_unpacklo_epi32(g0->aq, g1->aq), ahi = _mm256_unpackhi_epi32(g0->aq, g1->aq);
#define S8_STEP(j) r = _mm256_add_epi32(r, _mm256_madd_epi16(_mm256_maddubs_epi16(PK4_W(alo, ahi, j), _mm256_sign_epi8(ldp(P->q[j]), PK4_W(lo, hi, j))), ones))
        S8_STEP(0); S8_STEP(1); S8_STEP(2); S8_STEP(3); S8_STEP(4); S8_STEP(5); S8_STEP(6); S8_STEP(7);
#undef S8_STEP
        return r;
    }
#if K_VNNI
#define U_STEP(j) r = _mm256_dpbusd_epi32(r, PK4_W(lo, hi, j), ldp(P->q[j])); r1 = _mm256_dpbusd_epi32(r1, PK4_W(lo, hi, j + 1), ldp(P->q[j + 1]))
    U_STEP(0); U_STEP(2); U_STEP(4); U_STEP(6);
#undef U_STEP
    return _mm256_add_epi32(r, r1);
#else
    __m256i zp = r1, s0 = PK4_STEP(0), s1 = PK4_STEP(4);
    s0 = _mm256_add_epi16(s0, PK4_STEP(1)); s1 = _mm256_add_epi16(s1, PK4_STEP(5));
    s0 = _mm256_add_epi16(s0, PK4_STEP(2)); s1 = _mm256_add_epi16(s1, PK4_STEP(6));
    s0 = _mm256_add_epi16(s0, PK4_STEP(3)); s1 = _mm256_add_epi16(s1, PK4_STEP(7));
    return _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(s0, ones), _mm256_madd_epi16(s1, ones)), zp);
#endif
}
#undef PK4_STEP
#undef PK4_W
#undef WB4
#undef WA4

/* Decodes block b of a row into its 32-value groups; returns the group count. */
TF_INLINE int KFN(dec_block)(int type, const uint8_t *blk, tf_group *grp) {
    switch (type) {
    case TF_TYPE_Q4_0: return KFN(dec_q4_0)(blk, grp);
    case TF_TYPE_Q4_1: return KFN(dec_q4_1)(blk, grp);
    case TF_TYPE_Q5_0: return KFN(dec_q5_0)(blk, grp);
    case TF_TYPE_Q5_1: return KFN(dec_q5_1)(blk, grp);
    case TF_TYPE_Q8_0: return KFN(dec_q8_0)(blk, grp);
    case TF_TYPE_Q4_K: return KFN(dec_q4_K)(blk, grp);
    case TF_TYPE_Q5_K: return KFN(dec_q5_K)(blk, grp);
    case TF_TYPE_Q6_K: return KFN(dec_q6_K)(blk, grp);
    default: return KFN(dec_lb)(type, blk, grp);
    }
}

/* The float steps, one lane = one (token, group): acc += (int sum) * (scale * d_x), and for
 * zero points that are not integers (Q4_1/Q5_1, K-quant mins) acc += offset * s_x, each a fused
 * multiply-add. Every tile shape runs exactly these per lane, each token's even and odd groups
 * in two accumulators added at the end, so a token's result does not depend on which other
 * tokens share its batch. */
TF_INLINE __m256 KFN(pk_acc)(int type, __m256i isum, __m256 sdx, __m256 off, const tf_pack_group *P, __m256 acc) {
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), sdx, acc);
    if (type == TF_TYPE_Q4_1 || type == TF_TYPE_Q5_1 || type == TF_TYPE_Q4_K || type == TF_TYPE_Q5_K)
        acc = _mm256_fmadd_ps(off, _mm256_load_ps(P->s), acc);
    return acc;
}

/* One decoded group against NO octets (1 or 2): into acc[0..NO-1], the accumulators of the
 * group's parity. */
TF_INLINE void KFN(pk_group)(int type, const tf_group *g, const tf_pack_group *P, size_t G, int NO, __m256 *acc) {
    __m256 sc = _mm256_set1_ps(g->scale), off = _mm256_set1_ps(g->offset);
    __m256i sc01 = _mm256_set1_epi32((int)KFN(q6_pair)(g));
    for (int oc = 0; oc < NO; oc++) {
        const tf_pack_group *Q = P + oc * G;
        __m256i isum = KFN(pk_dot)(type, g, Q, sc01);
        acc[oc] = KFN(pk_acc)(type, isum, _mm256_mul_ps(sc, _mm256_load_ps(Q->d)), off, Q, acc[oc]);
        if (type == TF_TYPE_Q2_K)   /* mins: -dmin * d_x * (mn0 * sum a[0..15] + mn1 * sum a[16..31]) */
            acc[oc] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(ldp((const int8_t *)Q->h16), _mm256_set1_epi32((int)KFN(mn_pair)(g)))),
                                      _mm256_mul_ps(off, _mm256_load_ps(Q->d)), acc[oc]);
    }
}

/* One weight row against NO octets (1 or 2) of one tile: each decoded group serves 8*NO tokens.
 * Even and odd groups go to separate accumulators (ev, od), as in the quartet's lanes. */
TF_INLINE void KFN(pk_row)(int type, const uint8_t *row, int nblocks, int bbytes, const tf_pack_group *tile, size_t G,
                      int NO, int nt, float *o, size_t ostride) {
    __m256 ev[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() }, od[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() };
    tf_group grp[8];
    const tf_pack_group *P = tile;
    if (tf_per256(type)) {
        for (int b = 0; b < nblocks; b++) {
            KFN(dec_block)(type, row + (size_t)b * bbytes, grp);
            for (int k = 0; k < 8; k += 2, P += 2) {
                KFN(pk_group)(type, &grp[k], P, G, NO, ev);
                KFN(pk_group)(type, &grp[k + 1], P + 1, G, NO, od);
            }
        }
    } else {
        int b = 0;
        for (; b + 1 < nblocks; b += 2, P += 2) {
            KFN(dec_block)(type, row + (size_t)b * bbytes, grp);
            KFN(dec_block)(type, row + (size_t)(b + 1) * bbytes, grp + 1);
            KFN(pk_group)(type, &grp[0], P, G, NO, ev);
            KFN(pk_group)(type, &grp[1], P + 1, G, NO, od);
        }
        if (b < nblocks) {
            KFN(dec_block)(type, row + (size_t)b * bbytes, grp);
            KFN(pk_group)(type, &grp[0], P, G, NO, ev);
        }
    }
    _Alignas(32) float res[16];
    _mm256_store_ps(res, _mm256_add_ps(ev[0], od[0]));
    _mm256_store_ps(res + 8, _mm256_add_ps(ev[1], od[1]));
    for (int t = 0; t < nt; t++) o[t * ostride] = res[t];
}

/* (a, b, a, b, ...) */
TF_INLINE __m256 KFN(pair_ps)(float a, float b) {
    return _mm256_castpd_ps(_mm256_set1_pd(_mm_cvtsd_f64(_mm_castps_pd(_mm_setr_ps(a, b, 0, 0)))));
}
TF_INLINE void KFN(pk4_pair)(int type, const tf_group *g0, const tf_group *g1, const tf_pack_group *P, __m256 *acc) {
    __m256i sc01 = _mm256_set1_epi64x((int64_t)((uint64_t)KFN(q6_pair)(g1) << 32 | KFN(q6_pair)(g0)));
    __m256i isum = KFN(pk4_dot)(type, g0, g1, P, sc01);
    __m256 sdx = _mm256_mul_ps(KFN(pair_ps)(g0->scale, g1->scale), _mm256_load_ps(P->d));
    __m256 off = KFN(pair_ps)(g0->offset, g1->offset);
    *acc = KFN(pk_acc)(type, isum, sdx, off, P, *acc);
    if (type == TF_TYPE_Q2_K) {
        __m256i mn = _mm256_set1_epi64x((int64_t)((uint64_t)KFN(mn_pair)(g1) << 32 | KFN(mn_pair)(g0)));
        *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(ldp((const int8_t *)P->h16), mn)), _mm256_mul_ps(off, _mm256_load_ps(P->d)), *acc);
    }
}

/* One weight row against a quartet tile (<= 4 tokens, pairs of groups): lane 2t + p accumulates
 * token t's groups of parity p. */
TF_INLINE void KFN(pk4_row)(int type, const uint8_t *row, int nblocks, int bbytes, const tf_pack_group *tile,
                            int nt, float *o, size_t ostride) {
    __m256 acc = _mm256_setzero_ps();
    tf_group grp[8];
    const tf_pack_group *P = tile;
    int per = tf_per256(type) ? 8 : 1;
    if (per == 8) {
        for (int b = 0; b < nblocks; b++) {
            KFN(dec_block)(type, row + (size_t)b * bbytes, grp);
            for (int k = 0; k < 8; k += 2, P++) KFN(pk4_pair)(type, &grp[k], &grp[k + 1], P, &acc);
        }
    } else {
        int b = 0;
        for (; b + 1 < nblocks; b += 2, P++) {
            KFN(dec_block)(type, row + (size_t)b * bbytes, grp);
            KFN(dec_block)(type, row + (size_t)(b + 1) * bbytes, grp + 1);
            KFN(pk4_pair)(type, &grp[0], &grp[1], P, &acc);
        }
        if (b < nblocks) {   /* an odd last group: its pair partner is zero (zero activations too) */
            KFN(dec_block)(type, row + (size_t)b * bbytes, grp);
            memset(&grp[1], 0, sizeof grp[1]);
            KFN(pk4_pair)(type, &grp[0], &grp[1], P, &acc);
        }
    }
    _Alignas(32) float res[8];
    _mm256_store_ps(res, acc);
    for (int t = 0; t < nt; t++) o[t * ostride] = res[2 * t] + res[2 * t + 1];
}

#if K_VNNI
/* The 32 values of one block of two rows (a: low half, b: high half) as unsigned bytes, for
 * Q4_0, Q5_0 and Q8_0 (+128), as dec_block's decoders give them. */
TF_INLINE __m512i KFN(dec2_512)(int type, const uint8_t *a, const uint8_t *b) {
    if (type == TF_TYPE_Q8_0)
        return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(ld256(a + 2)), ld256(b + 2), 1), _mm512_set1_epi8((char)0x80));
    int off = type == TF_TYPE_Q5_0 ? 6 : 2;
    __m512i n = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(a + off)))),
                                   _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(b + off))), 1);
    n = _mm512_and_si512(_mm512_srlv_epi32(n, _mm512_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4, 0, 0, 0, 0, 4, 4, 4, 4)), _mm512_set1_epi8(0x0F));
    return type == TF_TYPE_Q5_0 ? hibits2_vnni(n, a + 2, b + 2) : n;
}
/* Sixteen weight rows against a quartet tile, rows in the lanes of 512-bit vectors (VNNI; Q4_0,
 * Q5_0, Q8_0, whose zero points are integers): the sixteen decoded groups are transposed so that
 * vector j holds piece j of every row, and each token's activation piece comes as a 4-byte
 * broadcast operand of vpdpbusd, so no permute per step and one float step per (token, group) for
 * all sixteen rows. Lane r runs exactly the quartet's operations for (row r, token t, group g), so
 * the results are bit-identical to pk4_row's (and so to every other tile shape's and the AVX2
 * kernels'). The transpose leaves the rows in the lanes in the order 0-3, 8-11, 4-7, 12-15 (the
 * scales follow it; the results are put back in order when stored). */
TF_INLINE void KFN(pk4_rows16_block)(int type, const uint8_t *w, size_t stride, int b, int bbytes, const tf_pack_group *P,
                                     int p, int nt, __m512 acc[4]) {
    __m512i z[8], t[8], u[8], W[8];
    for (int r = 0; r < 8; r++) z[r] = KFN(dec2_512)(type, w + (size_t)r * stride + (size_t)b * bbytes,
                                                      w + (size_t)(r + 8) * stride + (size_t)b * bbytes);
    for (int k = 0; k < 4; k++) {
        t[2 * k] = _mm512_unpacklo_epi32(z[2 * k], z[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(z[2 * k], z[2 * k + 1]);
    }
    for (int h = 0; h < 2; h++) {
        u[4 * h + 0] = _mm512_unpacklo_epi64(t[4 * h], t[4 * h + 2]);
        u[4 * h + 1] = _mm512_unpackhi_epi64(t[4 * h], t[4 * h + 2]);
        u[4 * h + 2] = _mm512_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
        u[4 * h + 3] = _mm512_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
    }
    for (int j = 0; j < 4; j++) {
        W[j] = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88);
        W[j + 4] = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xDD);
    }
    const uint8_t *d0 = w + (size_t)b * bbytes;
#define H(r) (short)rd16(d0 + (size_t)(r) * stride)
    __m512 dw = _mm512_cvtph_ps(_mm256_setr_epi16(H(0), H(1), H(2), H(3), H(8), H(9), H(10), H(11),
                                                  H(4), H(5), H(6), H(7), H(12), H(13), H(14), H(15)));
#undef H
    for (int tk = 0; tk < nt; tk++) {
        int l = 2 * tk + p;
        __m512i r0 = _mm512_set1_epi32(KFN(zp_of)(type, P->nq16[l])), r1 = _mm512_setzero_si512();
#define A4(jj) _mm512_set1_epi32(*(const int32_t *)&P->q[jj][4 * l])
        r0 = _mm512_dpbusd_epi32(r0, W[0], A4(0)); r1 = _mm512_dpbusd_epi32(r1, W[1], A4(1));
        r0 = _mm512_dpbusd_epi32(r0, W[4], A4(2)); r1 = _mm512_dpbusd_epi32(r1, W[5], A4(3));
        r0 = _mm512_dpbusd_epi32(r0, W[2], A4(4)); r1 = _mm512_dpbusd_epi32(r1, W[3], A4(5));
        r0 = _mm512_dpbusd_epi32(r0, W[6], A4(6)); r1 = _mm512_dpbusd_epi32(r1, W[7], A4(7));
#undef A4
        __m512 sdx = _mm512_mul_ps(dw, _mm512_set1_ps(P->d[l]));
        acc[tk] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(r1, r0)), sdx, acc[tk]);
    }
}
TF_INLINE void KFN(pk4_rows16)(int type, const uint8_t *w, size_t stride, int nblocks, int bbytes, const tf_pack_group *tile,
                               int nt, float *o, size_t ostride) {
    __m512 ev[4], od[4];
    for (int k = 0; k < 4; k++) { ev[k] = _mm512_setzero_ps(); od[k] = _mm512_setzero_ps(); }
    int b = 0;
    for (; b + 1 < nblocks; b += 2) {
        KFN(pk4_rows16_block)(type, w, stride, b, bbytes, tile + b / 2, 0, nt, ev);
        KFN(pk4_rows16_block)(type, w, stride, b + 1, bbytes, tile + b / 2, 1, nt, od);
    }
    if (b < nblocks) KFN(pk4_rows16_block)(type, w, stride, b, bbytes, tile + b / 2, 0, nt, ev);
    for (int tk = 0; tk < nt; tk++) {
        __m512 v = _mm512_add_ps(ev[tk], od[tk]);
        _mm512_storeu_ps(o + (size_t)tk * ostride, _mm512_shuffle_f32x4(v, v, 0xD8));   /* rows back in order */
    }
}
#else
/* AVX2 has neither 512-bit vectors nor broadcast operands: pk4_row does all quartet rows
 * (TF_PK_TYPE never calls this under AVX2). */
TF_INLINE void KFN(pk4_rows16)(int type, const uint8_t *w, size_t stride, int nblocks, int bbytes, const tf_pack_group *tile,
                               int nt, float *o, size_t ostride) {}
#endif

/* Weight rows are fetched ~3 KB ahead, as in the row kernels (prefetch_ahead). */
#undef TF_PK_TYPE
#define TF_PK_TYPE(TYPE, PER, BB)                                                              \
    for (int t0 = 0; t0 < ntok;) {                                                             \
        int left = ntok - t0;                                                                  \
        int quad = pk_is_quartet(ntok, t0), two = left > 8 && !pk_is_quartet(ntok, t0 + 8);   \
        int nt = two ? (left < 16 ? left : 16) : (left < 8 ? left : 8);                        \
        const tf_pack_group *tile = (const tf_pack_group *)packed + (size_t)(t0 / 8) * G;      \
        const int ahead = rows_ahead(stride);                                                  \
        int r = 0;                                                                             \
        if (quad && K_VNNI && (TYPE == TF_TYPE_Q4_0 || TYPE == TF_TYPE_Q5_0 || TYPE == TF_TYPE_Q8_0))   \
            for (; r + 16 <= nrows; r += 16) {                                                 \
                for (int k = 0; k < 16; k++) prefetch_ahead(w + (size_t)(r + k) * stride, stride, ahead); \
                KFN(pk4_rows16)(TYPE, w + (size_t)r * stride, stride, n / PER, BB, tile, nt,          \
                                out + (size_t)t0 * ostride + r, ostride);                       \
            }                                                                                  \
        for (; r < nrows; r++) {                                                               \
            const uint8_t *row = w + (size_t)r * stride;                                       \
            float *o = out + (size_t)t0 * ostride + r;                                         \
            if (t0 == 0) prefetch_ahead(row, stride, ahead);   /* later tiles find it cached */ \
            if (two) KFN(pk_row)(TYPE, row, n / PER, BB, tile, G, 2, nt, o, ostride);               \
            else if (quad) KFN(pk4_row)(TYPE, row, n / PER, BB, tile, nt, o, ostride);             \
            else KFN(pk_row)(TYPE, row, n / PER, BB, tile, G, 1, nt, o, ostride);                   \
        }                                                                                      \
        t0 += nt;                                                                              \
    }                                                                                          \
    return 0;

static int KFN(gemm_packed)(int type, int n, int nrows, const void *wrows, size_t stride,
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
    case TF_TYPE_Q2_K: TF_PK_TYPE(TF_TYPE_Q2_K, 256, 84)
    case TF_TYPE_Q3_K: TF_PK_TYPE(TF_TYPE_Q3_K, 256, 110)
    case TF_TYPE_IQ2_XXS: TF_PK_TYPE(TF_TYPE_IQ2_XXS, 256, 66)
    case TF_TYPE_IQ2_XS: TF_PK_TYPE(TF_TYPE_IQ2_XS, 256, 74)
    case TF_TYPE_IQ2_S: TF_PK_TYPE(TF_TYPE_IQ2_S, 256, 82)
    case TF_TYPE_IQ3_XXS: TF_PK_TYPE(TF_TYPE_IQ3_XXS, 256, 98)
    case TF_TYPE_IQ3_S: TF_PK_TYPE(TF_TYPE_IQ3_S, 256, 110)
    case TF_TYPE_IQ1_S: TF_PK_TYPE(TF_TYPE_IQ1_S, 256, 50)
    case TF_TYPE_IQ1_M: TF_PK_TYPE(TF_TYPE_IQ1_M, 256, 56)
    case TF_TYPE_IQ4_XS: TF_PK_TYPE(TF_TYPE_IQ4_XS, 256, 136)
    case TF_TYPE_IQ4_NL: TF_PK_TYPE(TF_TYPE_IQ4_NL, 32, 18)
    case TF_TYPE_MXFP4: TF_PK_TYPE(TF_TYPE_MXFP4, 32, 17)
    case TF_TYPE_TQ1_0: TF_PK_TYPE(TF_TYPE_TQ1_0, 256, 54)
    case TF_TYPE_TQ2_0: TF_PK_TYPE(TF_TYPE_TQ2_0, 256, 66)
    default: return -1;
    }
}

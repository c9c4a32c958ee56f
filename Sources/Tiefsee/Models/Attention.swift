import Foundation
import CKernels

/// Grouped-query attention (Llama, Mistral, Qwen2/3, Mixtral, Qwen-MoE): q/k/v projections
/// (with bias for Qwen2), optional per-head RMSNorm on q and k (Qwen3), rotary embeddings,
/// causal softmax attention over the cache, output projection. With numKVHeads == numHeads
/// it is plain multi-head attention.
public final class GroupedQueryAttention: AttentionBlock {
    /// Each cached row is nKV heads of headDim values: quantized caches need headDim % 32 == 0.
    public func cacheRowAlignment() -> Int? { headDim }
    let wq: Linear, wk: Linear, wv: Linear, wo: Linear
    let qNorm: RMSNorm?, kNorm: RMSNorm?
    let rope: Rope
    let nHeads: Int, nKV: Int, headDim: Int
    let scale: Float

    public init(wq: Linear, wk: Linear, wv: Linear, wo: Linear, qNorm: RMSNorm?, kNorm: RMSNorm?, rope: Rope,
                numHeads: Int, numKVHeads: Int, headDim: Int) {
        self.wq = wq; self.wk = wk; self.wv = wv; self.wo = wo
        self.qNorm = qNorm; self.kNorm = kNorm; self.rope = rope
        nHeads = numHeads; nKV = numKVHeads; self.headDim = headDim
        scale = 1 / Float(headDim).squareRoot()
    }

    public func forward(_ x: UnsafePointer<Float>, segments: [BatchSegment], layer: Int, out: UnsafeMutablePointer<Float>) {
        let hd = headDim, qw = nHeads * hd, kw = nKV * hd
        let T = segments.reduce(0) { $0 + $1.count }
        let q = FloatBuffer(count: T * qw, zeroed: false)
        let k = FloatBuffer(count: T * kw, zeroed: false)
        let v = FloatBuffer(count: T * kw, zeroed: false)
        Linear.forward([(wq, q.p), (wk, k.p), (wv, v.p)], x: x, rows: T)
        if let qn = qNorm { qn.forward(q.p, rows: T * nHeads, out: q.p) }
        if let kn = kNorm { kn.forward(k.p, rows: T * nKV, out: k.p) }
        let half = rope.dim / 2
        var cosT = [Float](repeating: 0, count: half), sinT = cosT
        for seg in segments {
            for r in seg.rows {
                let pos = seg.position(ofRow: r)
                rope.table(position: pos, cos: &cosT, sin: &sinT)
                rope.apply(q.p + r * qw, nHeads: nHeads, headStride: hd, cos: cosT, sin: sinT)
                rope.apply(k.p + r * kw, nHeads: nKV, headStride: hd, cos: cosT, sin: sinT)
                seg.cache.storeKey(layer, pos, k.p + r * kw)
                seg.cache.storeValue(layer, pos, v.p + r * kw)
            }
        }
        let attn = FloatBuffer(count: T * qw, zeroed: true)
        let group = nHeads / nKV
        let sc = scale
        // Work items: (row, key/value head) pairs over the whole batch; each row knows its
        // segment, and the `group` query heads sharing a key/value head read its cache together.
        var segOfRow = [Int](repeating: 0, count: T)
        for (i, s) in segments.enumerated() { for r in s.rows { segOfRow[r] = i } }
        let maxLen = segments.map { $0.cache.length + $0.count }.max() ?? 0
        let kvHeads = nKV
        ThreadPool.shared.parallelFor(T * kvHeads) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: maxLen * group)
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 64 * hd)
            defer { scores.deallocate(); scratch.deallocate() }
            for item in range {
                let r = item / kvHeads, kvh = item % kvHeads
                let seg = segments[segOfRow[r]]
                let cache = seg.cache
                let h0 = kvh * group
                let n = seg.position(ofRow: r) + 1  // causal: positions 0 ... pos
                if cache.isF32 {
                    let kc = cache.keys[layer].p, vc = cache.values[layer].p
                    tf_attend_heads(Int32(n), Int32(hd), Int32(group), q.p + r * qw + h0 * hd, hd, kc + kvh * hd, kw,
                                    vc + kvh * hd, kw, sc, scores, attn.p + r * qw + h0 * hd, hd)
                } else {
                    // A head's values start at a block boundary (hd is a multiple of 32 for q8_0/q4_0).
                    tf_attend_heads_kv(Int32(n), Int32(hd), Int32(group), q.p + r * qw + h0 * hd, hd,
                                       cache.keyRow(layer, 0) + cache.keyType.rowBytes(kvh * hd), cache.keyType.ggmlID, cache.keyRowBytes,
                                       cache.valueRow(layer, 0) + cache.valueType.rowBytes(kvh * hd), cache.valueType.ggmlID, cache.valueRowBytes,
                                       sc, scores, scratch, attn.p + r * qw + h0 * hd, hd)
                }
            }
        }
        wo.forward(attn.p, rows: T, out: out)
    }
}

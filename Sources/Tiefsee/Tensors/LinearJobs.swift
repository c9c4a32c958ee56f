import CKernels

/// Rows of activations several matrix products read (`LinearJob.input` indexes a list of these).
public struct LinearInput {
    public let x: UnsafePointer<Float>
    public let rows: Int
    public init(_ x: UnsafePointer<Float>, rows: Int) { self.x = x; self.rows = rows }
}

/// One product y = x·Wᵀ of a `Linear.forward(jobs:inputs:)` call: `out` receives
/// `inputs[input].rows` × `linear.outFeatures` values.
public struct LinearJob {
    public let linear: Linear
    public let input: Int
    public let out: UnsafeMutablePointer<Float>
    public init(_ linear: Linear, input: Int, out: UnsafeMutablePointer<Float>) {
        self.linear = linear; self.input = input; self.out = out
    }
}

extension Linear {
    /// Called with every product's matrix and f32 input rows before it runs (`tiefsee imatrix`
    /// collects activation statistics with it); nil in normal use.
    public nonisolated(unsafe) static var activationObserver: ((Linear, LinearInput) -> Void)?

    /// In a decode step (`Linear.decodeStep`), up to this many quantized activation rows (a few
    /// sequences, or one token's two-level activations) go through the row kernels, which read
    /// and decode each weight block once for all rows (`tf_vec_dot_rows_n`); more rows, and any
    /// prompt chunk, go through a matrix kernel: the panel kernel (`tf_gemm_q8a`, every quantized
    /// type but Q2_K) or the packed one (Q2_K). The panel kernel decodes 16 weight rows into a
    /// panel once per call and tile, which few tokens do not pay back: measured on VNNI (ns per
    /// weight block for all rows, 2048 x 2048, 1 thread, `scripts/ab_kernels.sh` and the panel
    /// timing of `bench --kernels`), Q4_K row kernels 6.2 / 7.3 / 10.2 for 1 / 2 / 4 rows against
    /// the panel's 17.7 / 18.5 / 21.0, Q6_K 7.5 / 8.9 / 12.0; AVX2 Q4_K 9.4 / 13.0 / 14.5 against
    /// 20.9 / 25.2 / 32.3. The row kernels also win at 4 rows for Q4_0, IQ1_S and IQ2_XXS on AVX2
    /// and tie for Q8_0; IQ4_NL and VNNI IQ2_XXS would be faster in the panel from 3 rows, but one
    /// limit for every type keeps a batch's results independent of the model's type mix.
    /// Each row's result is then bit-identical to the single-row kernel's, so a sequence decoded
    /// alongside others (up to the limit) gets exactly the tokens it gets alone. Prompt chunks keep
    /// the matrix kernel whatever their length, so a prompt token's logits stay the same whether a
    /// cached prefix left 2 or 200 tokens to read.
    static var rowKernelMaxRows: Int { 4 }

    /// Runs `body` as one decode step (every sequence brings one token) when `on`: see
    /// `rowKernelMaxRows`. Thread-local, so models running on other threads are not affected.
    public static func decodeStep<R>(_ on: Bool, _ body: () throws -> R) rethrows -> R {
        let saved = tf_set_decode_step(on ? 1 : 0)
        defer { _ = tf_set_decode_step(saved) }
        return try body()
    }

    /// How a product's activations are prepared, mirroring `forward(_:x:rows:)`'s choice.
    private enum JobMode: Hashable { case f32, q8, q8Precise, exact }

    private var jobMode: JobMode {
        if wantsExact { return .exact }
        if activation == .f32 { return .f32 }
        return (preciseActivations || Linear.preciseAllActivations) && activation == .q8_0 ? .q8Precise : .q8
    }

    /// Products that read *different* inputs (the routed experts of a MoE layer, each with its
    /// own tokens; MLA's per-head absorbed projections) in one parallel loop over all their
    /// output rows. `forward(_:x:rows:)` is the special case of one shared input. In decode each
    /// product is a few hundred microseconds; one loop instead of one per product saves the
    /// dispatches, wake-ups and tail waits, and keeps both cores busy across products.
    ///
    /// Each input is quantized once per activation format however many products read it; the
    /// kernels, activation formats and two-level (`preciseActivations`) handling are those of
    /// the single-product path, so results are bit-identical to calling `forward` per product.
    public static func forward(jobs: [LinearJob], inputs: [LinearInput], pool: ThreadPool = .shared) {
        if let observe = activationObserver { for j in jobs { observe(j.linear, inputs[j.input]) } }
        // Debug/accuracy mode products keep their own (dequantizing) path.
        for j in jobs where j.linear.jobMode == .exact {
            j.linear.forwardDequantized(inputs[j.input].x, rows: inputs[j.input].rows, out: j.out, pool: pool)
        }
        let fused = jobs.filter { $0.linear.jobMode != .exact && inputs[$0.input].rows > 0 }
        guard !fused.isEmpty else { return }

        // 1. Quantize every (input, mode) pair once. Two-level inputs take two activation rows
        //    per row (8-bit main, 8-bit residual) that the kernel decodes each weight block for.
        struct Prepared { var data: UnsafeRawPointer; var stride: Int; var rows: Int }
        var prepared = [Int: Prepared]()   // key: input * 4 + mode
        func key(_ j: LinearJob) -> Int {
            switch j.linear.jobMode { case .f32: return j.input * 4; case .q8: return j.input * 4 + 1; default: return j.input * 4 + 2 }
        }
        var toQuantize = [(key: Int, input: LinearInput, n: Int, precise: Bool, offset: Int)]()
        var scratchBytes = 0
        for j in fused where prepared[key(j)] == nil {
            let inp = inputs[j.input], n = j.linear.inFeatures
            switch j.linear.jobMode {
            case .f32:
                prepared[key(j)] = Prepared(data: UnsafeRawPointer(inp.x), stride: n * 4, rows: inp.rows)
            case .q8, .q8Precise:
                let precise = j.linear.jobMode == .q8Precise
                let aBytes = ActivationQuant.q8_0.byteCount(elements: n)
                prepared[key(j)] = Prepared(data: UnsafeRawPointer(bitPattern: 1)!, stride: aBytes, rows: precise ? 2 * inp.rows : inp.rows)
                toQuantize.append((key(j), inp, n, precise, scratchBytes))
                scratchBytes += (precise ? 2 : 1) * inp.rows * aBytes
            case .exact: break
            }
        }
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(scratchBytes, 1), alignment: 64)
        defer { scratch.deallocate() }
        // One unit of quantization work per activation row, over all inputs.
        var rowStarts = [0]
        for q in toQuantize {
            prepared[q.key]!.data = UnsafeRawPointer(scratch + q.offset)
            rowStarts.append(rowStarts.last! + q.input.rows)
        }
        let quantizeRows = { (r: Range<Int>) in
            var i = 0
            for g in r {
                while g >= rowStarts[i + 1] { i += 1 }
                let q = toQuantize[i], t = g - rowStarts[i]
                let aBytes = ActivationQuant.q8_0.byteCount(elements: q.n)
                let src = q.input.x + t * q.n
                if q.precise {
                    let dst = scratch + q.offset + 2 * t * aBytes
                    tf_quantize_row_q8_0_residual(src, dst, dst + aBytes, Int32(q.n))
                } else {
                    quantizeActivations(src, count: q.n, format: .q8_0, into: scratch + q.offset + t * aBytes)
                }
            }
        }
        let totalQuantRows = rowStarts.last!
        if totalQuantRows >= 4 { pool.parallelFor(totalQuantRows, quantizeRows) } else { quantizeRows(0..<totalQuantRows) }
        // More than `rowKernelMaxRows` quantized rows go through the packed matrix kernel
        // (tokens in vector lanes); fewer, through the row kernels (see `rowKernelMaxRows`).
        // Weight types the panel kernel takes read the activations as they are, with their sums
        // per group (`PanelSums`); the others (Q2_K) read them packed.
        var packs = [Int: PackedActivations]()
        var panelSums = [Int: PanelSums]()
        let rowKernelRows = tf_decode_step() != 0 ? Linear.rowKernelMaxRows : 1
        for q in toQuantize where prepared[q.key]!.rows > rowKernelRows {
            let p = prepared[q.key]!
            let readers = fused.filter { key($0) == q.key }
            if readers.contains(where: { $0.linear.usesPanelKernel }) {
                panelSums[q.key] = PanelSums(p.data, n: q.n, rows: p.rows, rowBytes: p.stride)
            }
            if readers.contains(where: { !$0.linear.usesPanelKernel }) {
                packs[q.key] = PackedActivations(p.data, n: q.n, rows: p.rows, rowBytes: p.stride)
            }
        }

        // f32 weights with two or more rows: the packed f32 kernel (tokens in vector lanes), each
        // input packed once however many products read it.
        var f32Packs = [Int: UnsafeMutableRawPointer]()
        defer { for p in f32Packs.values { p.deallocate() } }
        for j in fused where j.linear.jobMode == .f32 && j.linear.weight.type == .f32 && f32Packs[j.input] == nil {
            let inp = inputs[j.input], n = j.linear.inFeatures
            guard inp.rows >= 2 else { continue }
            let buf = UnsafeMutableRawPointer.allocate(byteCount: tf_gemm_f32_pack_bytes(Int32(n), Int32(inp.rows)), alignment: 64)
            tf_gemm_f32_pack(Int32(n), inp.x, n, Int32(inp.rows), buf.assumingMemoryBound(to: Float.self))
            f32Packs[j.input] = buf
        }

        // 2. Where each product writes: straight to `out`, or (two-level) to a pair buffer whose
        //    two rows per token are summed afterwards.
        struct Part {
            let l: Linear; let x: Prepared; let packed: PackedActivations?; let sums: PanelSums?; let f32Packed: UnsafeMutableRawPointer?
            let out: UnsafeMutablePointer<Float>; let pairOffset: Int?
        }
        var parts = [Part]()
        var pairFloats = 0
        for j in fused {
            let p = prepared[key(j)]!
            var pairOffset: Int? = nil
            if j.linear.jobMode == .q8Precise {
                pairOffset = pairFloats
                pairFloats += p.rows * j.linear.outFeatures
            }
            let f32p = j.linear.jobMode == .f32 && j.linear.weight.type == .f32 ? f32Packs[j.input] : nil
            let sums = j.linear.usesPanelKernel ? panelSums[key(j)] : nil
            parts.append(Part(l: j.linear, x: p, packed: sums == nil ? packs[key(j)] : nil, sums: sums, f32Packed: f32p,
                              out: j.out, pairOffset: pairOffset))
        }
        let pairs = FloatBuffer(count: pairFloats, zeroed: false)

        // 3. One loop over every product's output rows, in tiles of 16 rows (see `forward`).
        var starts = [0]
        for p in parts { starts.append(starts.last! + p.l.outFeatures) }
        let total = starts.last!, tile = 16
        pool.parallelFor(total, grain: tile) { range in
            var g = range.lowerBound
            var i = 0
            while g < range.upperBound {
                while g >= starts[i + 1] { i += 1 }
                let p = parts[i], l = p.l
                // Up to 8 tokens (one activation tile): the whole run of this product's rows in the
                // range in one call (one activation record per call, prefetch across rows); more
                // tokens: tiles of 16 weight rows, which stay in cache while every token tile passes.
                let lo = g - starts[i], cnt = min(p.x.rows <= 8 ? Int.max : tile, range.upperBound - g, starts[i + 1] - g)
                let w = l.weight.data + lo * l.rowBytes
                let out = p.pairOffset.map { pairs.p + $0 } ?? p.out
                if p.x.rows == 1 {
                    _ = tf_vec_dot_rows(l.typeCode, Int32(l.inFeatures), Int32(cnt), w, l.rowBytes, p.x.data, out + lo)
                } else if let ps = p.sums {
                    _ = tf_gemm_q8a(l.typeCode, Int32(l.inFeatures), Int32(cnt), w, l.rowBytes, p.x.data, p.x.stride, ps.data,
                                    Int32(p.x.rows), out + lo, l.outFeatures)
                } else if p.packed == nil && p.f32Packed == nil && l.jobMode != .f32 {
                    _ = tf_vec_dot_rows_n(l.typeCode, Int32(l.inFeatures), Int32(cnt), w, l.rowBytes, p.x.data, p.x.stride,
                                          Int32(p.x.rows), out + lo, l.outFeatures)
                } else if let fp = p.f32Packed {
                    _ = tf_gemm_f32_packed(Int32(l.inFeatures), Int32(cnt), w.assumingMemoryBound(to: Float.self), l.rowBytes,
                                           fp.assumingMemoryBound(to: Float.self), Int32(p.x.rows), out + lo, l.outFeatures)
                } else if let pk = p.packed {
                    _ = tf_gemm_packed(l.typeCode, Int32(l.inFeatures), Int32(cnt), w, l.rowBytes, pk.data, Int32(p.x.rows),
                                       out + lo, l.outFeatures)
                } else {
                    _ = tf_gemm_rows(l.typeCode, Int32(l.inFeatures), Int32(cnt), w, l.rowBytes, p.x.data, p.x.stride,
                                     Int32(p.x.rows), out + lo, l.outFeatures)
                }
                g += cnt
            }
        }
        for p in parts {
            var rows = p.x.rows
            if let off = p.pairOffset {
                rows /= 2
                let o = p.l.outFeatures, pair = pairs.p + off
                for t in 0..<rows {
                    for c in 0..<o { p.out[t * o + c] = pair[2 * t * o + c] + pair[(2 * t + 1) * o + c] }
                }
            }
            p.l.addBias(p.out, rows: rows)
        }
    }
}

import Foundation
import XCTest
import CKernels
import Tiefsee

/// Offsets of the f16 scale fields in each block (d, and dmin/m where present).
private let f16Fields: [TensorType: [Int]] = [
    .q4_0: [0], .q4_1: [0, 2], .q5_0: [0], .q5_1: [0, 2], .q8_0: [0],
    .q4_K: [0, 2], .q5_K: [0, 2], .q6_K: [208],
]
private let quantTypes: [TensorType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K]

/// Random weight rows: random bytes, scale fields set to `scale` (or random small values).
private func randomRows(_ type: TensorType, n: Int, rows: Int, scale: Float?, rng: inout SplitMix) -> [UInt8] {
    let rowBytes = type.byteCount(elements: n)!
    var b = (0..<rowBytes * rows).map { _ in UInt8.random(in: 0...255, using: &rng) }
    for blk in 0..<(rowBytes * rows / type.blockBytes) {
        for off in f16Fields[type]! {
            let v = scale ?? Float.random(in: 0.001...0.02, using: &rng) * (Bool.random(using: &rng) ? 1 : -1)
            let h = f32ToF16(v)
            b[blk * type.blockBytes + off] = UInt8(h & 0xFF)
            b[blk * type.blockBytes + off + 1] = UInt8(h >> 8)
        }
    }
    return b
}

private func dequantized(_ type: TensorType, _ bytes: UnsafeRawPointer, n: Int) -> [Float] {
    var out = [Float](repeating: 0, count: n)
    out.withUnsafeMutableBufferPointer { try! dequantizeRow(type, bytes, $0.baseAddress!, count: n) }
    return out
}

/// Worst-case error of the dot caused by quantizing activations: each value moves by at most half
/// a step (amax/254 of its block), so |err| <= sum over blocks of sum|w| * amax/254.
private func activationErrorBound(w: [Float], x: [Float], block: Int) -> Double {
    var bound = 0.0
    for b in stride(from: 0, to: x.count, by: block) {
        let amax = x[b..<b + block].map { abs(Double($0)) }.max()!
        let sw = w[b..<b + block].reduce(0.0) { $0 + abs(Double($1)) }
        bound += sw * amax / 254
    }
    return bound
}

/// Runs `body` once per kernel instruction set this CPU has (AVX2, and AVX-512 VNNI where present),
/// with the dispatcher switched to it; restores the choice afterwards.
func forEachKernelISA(_ body: (String) throws -> Void) rethrows {
    let saved = tf_kernel_isa()
    defer { _ = tf_set_kernel_isa(saved) }
    for isa in [Int32(TF_ISA_AVX2), Int32(TF_ISA_AVX512_VNNI)] {
        _ = tf_set_kernel_isa(isa)
        guard tf_kernel_isa() == isa else { continue }
        try body(isa == TF_ISA_AVX2 ? "AVX2" : "AVX-512 VNNI")
    }
}

final class QuantDotTests: XCTestCase {
    func testActivationQuantizationAVXMatchesScalar() {
        var rng = SplitMix(seed: 1)
        for n in [256, 1024, 4864] {
            var x = (0..<n).map { _ in Float.random(in: -3...3, using: &rng) }
            for i in 0..<32 { x[i] = 0 }                 // an all-zero block
            for i in 40..<48 { x[i] = 1e-30 }            // tiny values
            x[100] = 1e4                                  // an outlier
            let f = ActivationQuant.q8_0
            var a = [UInt8](repeating: 0, count: f.byteCount(elements: n)), r = a
            x.withUnsafeBufferPointer { xp in
                a.withUnsafeMutableBytes { quantizeActivations(xp.baseAddress!, count: n, format: f, into: $0.baseAddress!) }
                r.withUnsafeMutableBytes { tf_quantize_row_q8_0_ref(xp.baseAddress!, $0.baseAddress!, Int32(n)) }
            }
            XCTAssertEqual(a, r, "n=\(n)")
            // spot-check the layout of the first non-zero block
            a.withUnsafeBytes { p in
                let d = p.load(fromByteOffset: 40, as: Float.self), s = p.load(fromByteOffset: 44, as: Float.self)
                let q = (0..<32).map { Int(p.load(fromByteOffset: 48 + $0, as: Int8.self)) }
                let amax = x[32..<64].map { abs($0) }.max()!
                XCTAssertEqual(d, amax / 127)
                XCTAssertEqual(s, d * Float(q.reduce(0, +)))
                XCTAssertEqual(q.map { abs($0) }.max(), 127)
                for j in 0..<32 { XCTAssertEqual(Float(q[j]) * d, x[32 + j], accuracy: d / 2 * 1.0001) }
            }
        }
    }

    /// With weight scales 1 and integer activations whose block maximum is 127, quantization is
    /// lossless and every partial sum is an integer below 2^24: AVX2 and scalar kernels must
    /// return exactly the integer dot of the dequantized weights and the activations.
    func testQuantizedDotsExactOnIntegers() {
        forEachKernelISA { isa in
        var rng = SplitMix(seed: 2)
        let n = 512
        for type in quantTypes {
            let f = activationFormat(for: type)!
            let w = randomRows(type, n: n, rows: 1, scale: 1, rng: &rng)
            var x = (0..<n).map { _ in Float(Int.random(in: -3...3, using: &rng)) }
            for b in stride(from: 0, to: n, by: 32) { x[b + Int.random(in: 0..<32, using: &rng)] = Bool.random(using: &rng) ? 127 : -127 }
            let xq = try! quantizeActivations(x, for: type)
            w.withUnsafeBytes { wp in
                let wd = dequantized(type, wp.baseAddress!, n: n)
                let exact = zip(wd, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                XCTAssertLessThan(abs(exact), 16_777_216, "\(type): test values too large to be exact")
                xq.withUnsafeBytes { xp in
                    let a = dotRow(type: type, row: wp.baseAddress!, xq: xp.baseAddress!, n: n)
                    let r = dotRowReference(type: type, row: wp.baseAddress!, xq: xp.baseAddress!, n: n)
                    XCTAssertEqual(Double(a), exact, "\(type) \(isa) (\(f))")
                    XCTAssertEqual(Double(r), exact, "\(type) scalar reference")
                }
            }
        }
        }
    }

    /// Random weights and activations: AVX2 vs the scalar reference (same integer math; only the
    /// float accumulation order differs) and vs the f32 dot of dequantized weights with the
    /// unquantized activations (bounded by the activation quantization error).
    func testQuantizedDotsRandom() {
        forEachKernelISA { isa in
        var rng = SplitMix(seed: 3)
        for type in quantTypes {
            let f = activationFormat(for: type)!
            for n in [256, 896, 4864].filter({ $0 % type.blockSize == 0 }) {
                let rows = 5
                let w = randomRows(type, n: n, rows: rows, scale: nil, rng: &rng)
                let x = (0..<n).map { _ in Float.random(in: -2...2, using: &rng) * (Float.random(in: 0...1, using: &rng) < 0.02 ? 20 : 1) }
                let xq = try! quantizeActivations(x, for: type)
                let rowBytes = type.byteCount(elements: n)!
                w.withUnsafeBytes { wp in
                    xq.withUnsafeBytes { xp in
                        var multi = [Float](repeating: .nan, count: rows)
                        multi.withUnsafeMutableBufferPointer {
                            dotRows(type: type, rows: wp.baseAddress!, rowStride: rowBytes, count: rows, xq: xp.baseAddress!, n: n, out: $0.baseAddress!)
                        }
                        for r in 0..<rows {
                            let row = wp.baseAddress! + r * rowBytes
                            let wd = dequantized(type, row, n: n)
                            let exact = zip(wd, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                            let mag = zip(wd, x).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
                            let a = dotRow(type: type, row: row, xq: xp.baseAddress!, n: n)
                            let ref = dotRowReference(type: type, row: row, xq: xp.baseAddress!, n: n)
                            XCTAssertEqual(Double(a), Double(ref), accuracy: 2e-6 * mag + 1e-12, "\(type) n=\(n) row \(r): AVX2 vs scalar")
                            let bound = activationErrorBound(w: wd, x: x, block: f.blockSize) * 1.001 + 2e-6 * mag
                            XCTAssertEqual(Double(a), exact, accuracy: bound, "\(type) n=\(n) row \(r): vs f32 dot")
                            XCTAssertEqual(multi[r], a, "\(type) dotRows row \(r) (\(isa))")
                        }
                    }
                }
            }
        }
        }
    }

    func testFloatDots() {
        var rng = SplitMix(seed: 4)
        for n in [0, 1, 7, 37, 896, 1000, 4864] {
            let w = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
            let x = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
            let h = w.map { f32ToF16($0) }, b = w.map { f32ToBF16($0) }
            let wh = h.map { f16ToF32($0) }, wb = b.map { bf16ToF32($0) }
            func exact(_ ww: [Float]) -> (Double, Double) {
                (zip(ww, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }, zip(ww, x).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) })
            }
            x.withUnsafeBytes { xp in
                for (type, vals, bytes) in [(TensorType.f32, w, w.withUnsafeBytes { [UInt8]($0) }),
                                            (.f16, wh, h.withUnsafeBytes { [UInt8]($0) }),
                                            (.bf16, wb, b.withUnsafeBytes { [UInt8]($0) })] {
                    XCTAssertEqual(activationFormat(for: type), .f32)
                    let (e, mag) = exact(vals)
                    bytes.withUnsafeBytes { wp in
                        let a = dotRow(type: type, row: wp.baseAddress ?? UnsafeRawPointer(xp.baseAddress ?? UnsafeRawPointer(bitPattern: 16)!), xq: xp.baseAddress ?? UnsafeRawPointer(bitPattern: 16)!, n: n)
                        XCTAssertEqual(Double(a), e, accuracy: 1e-6 * mag + 1e-30, "\(type) n=\(n)")
                        if n > 0 {
                            let r = dotRowReference(type: type, row: wp.baseAddress!, xq: xp.baseAddress!, n: n)
                            XCTAssertEqual(Double(r), e, accuracy: 1e-7 * mag + 1e-30, "\(type) ref n=\(n)")
                        }
                    }
                }
            }
        }
    }

    func testActivationFormats() {
        XCTAssertEqual(activationFormat(for: .q4_0), .q8_0)
        XCTAssertEqual(activationFormat(for: .q5_1), .q8_0)
        XCTAssertEqual(activationFormat(for: .q8_0), .q8_0)
        XCTAssertEqual(activationFormat(for: .q4_K), .q8_0)
        XCTAssertEqual(activationFormat(for: .q6_K), .q8_0)
        XCTAssertEqual(activationFormat(for: .bf16), .f32)
        XCTAssertEqual(activationFormat(for: .iq2_xxs), .q8_0)
        XCTAssertEqual(activationFormat(for: .q2_K), .q8_0)
        XCTAssertNil(activationFormat(for: .q8_K))
        XCTAssertEqual(ActivationQuant.q8_0.byteCount(elements: 64), 80)
        XCTAssertEqual(ActivationQuant.q8_0.byteCount(elements: 512), 640)
        XCTAssertThrowsError(try quantizeActivations([Float](repeating: 0, count: 256), for: .q8_1))
    }

    /// Rows of the real model's weights (Q8_0, Q5_0, Q4_K, Q6_K) against f32 dots.
    func testRealModelRows() throws {
        let g = try GGUFFile(path: try requireDefaultModel())
        var rng = SplitMix(seed: 5)
        for name in ["output.weight", "blk.0.attn_q.weight", "blk.0.ffn_down.weight", "blk.3.ffn_down.weight",
                     "blk.0.attn_v.weight", "blk.5.attn_q.weight", "blk.11.ffn_down.weight"] {
            let t = try XCTUnwrap(g.tensor(name))
            let f = try XCTUnwrap(activationFormat(for: t.type), "\(name) \(t.type)")
            let n = t.rowLength
            let x = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
            let xq = try quantizeActivations(x, for: t.type)
            var worst = 0.0
            for r in [0, 1, t.rowCount / 2, t.rowCount - 1] {
                var wd = [Float](repeating: 0, count: n)
                try wd.withUnsafeMutableBufferPointer { try dequantizeRows(t, r..<r + 1, into: $0.baseAddress!) }
                let exact = zip(wd, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let mag = zip(wd, x).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
                let a = xq.withUnsafeBytes { dotRow(type: t.type, row: t.data + r * t.rowBytes, xq: $0.baseAddress!, n: n) }
                let bound = activationErrorBound(w: wd, x: x, block: f.blockSize) * 1.001 + 2e-6 * mag
                XCTAssertEqual(Double(a), exact, accuracy: bound, "\(name) row \(r)")
                worst = max(worst, abs(Double(a) - exact) / max(mag, 1e-30))
            }
            print("\(name) \(t.type.rawValue): max |dot - f32 dot| / sum|w x| = \(worst)")
        }
    }

    /// Opt-in throughput numbers (the C kernels are built -O3 even in debug): TIEFSEE_BENCH=1.
    func testKernelThroughput() throws {
        guard ProcessInfo.processInfo.environment["TIEFSEE_BENCH"] == "1" else { throw XCTSkip("set TIEFSEE_BENCH=1") }
        var rng = SplitMix(seed: 6)
        let n = 4864, rows = 896
        for type in quantTypes + [.f16, .bf16, .f32] {
            let w: [UInt8]
            if type.isQuantized { w = randomRows(type, n: n, rows: rows, scale: nil, rng: &rng) }
            else { w = (0..<n * rows * type.blockBytes).map { _ in UInt8.random(in: 0...63, using: &rng) } }
            let x = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
            let xq = try quantizeActivations(x, for: type)
            var out = [Float](repeating: 0, count: rows)
            let rowBytes = type.byteCount(elements: n)!
            let reps = 20
            let t0 = Date()
            for _ in 0..<reps {
                w.withUnsafeBytes { wp in xq.withUnsafeBytes { xp in out.withUnsafeMutableBufferPointer {
                    dotRows(type: type, rows: wp.baseAddress!, rowStride: rowBytes, count: rows, xq: xp.baseAddress!, n: n, out: $0.baseAddress!)
                } } }
            }
            let dt = Date().timeIntervalSince(t0) / Double(reps)
            let gflop = 2.0 * Double(n * rows) / dt / 1e9
            print(String(format: "%@ %dx%d matvec: %.3f ms, %.1f GFLOP/s, %.1f GB/s of weights (1 thread)", type.rawValue, rows, n, dt * 1e3, gflop, Double(w.count) / dt / 1e9))
        }
    }
}

final class GemmTests: XCTestCase {
    /// The prefill matrix kernel gives the same numbers as one dot per (row, token).
    func testGemmMatchesRowDots() throws {
        var rng = SplitMix(seed: 11)
        let rows = 21   // VNNI quartet: 16 rows in the lanes, 5 more
        // 544 = 17 groups: the quartet's last pair has one group (and the even/odd accumulators
        // differ in count).
        for (type, n) in [TensorType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K, .f32, .f16, .bf16].map({ ($0, 512) })
            + [TensorType.q4_0, .q5_0, .q8_0].map({ ($0, 544) }) {
            let rowBytes = type.byteCount(elements: n)!
            // Random weight bytes with sane f16 scales: take real quantized values via random floats.
            let wf = (0..<rows * n).map { _ in Float.random(in: -1...1, using: &rng) }
            let wbytes: [UInt8]
            switch type {
            case .f32: wbytes = wf.withUnsafeBytes { Array($0) }
            case .f16: wbytes = wf.flatMap { v -> [UInt8] in let h = f32ToF16(v); return [UInt8(h & 0xFF), UInt8(h >> 8)] }
            case .bf16: wbytes = wf.flatMap { v -> [UInt8] in let h = f32ToBF16(v); return [UInt8(h & 0xFF), UInt8(h >> 8)] }
            default: wbytes = randomQuantRows(type, n: n, rows: rows, rng: &rng)
            }
            // 3/4: one quartet tile; 7/8: an octet; 13: octet + quartet; 21: two octets + quartet;
            // 24: two octets + octet.
            for ntok in [1, 3, 4, 7, 8, 13, 21, 24] {
                let fmt = activationFormat(for: type)!
                let (xq, aBytes) = randomActivations(type, n: n, ntok: ntok, rng: &rng)
                var gemm = [Float](repeating: 0, count: ntok * rows), dots = gemm
                let unquantized = fmt == .f32
                wbytes.withUnsafeBytes { wp in
                    xq.withUnsafeBytes { qp in
                        gemm.withUnsafeMutableBufferPointer { g in
                            XCTAssertEqual(tf_gemm_rows(Int32(type.ggmlID!), Int32(n), Int32(rows), wp.baseAddress!, rowBytes,
                                                        qp.baseAddress!, aBytes, Int32(ntok), g.baseAddress!, rows), unquantized ? 0 : -1)
                        }
                        for t in 0..<ntok {
                            dots.withUnsafeMutableBufferPointer { d in
                                dotRows(type: type, rows: wp.baseAddress!, rowStride: rowBytes, count: rows,
                                        xq: qp.baseAddress! + t * aBytes, n: n, out: d.baseAddress! + t * rows)
                            }
                        }
                    }
                }
                if unquantized {
                    for i in gemm.indices { XCTAssertEqual(gemm[i], dots[i], "\(type) ntok \(ntok) #\(i)") }
                    continue
                }
                // The packed kernel (tokens in vector lanes) gives the same sums for quantized types.
                var packed = [Float](repeating: .nan, count: ntok * rows)
                let buf = UnsafeMutableRawPointer.allocate(byteCount: tf_gemm_pack_bytes(Int32(n), Int32(ntok)), alignment: 64)
                defer { buf.deallocate() }
                wbytes.withUnsafeBytes { wp in
                    xq.withUnsafeBytes { qp in
                        tf_gemm_pack(Int32(n), qp.baseAddress!, aBytes, Int32(ntok), buf)
                        packed.withUnsafeMutableBufferPointer { g in
                            XCTAssertEqual(tf_gemm_packed(Int32(type.ggmlID!), Int32(n), Int32(rows), wp.baseAddress!, rowBytes,
                                                          buf, Int32(ntok), g.baseAddress!, rows), 0)
                        }
                    }
                }
                // Same integer sums, other float steps (zero points in integers, two accumulators):
                // the difference is the rounding of partial sums larger than a result that may
                // cancel to near zero, hence a bound not relative to the result alone.
                for i in packed.indices {
                    XCTAssertEqual(packed[i], dots[i], accuracy: 3e-4 * max(1, abs(dots[i])), "packed \(type) ntok \(ntok) #\(i)")
                }
                // Batch invariance: the last two rows alone give bit-identical outputs.
                if ntok >= 2 {
                    var tail = [Float](repeating: .nan, count: 2 * rows)
                    wbytes.withUnsafeBytes { wp in
                        xq.withUnsafeBytes { qp in
                            tf_gemm_pack(Int32(n), qp.baseAddress! + (ntok - 2) * aBytes, aBytes, 2, buf)
                            tail.withUnsafeMutableBufferPointer { g in
                                _ = tf_gemm_packed(Int32(type.ggmlID!), Int32(n), Int32(rows), wp.baseAddress!, rowBytes, buf, 2, g.baseAddress!, rows)
                            }
                        }
                    }
                    XCTAssertEqual(tail, Array(packed[(ntok - 2) * rows..<ntok * rows]), "\(type): rows \(ntok - 2)... alone vs in \(ntok)")
                }
            }
        }
    }

    /// The AVX-512 VNNI kernels compute the same integer sums with fewer instructions and the same
    /// float steps: every output, row dots and the packed matrix kernel alike, is bit-identical
    /// to the AVX2 one (row lengths with partial 8-block groups, 544 = 17 groups, and 1408 = 5.5
    /// superblocks).
    func testKernelInstructionSetsAgree() throws {
        let saved = tf_set_kernel_isa(Int32(TF_ISA_AVX512_VNNI))
        defer { _ = tf_set_kernel_isa(saved) }
        guard tf_kernel_isa() == TF_ISA_AVX512_VNNI else {
            throw XCTSkip("this CPU has no AVX-512 VNNI: only the AVX2 kernels exist here")
        }
        var rng = SplitMix(seed: 12)
        for type in quantTypes {
            for n in [256, 544, 896, 1408, 4864].filter({ $0 % type.blockSize == 0 }) {
                let rows = 19, rowBytes = type.byteCount(elements: n)!   // VNNI quartet: 16 rows in the lanes, 3 more
                let w = randomQuantRows(type, n: n, rows: rows, rng: &rng)
                for ntok in [1, 2, 4, 8, 13] {
                    let (xq, aBytes) = randomActivations(type, n: n, ntok: ntok, rng: &rng)
                    var results: [[Float]] = []
                    let buf = UnsafeMutableRawPointer.allocate(byteCount: tf_gemm_pack_bytes(Int32(n), Int32(ntok)), alignment: 64)
                    defer { buf.deallocate() }
                    for isa in [Int32(TF_ISA_AVX2), Int32(TF_ISA_AVX512_VNNI)] {
                        _ = tf_set_kernel_isa(isa)
                        var out = [Float](repeating: .nan, count: 2 * ntok * rows)
                        w.withUnsafeBytes { wp in
                            xq.withUnsafeBytes { qp in
                                out.withUnsafeMutableBufferPointer { o in
                                    for t in 0..<ntok {
                                        dotRows(type: type, rows: wp.baseAddress!, rowStride: rowBytes, count: rows,
                                                xq: qp.baseAddress! + t * aBytes, n: n, out: o.baseAddress! + t * rows)
                                    }
                                    if ntok >= 2 {
                                        tf_gemm_pack(Int32(n), qp.baseAddress!, aBytes, Int32(ntok), buf)
                                        _ = tf_gemm_packed(Int32(type.ggmlID!), Int32(n), Int32(rows), wp.baseAddress!, rowBytes,
                                                           buf, Int32(ntok), o.baseAddress! + ntok * rows, rows)
                                    }
                                }
                            }
                        }
                        if ntok < 2 { out.removeLast(ntok * rows) }
                        XCTAssertFalse(out.contains { $0.isNaN }, "\(type) n=\(n) ntok=\(ntok)")
                        results.append(out)
                    }
                    XCTAssertEqual(results[0], results[1], "\(type) n=\(n) ntok=\(ntok): AVX2 vs AVX-512 VNNI")
                }
            }
        }
    }

    /// The row kernels for 2-4 activation rows at once (batched decode) give each row exactly
    /// what the single-row kernel gives it alone, for every quantized type and both instruction
    /// sets, so a sequence decoded alongside others gets its own tokens bit for bit.
    func testRowKernelsForSeveralRowsAreBitIdenticalToOneRow() throws {
        var rng = SplitMix(seed: 31)
        let rows = 13
        let standard: [TensorType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K]
        var checked = 0
        for type in standard + lowBitTypes {
            // whole groups of eight 32-blocks, and a last partial group
            for n in type.blockSize == 32 ? [256, 288] : [512, 768] {
                let rowBytes = type.byteCount(elements: n)!
                let w = standard.contains(type) ? randomQuantRows(type, n: n, rows: rows, rng: &rng)
                                                : randomLowBitRows(type, n: n, rows: rows, rng: &rng)
                let (xq, aBytes, _) = randomQ8A(n: n, ntok: 4, rng: &rng)
                try forEachKernelISA { isa in
                    var single = [Float](repeating: .nan, count: 4 * rows)
                    w.withUnsafeBytes { wp in
                        xq.withUnsafeBytes { qp in
                            single.withUnsafeMutableBufferPointer { o in
                                for t in 0..<4 {
                                    XCTAssertEqual(tf_vec_dot_rows(Int32(type.ggmlID!), Int32(n), Int32(rows), wp.baseAddress!, rowBytes,
                                                                   qp.baseAddress! + t * aBytes, o.baseAddress! + t * rows), 0)
                                }
                            }
                        }
                    }
                    for ntok in 2...4 {
                        var multi = [Float](repeating: .nan, count: ntok * rows)
                        w.withUnsafeBytes { wp in
                            xq.withUnsafeBytes { qp in
                                multi.withUnsafeMutableBufferPointer { o in
                                    XCTAssertEqual(tf_vec_dot_rows_n(Int32(type.ggmlID!), Int32(n), Int32(rows), wp.baseAddress!, rowBytes,
                                                                     qp.baseAddress!, aBytes, Int32(ntok), o.baseAddress!, rows), 0)
                                }
                            }
                        }
                        XCTAssertEqual(multi, Array(single[0..<ntok * rows]), "\(type) n=\(n) ntok=\(ntok) \(isa)")
                        XCTAssertFalse(multi.contains { !$0.isFinite }, "\(type) n=\(n) ntok=\(ntok) \(isa)")
                        checked += 1
                    }
                }
            }
        }
        XCTAssertGreaterThanOrEqual(checked, (8 + lowBitTypes.count) * 2 * 3)
        // Unquantized weights and a row count outside 2...4 are refused, not guessed at.
        var o = [Float](repeating: 0, count: 8)
        XCTAssertEqual(tf_vec_dot_rows_n(Int32(TensorType.f16.ggmlID!), 32, 1, [UInt8](repeating: 0, count: 64), 64,
                                         [UInt8](repeating: 0, count: 160), 40, 2, &o, 1), -1)
        XCTAssertEqual(tf_vec_dot_rows_n(Int32(TensorType.q8_0.ggmlID!), 32, 1, [UInt8](repeating: 0, count: 34), 34,
                                         [UInt8](repeating: 0, count: 240), 40, 5, &o, 1), -1)
    }

    /// `ntok` rows of random activations in [-2, 2] prepared for `type` (Q8A, or f32 for
    /// unquantized weights): the bytes and the bytes per row.
    func randomActivations(_ type: TensorType, n: Int, ntok: Int, rng: inout SplitMix) -> ([UInt8], Int) {
        let x = (0..<ntok * n).map { _ in Float.random(in: -2...2, using: &rng) }
        let fmt = activationFormat(for: type)!
        let aBytes = fmt.byteCount(elements: n)
        var xq = [UInt8](repeating: 0, count: ntok * aBytes)
        x.withUnsafeBufferPointer { xp in
            xq.withUnsafeMutableBytes { q in
                for t in 0..<ntok { quantizeActivations(xp.baseAddress! + t * n, count: n, format: fmt, into: q.baseAddress! + t * aBytes) }
            }
        }
        return (xq, aBytes)
    }
}

/// Quantized rows with valid scales: random bytes, scale fields set to small f16 values.
func randomQuantRows(_ type: TensorType, n: Int, rows: Int, rng: inout SplitMix) -> [UInt8] {
    var b = (0..<type.byteCount(elements: n * rows)!).map { _ in UInt8.random(in: 0...255, using: &rng) }
    let blocks = n * rows / type.blockSize
    let fields: [Int]
    switch type {
    case .q4_0, .q5_0, .q8_0: fields = [0]
    case .q4_1, .q5_1, .q4_K, .q5_K: fields = [0, 2]
    case .q6_K: fields = [208]
    default: fields = []
    }
    for k in 0..<blocks {
        for f in fields {
            let h = f32ToF16(Float.random(in: 0.001...0.02, using: &rng))
            b[k * type.blockBytes + f] = UInt8(h & 0xFF); b[k * type.blockBytes + f + 1] = UInt8(h >> 8)
        }
    }
    return b
}

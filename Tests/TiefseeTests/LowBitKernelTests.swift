import Foundation
import XCTest
import CKernels
import Tiefsee

/// Random rows of a low-bit type: random bytes with the f16 scale fields set to small finite
/// values (IQ1_M's d is spread over the top nibbles of its scale words, MXFP4's E8M0 exponent
/// kept to 2^-13..2^-3).
func randomLowBitRows(_ type: TensorType, n: Int, rows: Int, rng: inout SplitMix) -> [UInt8] {
    var b = (0..<type.byteCount(elements: n * rows)!).map { _ in UInt8.random(in: 0...255, using: &rng) }
    let f16Fields: [TensorType: [Int]] = [
        .q2_K: [80, 82], .q3_K: [108], .iq2_xxs: [0], .iq2_xs: [0], .iq2_s: [0], .iq3_xxs: [0], .iq3_s: [0],
        .iq1_s: [0], .iq4_xs: [0], .iq4_nl: [0], .tq1_0: [52], .tq2_0: [64], .iq1_m: [], .mxfp4: [],
    ]
    for blk in 0..<(n * rows / type.blockSize) {
        let o = blk * type.blockBytes
        let h = f32ToF16(Float.random(in: 0.002...0.03, using: &rng) * (Bool.random(using: &rng) ? 1 : -1))
        for off in f16Fields[type]! { b[o + off] = UInt8(h & 0xFF); b[o + off + 1] = UInt8(h >> 8) }
        if type == .iq1_m {
            for k in 0..<4 { b[o + 49 + 2 * k] = b[o + 49 + 2 * k] & 0x0F | UInt8((h >> (4 * k)) & 0xF) << 4 }
        }
        if type == .mxfp4 { b[o] = UInt8.random(in: 115...125, using: &rng) }
    }
    return b
}

/// Q8A activations of `ntok` random rows (values in [-2, 2], a few outliers): bytes, bytes per row, floats.
func randomQ8A(n: Int, ntok: Int, rng: inout SplitMix) -> ([UInt8], Int, [Float]) {
    let x = (0..<ntok * n).map { _ in Float.random(in: -2...2, using: &rng) * (Float.random(in: 0...1, using: &rng) < 0.02 ? 10 : 1) }
    let aBytes = ActivationQuant.q8_0.byteCount(elements: n)
    var xq = [UInt8](repeating: 0, count: ntok * aBytes)
    x.withUnsafeBufferPointer { xp in
        xq.withUnsafeMutableBytes { q in
            for t in 0..<ntok { quantizeActivations(xp.baseAddress! + t * n, count: n, format: .q8_0, into: q.baseAddress! + t * aBytes) }
        }
    }
    return (xq, aBytes, x)
}

final class LowBitKernelTests: XCTestCase {
    /// Row lengths: whole superblocks, and for the 32-blocks a last partial group of eight.
    private func lengths(_ type: TensorType) -> [Int] { type.blockSize == 32 ? [96, 288, 1024] : [256, 1280, 4864] }

    /// Every low-bit type, several rows: the AVX2 and AVX-512 VNNI row kernels and the scalar
    /// reference agree bit for bit (single row and `dotRows`), and the dot is the f32 dot of the
    /// dequantized weights up to the activations' 8-bit rounding.
    func testRowKernelsBitIdenticalToReference() throws {
        var rng = SplitMix(seed: 21)
        var identical = 0, total = 0, isas = Set<String>()
        var worst: [String: Double] = [:]
        for type in lowBitTypes {
            XCTAssertEqual(activationFormat(for: type), .q8_0, type.rawValue)
            for n in lengths(type) {
                let rows = 6, rowBytes = type.byteCount(elements: n)!
                let w = randomLowBitRows(type, n: n, rows: rows, rng: &rng)
                let (xq, _, x) = randomQ8A(n: n, ntok: 1, rng: &rng)
                try w.withUnsafeBytes { wp in
                    try xq.withUnsafeBytes { xp in
                        var ref = [Float](repeating: 0, count: rows)
                        for r in 0..<rows { ref[r] = dotRowReference(type: type, row: wp.baseAddress! + r * rowBytes, xq: xp.baseAddress!, n: n) }
                        try forEachKernelISA { isa in
                            isas.insert(isa)
                            var multi = [Float](repeating: .nan, count: rows)
                            multi.withUnsafeMutableBufferPointer {
                                dotRows(type: type, rows: wp.baseAddress!, rowStride: rowBytes, count: rows, xq: xp.baseAddress!, n: n, out: $0.baseAddress!)
                            }
                            for r in 0..<rows {
                                let one = dotRow(type: type, row: wp.baseAddress! + r * rowBytes, xq: xp.baseAddress!, n: n)
                                XCTAssertEqual(one.bitPattern, ref[r].bitPattern, "\(type) n=\(n) row \(r) \(isa): \(one) vs reference \(ref[r])")
                                XCTAssertEqual(multi[r].bitPattern, ref[r].bitPattern, "\(type) n=\(n) row \(r) \(isa) dotRows")
                                identical += one.bitPattern == ref[r].bitPattern && multi[r].bitPattern == ref[r].bitPattern ? 1 : 0
                                total += 1
                            }
                        }
                        for r in 0..<rows {
                            var wd = [Float](repeating: 0, count: n)
                            try wd.withUnsafeMutableBufferPointer { try dequantizeRow(type, wp.baseAddress! + r * rowBytes, $0.baseAddress!, count: n) }
                            let exact = zip(wd, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                            let mag = zip(wd, x).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
                            XCTAssertGreaterThan(mag, 0, "\(type): all-zero weights test nothing")
                            var bound = 0.0   // each activation moves by at most half a step, amax/254 of its block
                            for b in stride(from: 0, to: n, by: 32) {
                                bound += wd[b..<b + 32].reduce(0.0) { $0 + abs(Double($1)) } * Double(x[b..<b + 32].map { abs($0) }.max()!) / 254
                            }
                            XCTAssertEqual(Double(ref[r]), exact, accuracy: bound * 1.001 + 2e-6 * mag, "\(type) n=\(n) row \(r) vs f32 dot")
                            worst[type.rawValue] = max(worst[type.rawValue] ?? 0, abs(Double(ref[r]) - exact) / mag)
                        }
                    }
                }
            }
        }
        XCTAssertEqual(identical, total)
        print("low-bit row kernels: \(identical)/\(total) dots bit-identical to the scalar reference (\(isas.sorted().joined(separator: ", ")));",
              "max |dot - f32 dot| / sum|w x|:", worst.sorted { $0.key < $1.key }.map { String(format: "%@ %.1e", $0.key, $0.value) }.joined(separator: ", "))
    }

    /// The packed matrix kernel (prefill, batches) on every low-bit type: AVX2 and VNNI agree bit
    /// for bit, a token's outputs do not depend on the rest of its batch, and they match the row
    /// kernel up to float order.
    func testPackedKernelMatchesRows() throws {
        var rng = SplitMix(seed: 22)
        var maxRel = 0.0
        for type in lowBitTypes {
            let n = type.blockSize == 32 ? 288 : 512, rows = 19, rowBytes = type.byteCount(elements: n)!
            let w = randomLowBitRows(type, n: n, rows: rows, rng: &rng)
            for ntok in [2, 3, 4, 5, 8, 9, 13, 17] {
                let (xq, aBytes, _) = randomQ8A(n: n, ntok: ntok, rng: &rng)
                var dots = [Float](repeating: .nan, count: ntok * rows)
                w.withUnsafeBytes { wp in
                    xq.withUnsafeBytes { qp in
                        dots.withUnsafeMutableBufferPointer { d in
                            for t in 0..<ntok {
                                dotRows(type: type, rows: wp.baseAddress!, rowStride: rowBytes, count: rows,
                                        xq: qp.baseAddress! + t * aBytes, n: n, out: d.baseAddress! + t * rows)
                            }
                        }
                    }
                }
                var results: [[Float]] = []
                try forEachKernelISA { isa in
                    let packed = packedProduct(type, w, n: n, rows: rows, xq, aBytes: aBytes, first: 0, ntok: ntok)
                    for i in packed.indices {
                        XCTAssertEqual(packed[i], dots[i], accuracy: 3e-4 * max(1, abs(dots[i])), "packed \(type) ntok \(ntok) #\(i) \(isa)")
                        maxRel = max(maxRel, Double(abs(packed[i] - dots[i])) / Double(max(1, abs(dots[i]))))
                    }
                    let tail = packedProduct(type, w, n: n, rows: rows, xq, aBytes: aBytes, first: ntok - 2, ntok: 2)
                    XCTAssertEqual(tail, Array(packed[(ntok - 2) * rows..<ntok * rows]), "\(type) \(isa): last two tokens alone vs in \(ntok)")
                    results.append(packed)
                }
                if results.count == 2 { XCTAssertEqual(results[0], results[1], "\(type) ntok=\(ntok): AVX2 vs AVX-512 VNNI") }
            }
        }
        print("low-bit packed kernel: max |packed - row dot| / max(1, |row dot|) = \(maxRel)")
    }

    private func packedProduct(_ type: TensorType, _ w: [UInt8], n: Int, rows: Int, _ xq: [UInt8], aBytes: Int,
                               first: Int, ntok: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: ntok * rows)
        let buf = UnsafeMutableRawPointer.allocate(byteCount: tf_gemm_pack_bytes(Int32(n), Int32(ntok)), alignment: 64)
        defer { buf.deallocate() }
        w.withUnsafeBytes { wp in
            xq.withUnsafeBytes { qp in
                tf_gemm_pack(Int32(n), qp.baseAddress! + first * aBytes, aBytes, Int32(ntok), buf)
                out.withUnsafeMutableBufferPointer { o in
                    XCTAssertEqual(tf_gemm_packed(Int32(type.ggmlID!), Int32(n), Int32(rows), wp.baseAddress!, type.byteCount(elements: n)!,
                                                  buf, Int32(ntok), o.baseAddress!, rows), 0)
                }
            }
        }
        return out
    }
}

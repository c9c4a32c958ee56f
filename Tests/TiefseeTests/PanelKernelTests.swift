import Foundation
import XCTest
import CKernels
import Tiefsee

/// The panel matrix kernel (`tf_gemm_q8a`, gemm_q8a.h): weight rows decoded once per tile of 16
/// into a panel with the rows in the vector lanes, activations broadcast per token.
final class PanelKernelTests: XCTestCase {
    private let standard: [TensorType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K]

    private func weights(_ type: TensorType, n: Int, rows: Int, rng: inout SplitMix) -> [UInt8] {
        standard.contains(type) ? randomQuantRows(type, n: n, rows: rows, rng: &rng)
                                : randomLowBitRows(type, n: n, rows: rows, rng: &rng)
    }

    private func panel(_ type: TensorType, _ w: [UInt8], n: Int, rows: Int, _ xq: [UInt8], aBytes: Int, ntok: Int,
                       reference: Bool = false) -> [Float] {
        var out = [Float](repeating: .nan, count: ntok * rows)
        let rowBytes = type.byteCount(elements: n)!
        var sums = [Int32](repeating: 0, count: tf_gemm_q8a_sums_bytes(Int32(n), Int32(ntok)) / 4)
        w.withUnsafeBytes { wp in
            xq.withUnsafeBytes { qp in
                tf_gemm_q8a_sums(Int32(n), qp.baseAddress!, aBytes, Int32(ntok), &sums)
                out.withUnsafeMutableBufferPointer { o in
                    let rc = reference
                        ? tf_gemm_q8a_ref(Int32(type.ggmlID!), Int32(n), Int32(rows), wp.baseAddress!, rowBytes, qp.baseAddress!, aBytes,
                                          Int32(ntok), o.baseAddress!, rows)
                        : tf_gemm_q8a(Int32(type.ggmlID!), Int32(n), Int32(rows), wp.baseAddress!, rowBytes, qp.baseAddress!, aBytes,
                                      sums, Int32(ntok), o.baseAddress!, rows)
                    XCTAssertEqual(rc, 0, "\(type)")
                }
            }
        }
        return out
    }

    /// Every type it takes, a partial tile of rows (21 = 16 + 5) and token counts that leave
    /// partial register tiles: bit-identical to the scalar reference on both instruction sets,
    /// each token's results the same alone as in the batch, and the f32 dot of the dequantized
    /// weights and activations up to float rounding.
    func testPanelKernelMatchesReferenceAndDequantizedDots() throws {
        var rng = SplitMix(seed: 41)
        let rows = 21
        var checked = 0, worst = 0.0
        for type in standard + lowBitTypes where tf_gemm_q8a_supports(Int32(type.ggmlID!)) != 0 {
            let n = type.blockSize == 32 ? 288 : 512   // 288: a last partial group of eight 32-blocks
            let w = weights(type, n: n, rows: rows, rng: &rng)
            let ntok = 13
            let (xq, aBytes, _) = randomQ8A(n: n, ntok: ntok, rng: &rng)
            let ref = panel(type, w, n: n, rows: rows, xq, aBytes: aBytes, ntok: ntok, reference: true)
            try forEachKernelISA { isa in
                let got = panel(type, w, n: n, rows: rows, xq, aBytes: aBytes, ntok: ntok)
                XCTAssertEqual(got, ref, "\(type) \(isa): kernel vs reference")
                // the last 2 tokens alone, and the first alone
                let tail = panel(type, w, n: n, rows: rows, Array(xq[(ntok - 2) * aBytes..<ntok * aBytes]), aBytes: aBytes, ntok: 2)
                XCTAssertEqual(tail, Array(got[(ntok - 2) * rows..<ntok * rows]), "\(type) \(isa): batch invariance")
                let first = panel(type, w, n: n, rows: rows, Array(xq[0..<aBytes]), aBytes: aBytes, ntok: 1)
                XCTAssertEqual(first, Array(got[0..<rows]), "\(type) \(isa): one token")
                checked += 1
            }
            // against the dequantized f32 dot (weights dequantized, activations as the Q8A values)
            let rowBytes = type.byteCount(elements: n)!
            for r in 0..<rows {
                var wf = [Float](repeating: 0, count: n)
                w.withUnsafeBytes { wp in wf.withUnsafeMutableBufferPointer { try! dequantizeRow(type, wp.baseAddress! + r * rowBytes, $0.baseAddress!, count: n) } }
                for t in 0..<ntok {
                    var dot = 0.0, mag = 0.0
                    xq.withUnsafeBytes { qp in
                        for b in 0..<n / 32 {
                            let blk = qp.baseAddress! + t * aBytes + b * 40
                            let d = Double(blk.loadUnaligned(as: Float.self))
                            for j in 0..<32 {
                                let a = d * Double(Int8(bitPattern: blk.load(fromByteOffset: 8 + j, as: UInt8.self)))
                                dot += Double(wf[b * 32 + j]) * a; mag += abs(Double(wf[b * 32 + j]) * a)
                            }
                        }
                    }
                    let err = abs(Double(ref[t * rows + r]) - dot) / max(mag, 1e-6)
                    worst = max(worst, err)
                    XCTAssertLessThan(err, 1e-5, "\(type) row \(r) token \(t): \(ref[t * rows + r]) vs \(dot)")
                }
            }
        }
        XCTAssertGreaterThanOrEqual(checked, standard.count + lowBitTypes.count - 1)
        XCTAssertGreaterThan(worst, 0)   // the comparison ran on real sums
        // Q2_K (per-16 mins) and unquantized weights are refused.
        XCTAssertEqual(tf_gemm_q8a_supports(Int32(TensorType.q2_K.ggmlID!)), 0)
        XCTAssertEqual(tf_gemm_q8a_supports(Int32(TensorType.f16.ggmlID!)), 0)
        var o = [Float](repeating: 0, count: 2)
        XCTAssertEqual(tf_gemm_q8a(Int32(TensorType.q4_K.ggmlID!), 128, 1, [UInt8](repeating: 0, count: 144), 144,
                                   [UInt8](repeating: 0, count: 160), 160, [Int32](repeating: 0, count: 12), 1, &o, 1), -1)   // n % 256 != 0
    }
}

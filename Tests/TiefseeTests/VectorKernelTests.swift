import Foundation
import XCTest
import CKernels
import Tiefsee

/// The elementwise and attention kernels against plain double-precision formulas.
final class VectorKernelTests: XCTestCase {
    func testSwigluAndSoftmaxMatchDoubleFormulas() {
        var rng = SplitMix(seed: 5)
        let n = 1003   // not a multiple of 8: the scalar tail runs too
        var g = (0..<n).map { _ in Float.random(in: -30...30, using: &rng) }
        g[0] = -120; g[1] = 100; g[2] = 0   // underflow, clamp, zero
        let u = (0..<n).map { _ in Float.random(in: -2...2, using: &rng) }
        var out = g
        out.withUnsafeMutableBufferPointer { o in u.withUnsafeBufferPointer { tf_swiglu(Int32(n), o.baseAddress!, $0.baseAddress!) } }
        for i in 0..<n {
            let x = Double(g[i]), ref = x / (1 + exp(-x)) * Double(u[i])
            XCTAssertEqual(Double(out[i]), ref, accuracy: 1e-6 * max(1, abs(ref)), "swiglu #\(i) x=\(x)")
        }
        var s = (0..<n).map { _ in Float.random(in: -40...10, using: &rng) }
        let m = Double(s.max()!)
        let e = s.map { exp(Double($0) - m) }, total = e.reduce(0, +)
        s.withUnsafeMutableBufferPointer { tf_softmax(Int32(n), $0.baseAddress!) }
        for i in 0..<n { XCTAssertEqual(Double(s[i]), e[i] / total, accuracy: 1e-7, "softmax #\(i)") }
    }

    func testGroupedAttentionMatchesPerHeadAttention() {
        var rng = SplitMix(seed: 6)
        for (hd, nq, n) in [(64, 7, 37), (128, 2, 9), (24, 3, 5), (64, 1, 1)] {
            let kvStride = hd + 8   // rows of a wider cache (several kv heads side by side)
            let q = (0..<nq * hd).map { _ in Float.random(in: -1...1, using: &rng) }
            let k = (0..<n * kvStride).map { _ in Float.random(in: -1...1, using: &rng) }
            let v = (0..<n * kvStride).map { _ in Float.random(in: -1...1, using: &rng) }
            let scale = 1 / Float(hd).squareRoot()
            var grouped = [Float](repeating: .nan, count: nq * hd), single = grouped
            var scores = [Float](repeating: 0, count: nq * n)
            q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
                scores.withUnsafeMutableBufferPointer { sp in
                    grouped.withUnsafeMutableBufferPointer { gp in
                        tf_attend_heads(Int32(n), Int32(hd), Int32(nq), qp.baseAddress!, hd, kp.baseAddress!, kvStride,
                                        vp.baseAddress!, kvStride, scale, sp.baseAddress!, gp.baseAddress!, hd)
                    }
                    single.withUnsafeMutableBufferPointer { op in
                        for i in 0..<nq {
                            tf_attend(Int32(n), Int32(hd), qp.baseAddress! + i * hd, kp.baseAddress!, kvStride, vp.baseAddress!, kvStride,
                                      scale, sp.baseAddress!, op.baseAddress! + i * hd)
                        }
                    }
                }
            } } }
            // And against a double-precision evaluation of softmax(q·k/√d)·v.
            for i in 0..<nq {
                let sc = (0..<n).map { j in (0..<hd).reduce(0.0) { $0 + Double(q[i * hd + $1]) * Double(k[j * kvStride + $1]) } * Double(scale) }
                let mx = sc.max()!, ex = sc.map { exp($0 - mx) }, tot = ex.reduce(0, +)
                for d in 0..<hd {
                    let ref = (0..<n).reduce(0.0) { $0 + ex[$1] / tot * Double(v[$1 * kvStride + d]) }
                    XCTAssertEqual(Double(grouped[i * hd + d]), ref, accuracy: 1e-5, "hd \(hd) head \(i) dim \(d)")
                    XCTAssertEqual(grouped[i * hd + d], single[i * hd + d], accuracy: 1e-5)
                }
            }
        }
    }
}

import Foundation
import XCTest
import CKernels
@testable import Tiefsee

private func decodeBase64(_ s: String) -> [UInt8] { [UInt8](Data(base64Encoded: s)!) }
private func decodeFloats(_ s: String) -> [Float] {
    decodeBase64(s).withUnsafeBytes { raw in (0..<raw.count / 4).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
}
private func sampleIndices(_ n: Int) -> [Int] {
    let s = min(256, n)
    return s == 1 ? [0] : (0..<s).map { $0 * (n - 1) / (s - 1) }
}

final class DequantTests: XCTestCase {
    /// Acceptance: every tensor of the real model dequantizes to exactly what the `gguf` Python
    /// package computes (sha256 over the whole f32 tensor: max abs diff 0).
    func testRealModelMatchesGGUFPackage() throws {
        let g = try GGUFFile(path: try requireDefaultModel())
        let fx = try JSONValue.parse(contentsOf: fixturePath("dequant/qwen2.5-coder-0.5b-q4_k_m.json"))
        let entries = try XCTUnwrap(fx["tensors"]?.array)
        XCTAssertEqual(entries.count, g.tensorInfos.count)
        var perType: [String: (tensors: Int, elements: Int)] = [:]
        for e in entries {
            let name = try XCTUnwrap(e["name"]?.string)
            let t = try XCTUnwrap(g.tensor(name), name)
            XCTAssertEqual(t.type.rawValue, e["type"]?.string, name)
            XCTAssertEqual(t.shape, e["shape"]?.array?.compactMap(\.int), name)
            let v = try dequantize(t)
            XCTAssertEqual(v.count, t.elementCount)
            var h = SHA256()
            h.update(raw: v)
            let sha = SHA256.hex(h.finalize())
            // Samples and sum: diagnostics that locate a mismatch (the sha is the real check).
            let expected = decodeFloats(try XCTUnwrap(e["samples"]?.string))
            let idx = sampleIndices(v.count)
            XCTAssertEqual(expected.count, idx.count, name)
            var maxDiff: Float = 0
            for (k, i) in idx.enumerated() where k < expected.count { maxDiff = max(maxDiff, abs(v[i] - expected[k])) }
            XCTAssertEqual(maxDiff, 0, "\(name): sampled values differ")
            if sha != e["sha256"]?.string {
                // The sum over all values tells a tiny float-order difference from a layout bug
                // (only computed on mismatch: summing 630M values is slow in debug builds).
                let sum = v.reduce(0.0) { $0 + Double($1) }
                let want = try XCTUnwrap(e["sum"]?.double), sumAbs = try XCTUnwrap(e["sum_abs"]?.double)
                XCTFail("\(name) (\(t.type.rawValue)): sha256 of dequantized f32 differs; sum \(sum) vs \(want) (sum|x| \(sumAbs))")
            }
            perType[t.type.rawValue, default: (0, 0)].tensors += 1
            perType[t.type.rawValue, default: (0, 0)].elements += v.count
        }
        print("dequant parity:", perType.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.tensors) tensors/\($0.value.elements) values" }.joined(separator: ", "))
        for ty in ["F32", "Q5_0", "Q8_0", "Q4_K", "Q6_K"] { XCTAssertNotNil(perType[ty], "model should contain \(ty)") }
    }

    /// Small blocks of every supported type (from gguf's quantizers or random bytes with valid
    /// scales), F16/BF16 bit patterns and all e4m3fn codes: exact bit equality.
    func testSyntheticBlocksMatchGGUFPackage() throws {
        let fx = try JSONValue.parse(contentsOf: fixturePath("dequant/synthetic.json"))
        let cases = try XCTUnwrap(fx["cases"]?.array)
        var seen = Set<String>()
        for c in cases {
            let name = try XCTUnwrap(c["name"]?.string)
            let type = try XCTUnwrap(TensorType(rawValue: try XCTUnwrap(c["type"]?.string)), name)
            let count = try XCTUnwrap(c["count"]?.int)
            let raw = decodeBase64(try XCTUnwrap(c["raw"]?.string))
            let expected = decodeFloats(try XCTUnwrap(c["expected"]?.string))
            XCTAssertEqual(raw.count, type.byteCount(elements: count), name)
            XCTAssertEqual(expected.count, count, name)
            var out = [Float](repeating: .nan, count: count)
            try raw.withUnsafeBytes { r in
                try out.withUnsafeMutableBufferPointer { try dequantizeRow(type, r.baseAddress!, $0.baseAddress!, count: count) }
            }
            let bad = (0..<count).filter { out[$0].bitPattern != expected[$0].bitPattern }
            XCTAssertTrue(bad.isEmpty, "\(name): \(bad.count) values differ, first at \(bad.first ?? -1): "
                + "\(bad.first.map { "\(out[$0]) vs \(expected[$0])" } ?? "")")
            seen.insert(type.rawValue)
        }
        for ty in ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "F16", "BF16", "F8_E4M3"] {
            XCTAssertTrue(seen.contains(ty), "no synthetic case for \(ty)")
        }
    }

    /// The low-bit types (IQ family, Q2_K/Q3_K, MXFP4, TQ1_0/TQ2_0): random blocks with valid
    /// scales and gguf-quantized blocks, bit for bit against gguf.quants.dequantize.
    func testLowBitBlocksMatchGGUFPackage() throws {
        let fx = try JSONValue.parse(contentsOf: fixturePath("dequant/lowbit.json"))
        var identical: [String: Int] = [:]
        for c in try XCTUnwrap(fx["cases"]?.array) {
            let name = try XCTUnwrap(c["name"]?.string)
            let type = try XCTUnwrap(TensorType(rawValue: try XCTUnwrap(c["type"]?.string)), name)
            let count = try XCTUnwrap(c["count"]?.int)
            let raw = decodeBase64(try XCTUnwrap(c["raw"]?.string))
            let expected = decodeFloats(try XCTUnwrap(c["expected"]?.string))
            XCTAssertEqual(raw.count, type.byteCount(elements: count), name)
            XCTAssertEqual(expected.count, count, name)
            var out = [Float](repeating: .nan, count: count)
            try raw.withUnsafeBytes { r in
                try out.withUnsafeMutableBufferPointer { try dequantizeRow(type, r.baseAddress!, $0.baseAddress!, count: count) }
            }
            let bad = (0..<count).filter { out[$0].bitPattern != expected[$0].bitPattern }
            XCTAssertTrue(bad.isEmpty, "\(name): \(bad.count) values differ, first at \(bad.first ?? -1): "
                + "\(bad.first.map { "\(out[$0]) vs \(expected[$0])" } ?? "")")
            XCTAssertTrue(expected.contains { $0 != 0 }, "\(name): all zero, tests nothing")
            identical[type.rawValue, default: 0] += count - bad.count
        }
        print("low-bit dequant, bit-identical values:", identical.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        for ty: TensorType in [.iq1_s, .iq1_m, .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq4_xs, .iq4_nl, .q2_K, .q3_K, .mxfp4, .tq1_0, .tq2_0] {
            XCTAssertNotNil(identical[ty.rawValue], "no low-bit case for \(ty.rawValue)")
        }
        XCTAssertEqual(TensorType(ggmlID: 39), .mxfp4)
        XCTAssertEqual(TensorType.mxfp4.byteCount(elements: 64), 34)
    }

    func testFP8BlockScaledMatchesTorch() throws {
        let fx = try JSONValue.parse(contentsOf: fixturePath("dequant/synthetic.json"))
        let c = try XCTUnwrap(fx["fp8_block_scaled"])
        let rows = try XCTUnwrap(c["rows"]?.int), cols = try XCTUnwrap(c["cols"]?.int), blk = try XCTUnwrap(c["block"]?.int)
        var w = (0..<rows * cols).map { UInt8(truncatingIfNeeded: (37 * $0 + 11) % 256) }
        for i in w.indices where w[i] & 0x7F == 0x7F { w[i] = 0 }
        let scale = decodeFloats(try XCTUnwrap(c["scale_inv"]?.string))
        XCTAssertEqual(scale.count, 6)
        let v: [Float] = try w.withUnsafeBytes { wp in
            try scale.withUnsafeBytes { sp in
                let wt = Tensor(name: "w", type: .f8e4m3, shape: [rows, cols], data: wp.baseAddress!, byteCount: wp.count, owner: nil)
                let st = Tensor(name: "w_scale_inv", type: .f32, shape: [2, 3], data: sp.baseAddress!, byteCount: sp.count, owner: nil)
                let bad = Tensor(name: "w_scale_inv", type: .f32, shape: [3, 2], data: sp.baseAddress!, byteCount: sp.count, owner: nil)
                XCTAssertThrowsError(try dequantizeFP8BlockScaled(weight: wt, scaleInv: bad, blockSize: blk))
                return try dequantizeFP8BlockScaled(weight: wt, scaleInv: st, blockSize: blk)
            }
        }
        let expected = decodeFloats(try XCTUnwrap(c["samples"]?.string))
        for (k, i) in sampleIndices(v.count).enumerated() { XCTAssertEqual(v[i].bitPattern, expected[k].bitPattern, "index \(i)") }
        var h = SHA256(); h.update(raw: v)
        XCTAssertEqual(SHA256.hex(h.finalize()), c["sha256"]?.string)
        // spot check by hand: element (129, 259) uses scale[1][2]
        let i = 129 * cols + 259
        XCTAssertEqual(v[i], f8e4m3ToF32(w[i]) * scale[5])
    }

    func testUnsupportedTypesThrowClearly() throws {
        let bytes = [UInt8](repeating: 0, count: 1024)
        var out = [Float](repeating: 0, count: 256)
        for ty in [TensorType.q8_1, .q8_K, .i32] {
            XCTAssertThrowsError(try bytes.withUnsafeBytes { b in
                try out.withUnsafeMutableBufferPointer { try dequantizeRow(ty, b.baseAddress!, $0.baseAddress!, count: 256) }
            }) { err in
                XCTAssertEqual(err as? DequantError, .unsupportedType(ty))
                XCTAssertTrue("\(err)".contains(ty.rawValue))
            }
        }
        XCTAssertThrowsError(try bytes.withUnsafeBytes { b in
            try out.withUnsafeMutableBufferPointer { try dequantizeRow(.q4_K, b.baseAddress!, $0.baseAddress!, count: 100) }
        })
    }

    func testFloatConversions() {
        // f16 -> f32: all 65536 patterns against F16C
        for h in 0...UInt16.max {
            let a = f16ToF32(h), b = tf_f16_to_f32(h)
            if b.isNaN { XCTAssertTrue(a.isNaN) } else { XCTAssertEqual(a.bitPattern, b.bitPattern, "f16 \(h)") }
            if !a.isNaN { XCTAssertEqual(f32ToF16(a), h, "round trip \(h)") }
        }
        // f32 -> f16 round-to-nearest-even against F16C, over random bit patterns and near ties
        var rng = SystemRandomNumberGenerator()
        for k in 0..<200_000 {
            var f = Float(bitPattern: UInt32.random(in: 0x3000_0000...0x4800_0000, using: &rng) | (k & 1 == 0 ? 0 : 0x8000_0000))
            if k % 4 == 2 { f = Float(bitPattern: f.bitPattern & ~0x0FFF | 0x1000) }  // exact ties
            if k % 8 == 3 { f = Float(bitPattern: UInt32.random(in: 0...0x3300_0000, using: &rng)) }  // subnormal range
            XCTAssertEqual(f32ToF16(f), tf_f32_to_f16(f), "f32ToF16(\(f))")
        }
        XCTAssertEqual(f32ToF16(65520), 0x7C00)   // rounds up to inf
        XCTAssertEqual(f32ToF16(65504), 0x7BFF)
        XCTAssertEqual(f32ToF16(.infinity), 0x7C00)
        XCTAssertTrue(f16ToF32(f32ToF16(.nan)).isNaN)
        XCTAssertEqual(f32ToF16(0x1p-25), 0)       // tie between 0 and the smallest subnormal -> even (0)
        XCTAssertEqual(f32ToF16(0x1.8p-24), 2)     // tie between 1 and 2 subnormal units -> 2
        // bf16
        XCTAssertEqual(bf16ToF32(0x3F80), 1)
        XCTAssertEqual(f32ToBF16(1), 0x3F80)
        XCTAssertEqual(f32ToBF16(Float(bitPattern: 0x3F80_8000)), 0x3F80)  // tie -> even
        XCTAssertEqual(f32ToBF16(Float(bitPattern: 0x3F81_8000)), 0x3F82)  // tie -> even (up)
        XCTAssertEqual(f32ToBF16(Float(bitPattern: 0x3F80_8001)), 0x3F81)
        XCTAssertEqual(f32ToBF16(Float(bitPattern: 0x7F7F_FFFF)), 0x7F80)  // overflow to inf
        XCTAssertTrue(bf16ToF32(f32ToBF16(.nan)).isNaN)
        for h in stride(from: 0, through: 0xFFFF, by: 7) {
            let f = bf16ToF32(UInt16(h))
            XCTAssertEqual(f.bitPattern, tf_bf16_to_f32(UInt16(h)).bitPattern)
            if !f.isNaN { XCTAssertEqual(f32ToBF16(f), UInt16(h)) }
        }
        // e4m3fn
        for c in 0...255 {
            let a = f8e4m3ToF32(UInt8(c)), b = tf_f8_e4m3_to_f32(UInt8(c))
            if c & 0x7F == 0x7F { XCTAssertTrue(a.isNaN && b.isNaN) } else { XCTAssertEqual(a.bitPattern, b.bitPattern, "fp8 \(c)") }
        }
        XCTAssertEqual(f8e4m3ToF32(0x7E), 448)
        XCTAssertEqual(f8e4m3ToF32(0x01), 0x1p-9)
        XCTAssertEqual(f8e4m3ToF32(0xB8), -1)
    }

    func testSHA256KnownVectors() {
        XCTAssertEqual(SHA256.hex(SHA256.hash([UInt8]())), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(SHA256.hash(Array("abc".utf8))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let m = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        XCTAssertEqual(SHA256.hex(SHA256.hash(m)), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // one million 'a', fed in uneven pieces
        var h = SHA256()
        let a = [UInt8](repeating: 0x61, count: 1_000_000)
        var i = 0, step = 1
        while i < a.count { let j = min(a.count, i + step); h.update(a[i..<j]); i = j; step = step * 3 % 997 + 1 }
        XCTAssertEqual(SHA256.hex(h.finalize()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

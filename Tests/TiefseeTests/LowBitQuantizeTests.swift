import Foundation
import XCTest
@testable import Tiefsee

/// The low-bit quantizers of `tiefsee quantize` (Q2_K, Q3_K, IQ4_NL, IQ4_XS, IQ2_XXS, IQ2_XS,
/// IQ1_S, IQ1_M), their importance weighting, llama.cpp's mix rules for the new schemes and the
/// importance matrix (`tiefsee imatrix`, llama.cpp's GGUF imatrix format).
final class LowBitQuantizeTests: XCTestCase {
    static let lowBit: [TensorType] = [.q2_K, .q3_K, .iq4_nl, .iq4_xs, .iq2_xxs, .iq2_xs, .iq1_s, .iq1_m]

    static func floats(_ b64: String) -> [Float] {
        let d = [UInt8](Data(base64Encoded: b64)!)
        return d.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    static func dequantized(_ q: [UInt8], _ type: TensorType, count: Int) throws -> [Float] {
        var y = [Float](repeating: .nan, count: count)
        try q.withUnsafeBytes { b in try y.withUnsafeMutableBufferPointer { try dequantizeRow(type, b.baseAddress!, $0.baseAddress!, count: count) } }
        return y
    }

    /// sqrt(Σ w (y - x)² / Σ w x²) over rows of `w.count` columns (w nil: all ones).
    static func weightedError(_ y: [Float], _ x: [Float], _ w: [Float]?) -> Double {
        var num = 0.0, den = 0.0
        for i in x.indices {
            let wi = Double(w.map { $0[i % $0.count] } ?? 1)
            num += wi * Double((y[i] - x[i]) * (y[i] - x[i])); den += wi * Double(x[i] * x[i])
        }
        return (num / den).squareRoot()
    }

    /// Round trips on pseudo-Gaussian rows (16 rows of 1024): the relative error of each type is
    /// within its bound (about 1.1x what it measures; on Gaussian rows these quantizers measure
    /// 0.94-1.02x the error of ggml's own, scripts/compare_quantizer_error.py), and an importance
    /// row lowers the error it weights (the point of the imatrix) for every type that uses it.
    func testLowBitQuantizerRoundTrips() throws {
        let n = 1024
        let x = QuantizeTests.randomRow(16 * n, seed: 7)
        // Importance like an imatrix: a few columns see much larger activations.
        let w: [Float] = (0..<n).map { (j: Int) -> Float in
            let spread = Float(1 + (j * 7919) % 13) / 13
            return j % 37 == 0 ? 40 : spread
        }
        let bounds: [TensorType: Double] = [.q2_K: 0.33, .q3_K: 0.17, .iq4_nl: 0.085, .iq4_xs: 0.085,
                                            .iq2_xxs: 0.38, .iq2_xs: 0.33, .iq1_s: 0.51, .iq1_m: 0.47]
        var report = [String]()
        for t in Self.lowBit {
            let plain = try Self.dequantized(try quantize(x, as: t), t, count: x.count)
            let weighted = try Self.dequantized(try quantize(x, as: t, importance: w), t, count: x.count)
            let e = Self.weightedError(plain, x, nil)
            XCTAssertLessThan(e, bounds[t]!, "\(t.rawValue) relative rms error")
            let ePlain = Self.weightedError(plain, x, w), eWeighted = Self.weightedError(weighted, x, w)
            XCTAssertLessThan(eWeighted, ePlain, "\(t.rawValue): the importance row must lower the error it weights")
            report.append(String(format: "%@ %.4f (weighted %.4f -> %.4f)", t.rawValue, e, ePlain, eWeighted))
            // All-zero rows stay zero.
            let z = try Self.dequantized(try quantize([Float](repeating: 0, count: 256), as: t), t, count: 256)
            XCTAssertTrue(z.allSatisfy { $0 == 0 }, "\(t.rawValue) zero row")
        }
        print("low-bit quantize round trips, rel. rms error: " + report.joined(separator: ", "))
    }

    /// fixtures/dequant/tiefsee-quantized.json (scripts/gen_quantized_block_fixtures.py): blocks
    /// our quantizers wrote, dequantized by the gguf package. The quantizer must still write the
    /// same bytes, our dequantizer must read them as gguf does (bit for bit), and gguf's values
    /// must be close to the input — another reader sees in the blocks what we meant.
    func testQuantizedBlocksMatchGGUFPackage() throws {
        let fx = try JSONValue.parse(contentsOf: fixturePath("dequant/tiefsee-quantized.json"))
        let bounds: [TensorType: Double] = [.q2_K: 0.40, .q3_K: 0.20, .iq4_nl: 0.10, .iq4_xs: 0.10,
                                            .iq2_xxs: 0.50, .iq2_xs: 0.45, .iq1_s: 0.60, .iq1_m: 0.60]
        var seen = Set<TensorType>()
        for c in try XCTUnwrap(fx["cases"]?.array) {
            let name = try XCTUnwrap(c["name"]?.string)
            let type = try XCTUnwrap(TensorType(rawValue: try XCTUnwrap(c["type"]?.string)))
            let count = try XCTUnwrap(c["count"]?.int)
            let x = Self.floats(try XCTUnwrap(c["input"]?.string))
            let raw = [UInt8](Data(base64Encoded: try XCTUnwrap(c["raw"]?.string))!)
            let expected = Self.floats(try XCTUnwrap(c["expected"]?.string))
            let importance = c["importance"]?.string.map(Self.floats)
            XCTAssertEqual(x.count, count)
            XCTAssertEqual(try quantize(x, as: type, importance: importance), raw,
                           "\(name): the quantizer writes other bytes now (re-run scripts/gen_quantized_block_fixtures.py)")
            let ours = try Self.dequantized(raw, type, count: count)
            let bad = (0..<count).filter { ours[$0].bitPattern != expected[$0].bitPattern }
            XCTAssertTrue(bad.isEmpty, "\(name): \(bad.count) values differ from gguf's")
            XCTAssertLessThan(Self.weightedError(expected, x, nil), bounds[type]!, "\(name): gguf's values vs the input")
            seen.insert(type)
        }
        XCTAssertEqual(seen, Set(Self.lowBit))
    }

    /// llama.cpp's mixes for the new schemes, on the default model's shape (Qwen2.5-0.5B: 24
    /// layers, 14 heads / 2 KV heads, hidden 896 = not whole 256-blocks, FFN 4864) — the types
    /// llama.cpp's own quantizer chose for it (scripts/compare_lowbit_llama_cpp.py) — and on a
    /// 64-expert MLA model.
    func testLowBitMixesFollowLlamaQuantize() {
        let qwen = QuantizationContext(numLayers: 24, numExperts: 0, hasOutput: true, gqa: 7)
        func t(_ n: String, _ shape: [Int], _ s: QuantizationScheme, _ c: QuantizationContext) -> TensorType {
            QuantizationRules.type(name: n, shape: shape, scheme: s, context: c)
        }
        XCTAssertEqual(t("output.weight", [151936, 896], .q2_K, qwen), .q8_0)
        XCTAssertEqual(t("token_embd.weight", [151936, 896], .q2_K, qwen), .q4_0)
        XCTAssertEqual(t("blk.3.attn_q.weight", [896, 896], .q2_K, qwen), .q4_0)
        XCTAssertEqual(t("blk.3.attn_v.weight", [128, 896], .q2_K, qwen), .q5_0)     // Q4_K (gqa >= 4), fallback
        XCTAssertEqual(t("blk.3.ffn_down.weight", [896, 4864], .q2_K, qwen), .q3_K)
        XCTAssertEqual(t("blk.0.ffn_down.weight", [896, 4864], .q3_K_M, qwen), .q5_K)  // layer < 24/16
        XCTAssertEqual(t("blk.1.ffn_down.weight", [896, 4864], .q3_K_M, qwen), .q4_K)
        XCTAssertEqual(t("blk.0.attn_v.weight", [128, 896], .q3_K_M, qwen), .q5_1)   // Q5_K for the first two
        XCTAssertEqual(t("blk.2.ffn_down.weight", [896, 4864], .iq4_XS, qwen), .q5_K) // first eighth, no imatrix
        XCTAssertEqual(t("blk.3.ffn_down.weight", [896, 4864], .iq4_XS, qwen), .iq4_xs)
        var withImatrix = qwen
        withImatrix.hasImatrix = true
        XCTAssertEqual(t("blk.2.ffn_down.weight", [896, 4864], .iq4_XS, withImatrix), .iq4_xs)
        XCTAssertEqual(t("blk.3.ffn_gate.weight", [4864, 896], .iq4_XS, qwen), .iq4_nl)
        XCTAssertEqual(t("blk.2.ffn_down.weight", [896, 4864], .iq1_S, qwen), .q2_K)  // first eighth
        XCTAssertEqual(t("blk.3.ffn_down.weight", [896, 4864], .iq1_S, qwen), .iq1_s)
        XCTAssertEqual(t("blk.3.attn_output.weight", [896, 896], .iq1_M, qwen), .iq4_nl) // IQ2_XXS, fallback
        XCTAssertEqual(t("output.weight", [32000, 4096], .iq2_XXS, qwen), .q5_K)
        XCTAssertEqual(t("token_embd.weight", [32000, 4096], .iq2_XS, qwen), .q2_K)
        let ds = QuantizationContext(numLayers: 8, numExperts: 64, hasOutput: true, gqa: 16)
        XCTAssertEqual(t("blk.3.ffn_up_exps.weight", [64, 1408, 2048], .iq1_S, ds), .iq1_s)
        XCTAssertEqual(t("blk.3.ffn_down_exps.weight", [64, 2048, 1408], .iq1_S, ds), .iq4_nl)
        XCTAssertEqual(t("blk.0.ffn_down.weight", [2048, 10944], .q2_K, ds), .q4_0)
        XCTAssertEqual(t("blk.3.attn_output.weight", [2048, 2048], .iq2_XXS, ds), .iq2_xxs)
        XCTAssertEqual(t("blk.3.attn_q.weight", [3072, 2048], .q2_K, ds), .q2_K)
        // Overrides win over the mix, then the row-length fallback still applies.
        let r1 = try! QuantizationContext(numLayers: 24, numExperts: 0, hasOutput: true, gqa: 7,
                                          overrides: [TensorTypeOverride("ffn_down=IQ2_XXS"), TensorTypeOverride("attn_=Q4_K")])
        XCTAssertEqual(t("blk.0.ffn_down.weight", [896, 4864], .iq1_S, r1), .iq2_xxs)
        XCTAssertEqual(t("blk.0.attn_q.weight", [896, 896], .iq1_S, r1), .q5_0)
        XCTAssertEqual(t("blk.0.attn_norm.weight", [896], .iq1_S, r1), .f32)
        XCTAssertThrowsError(try TensorTypeOverride("ffn_down"))
        XCTAssertThrowsError(try TensorTypeOverride("ffn_down=IQ3_S"))  // no quantizer for it
    }

    /// `tiefsee imatrix` on the tiny low-bit MoE fixture: llama.cpp's bookkeeping (one count per
    /// activation row; per expert the rows routed to it, so the expert counts add up to tokens ×
    /// experts per token; MLA's per-head k_b/v_b as matrices of a 3-D tensor), the GGUF file
    /// reads back the same, and quantizing with it beats a flat importance on the error it
    /// weights (activation-weighted squared weight error, every quantized matrix).
    func testImatrixCollectWriteAndQuantize() throws {
        let path = fixturePath("gguf/lowbit-mixed.gguf")
        let files = try ModelFiles.open(.gguf(path))
        let model = try ModelLoader.load(files)
        let g = try XCTUnwrap(files.gguf)
        let V = model.config.vocabSize
        let tokens = (0..<160).map { ($0 * 37 + 11) % V }
        let im = try ImportanceMatrix.collect(model: model, tokens: tokens, chunkSize: 32, dataset: "synthetic",
                                              matrices: { g.info($0).map { $0.dims.count == 3 ? $0.dims[2] : 1 } ?? 1 })
        XCTAssertEqual(im.chunkCount, 5)
        let up = try XCTUnwrap(im.entries["blk.1.ffn_up_exps.weight"])
        XCTAssertEqual(up.matrices, 4)
        XCTAssertEqual(up.counts.reduce(0, +), Double(160 * model.config.moe!.numExpertsPerToken))
        XCTAssertEqual(im.entries["blk.0.ffn_down.weight"]?.counts, [160])
        XCTAssertEqual(im.entries["blk.0.attn_k_b.weight"]?.matrices, 2)
        XCTAssertNil(im.entries["output.weight"])
        for (name, e) in im.entries { XCTAssertTrue(e.sums.allSatisfy { $0 >= 0 } && e.sums.contains { $0 > 0 }, name) }

        let dir = NSTemporaryDirectory() + "tiefsee-imatrix-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try im.write(to: dir + "/m.imatrix")
        let back = try ImportanceMatrix(path: dir + "/m.imatrix")
        XCTAssertEqual(Set(back.entries.keys), Set(im.entries.keys))
        XCTAssertEqual(back.chunkCount, 5); XCTAssertEqual(back.chunkSize, 32); XCTAssertEqual(back.datasets, ["synthetic"])
        for (name, e) in im.entries {
            XCTAssertEqual(back.entries[name]!.counts, e.counts, name)
            XCTAssertEqual(back.entries[name]!.sums, e.sums.map { Double(Float($0)) }, name)
        }

        XCTAssertThrowsError(try QuantizePlan(files: files, scheme: .iq2_XXS)) { e in
            XCTAssertTrue("\(e)".contains("importance matrix"), "\(e)")
        }
        var flat = back
        for k in flat.entries.keys { flat.entries[k]!.sums = flat.entries[k]!.sums.map { _ in 1 }; flat.entries[k]!.counts = flat.entries[k]!.counts.map { _ in 1 } }
        for scheme in [QuantizationScheme.iq2_XXS, .iq1_M] {
            _ = try quantizeModel(input: path, output: dir + "/w.gguf", scheme: scheme, importance: back)
            _ = try quantizeModel(input: path, output: dir + "/f.gguf", scheme: scheme, importance: flat)
            let src = try GGUFFile(path: path), wq = try GGUFFile(path: dir + "/w.gguf"), fq = try GGUFFile(path: dir + "/f.gguf")
            XCTAssertEqual(wq.info("blk.1.ffn_down_exps.weight")?.type, scheme.baseType)
            var errW = 0.0, errF = 0.0
            for (name, _) in back.entries {
                guard let ti = wq.info(name), Self.lowBit.contains(ti.type) else { continue }
                let x = try dequantize(src.tensor(name)!), yw = try dequantize(wq.tensor(name)!), yf = try dequantize(fq.tensor(name)!)
                let cols = ti.dims[0], imp = try back.weights(for: name, matrices: ti.dims.count == 3 ? ti.dims[2] : 1, columns: cols)!
                let perMatrix = x.count / (imp.count / cols)
                for i in x.indices {
                    let w = Double(imp[(i / perMatrix) * cols + i % cols])
                    errW += w * Double((yw[i] - x[i]) * (yw[i] - x[i])); errF += w * Double((yf[i] - x[i]) * (yf[i] - x[i]))
                }
            }
            print("\(scheme.rawValue): activation-weighted weight error with the imatrix \(errW), with a flat one \(errF)")
            XCTAssertLessThan(errW, errF, scheme.rawValue)
            // The file runs: finite logits.
            let m = try ModelLoader.load(ModelFiles.open(.gguf(dir + "/w.gguf")))
            let l = try m.forward(Array(tokens.prefix(8)), cache: m.makeCache(capacity: 8), lastK: 1)
            XCTAssertTrue((0..<V).allSatisfy { l.p[$0].isFinite })
        }
    }
}

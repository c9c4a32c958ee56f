import XCTest
@testable import Tiefsee

/// `tiefsee quantize`: the C quantizers (round trips through the dequantizers), llama.cpp's
/// per-tensor type rules, and whole tiny models converted and run against the f32 references.
final class QuantizeTests: XCTestCase {
    /// Deterministic Gaussian-ish values (sum of uniforms), with rare outliers like real weights.
    static func randomRow(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func u() -> Float { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return Float(s >> 40) / Float(1 << 24) }
        return (0..<n).map { i in
            let g = (u() + u() + u() + u() - 2) * 0.05
            return i % 509 == 0 ? g * 4 : g
        }
    }

    static func relRMS(_ a: [Float], _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += Double((x - y) * (x - y)); den += Double(y * y) }
        return (num / max(den, 1e-30)).squareRoot()
    }

    func roundTrip(_ type: TensorType, bound: Double, file: StaticString = #filePath, line: UInt = #line) throws -> Double {
        let x = Self.randomRow(256 * 16, seed: 42)
        let q = try quantize(x, as: type)
        XCTAssertEqual(q.count, type.byteCount(elements: x.count), file: file, line: line)
        var y = [Float](repeating: 0, count: x.count)
        try q.withUnsafeBytes { b in try y.withUnsafeMutableBufferPointer { try dequantizeRow(type, b.baseAddress!, $0.baseAddress!, count: x.count) } }
        let e = Self.relRMS(y, x)
        XCTAssertLessThan(e, bound, "\(type.rawValue) relative rms error", file: file, line: line)
        // All-zero rows must stay zero (no NaN from 0/0).
        let z = try quantize([Float](repeating: 0, count: 256), as: type)
        var zy = [Float](repeating: 1, count: 256)
        try z.withUnsafeBytes { b in try zy.withUnsafeMutableBufferPointer { try dequantizeRow(type, b.baseAddress!, $0.baseAddress!, count: 256) } }
        XCTAssertTrue(zy.allSatisfy { $0 == 0 }, "\(type.rawValue) zero row", file: file, line: line)
        return e
    }

    func testQuantizerRoundTrips() throws {
        var report = [String]()
        for (t, bound) in [(TensorType.q8_0, 0.01), (.q6_K, 0.02), (.q5_K, 0.04), (.q4_K, 0.08),
                           (.q5_0, 0.05), (.q5_1, 0.05), (.q4_0, 0.10)] {
            let e = try roundTrip(t, bound: bound)
            report.append("\(t.rawValue) \(String(format: "%.4f", e))")
        }
        print("quantize round-trip rel. rms error: " + report.joined(separator: ", "))
    }

    /// Q8_0 is deterministic: our bytes must equal the `gguf` package's `quants.quantize` output,
    /// which wrote fixtures/moe/deepseek-v3/model-mtp-q8_0.gguf (scripts/gen_moe_gguf.py; the
    /// folder's MTP layer included, as blk.3 and blk.3.nextn.*).
    func testQ8_0BytesMatchGGUFPackage() throws {
        let dir = NSTemporaryDirectory() + "tiefsee-q8-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/ds.gguf"
        _ = try quantizeModel(input: fixturePath("moe/deepseek-v3"), output: out, scheme: .q8_0)
        let ours = try GGUFFile(path: out), ref = try GGUFFile(path: fixturePath("moe/deepseek-v3/model-mtp-q8_0.gguf"))
        XCTAssertEqual(Set(ours.tensorInfos.map(\.name)), Set(ref.tensorInfos.map(\.name)))
        var compared = 0
        for i in ours.tensorInfos {
            guard let r = ref.info(i.name) else { continue }
            XCTAssertEqual(i.dims, r.dims, i.name)
            XCTAssertEqual(i.type, r.type, i.name)
            let a = ours.tensor(i.name)!, b = ref.tensor(i.name)!
            XCTAssertEqual(a.byteCount, b.byteCount, i.name)
            XCTAssertEqual(memcmp(a.data, b.data, min(a.byteCount, b.byteCount)), 0, "\(i.name) bytes differ")
            compared += 1
        }
        XCTAssertEqual(compared, 76)
        XCTAssertEqual(ours["deepseek2.block_count"]?.int, 4)
        XCTAssertEqual(ours["deepseek2.nextn_predict_layers"]?.int, 1)
        XCTAssertEqual(ours["general.architecture"]?.string, "deepseek2")
        XCTAssertEqual(ours["general.file_type"]?.int, 7)
        XCTAssertEqual(ours["general.quantization_version"]?.int, 2)
        XCTAssertEqual(ours["tokenizer.ggml.model"]?.string, "gpt2")
        XCTAssertEqual(ours["tokenizer.ggml.bos_token_id"]?.int, 1)
        XCTAssertEqual(ours["tokenizer.ggml.tokens"]?.array?.count, 128)
        XCTAssertEqual(ours.alignment, 32)
    }

    func testTypeRulesFollowLlamaQuantize() {
        let ctx = QuantizationContext(numLayers: 32, numExperts: 0, hasOutput: true)
        func t(_ n: String, _ shape: [Int], _ s: QuantizationScheme = .q4_K_M, _ c: QuantizationContext? = nil) -> TensorType {
            QuantizationRules.type(name: n, shape: shape, scheme: s, context: c ?? ctx)
        }
        XCTAssertEqual(t("blk.0.attn_norm.weight", [4096]), .f32)
        XCTAssertEqual(t("blk.0.attn_q.bias", [4096]), .f32)
        XCTAssertEqual(t("blk.1.ffn_gate_inp.weight", [8, 4096]), .f32)
        XCTAssertEqual(t("output.weight", [32000, 4096]), .q6_K)
        XCTAssertEqual(t("output.weight", [32000, 4096], .q8_0), .q8_0)
        XCTAssertEqual(t("token_embd.weight", [32000, 4096]), .q4_K)
        XCTAssertEqual(t("token_embd.weight", [32000, 4096], .q4_K_M, QuantizationContext(numLayers: 32, numExperts: 0, hasOutput: false)), .q6_K)
        XCTAssertEqual(t("token_embd.weight", [151936, 896], .q4_K_M, QuantizationContext(numLayers: 24, numExperts: 0, hasOutput: false)), .q8_0)
        // use_more_bits(i, 32): i < 4, i >= 28, (i - 4) % 3 == 2
        XCTAssertEqual(t("blk.0.attn_v.weight", [1024, 4096]), .q6_K)
        XCTAssertEqual(t("blk.4.attn_v.weight", [1024, 4096]), .q4_K)
        XCTAssertEqual(t("blk.6.ffn_down.weight", [4096, 14336]), .q6_K)
        XCTAssertEqual(t("blk.7.ffn_down.weight", [4096, 14336]), .q4_K)
        XCTAssertEqual(t("blk.31.ffn_down.weight", [4096, 14336]), .q6_K)
        XCTAssertEqual(t("blk.7.attn_q.weight", [4096, 4096]), .q4_K)
        XCTAssertEqual(t("blk.7.attn_q.weight", [4096, 4096], .q5_K_M), .q5_K)
        XCTAssertEqual(t("blk.7.attn_q.weight", [4096, 4096], .q6_K), .q6_K)
        // Fallbacks for rows that are not whole 256-blocks.
        XCTAssertEqual(t("blk.7.attn_q.weight", [896, 896]), .q5_0)
        XCTAssertEqual(t("blk.7.attn_q.weight", [896, 896], .q5_K_M), .q5_1)
        XCTAssertEqual(t("blk.7.attn_q.weight", [896, 896], .q6_K), .q8_0)
        XCTAssertEqual(t("blk.7.attn_q.weight", [40, 40], .q6_K), .f16)
        // 8 experts: attn_v/attn_k Q8_0, attn_output Q5_K in Q4_K_M.
        let moe = QuantizationContext(numLayers: 32, numExperts: 8, hasOutput: true)
        XCTAssertEqual(t("blk.5.attn_v.weight", [1024, 4096], .q4_K_M, moe), .q8_0)
        XCTAssertEqual(t("blk.5.attn_k.weight", [1024, 4096], .q4_K_M, moe), .q8_0)
        XCTAssertEqual(t("blk.5.attn_output.weight", [4096, 4096], .q4_K_M, moe), .q5_K)
        XCTAssertEqual(t("blk.6.ffn_down_exps.weight", [8, 4096, 14336], .q4_K_M, moe), .q6_K)
        // DeepSeek-V2-Lite-shaped MoE (8 layers, 64 experts): kv_b counts as attention V; the
        // split attn_k_b / attn_v_b do not; expert downs of 1408 fall back per llama.cpp.
        let ds = QuantizationContext(numLayers: 8, numExperts: 64, hasOutput: true)
        XCTAssertEqual(t("blk.0.attn_kv_b.weight", [4096, 512], .q4_K_M, ds), .q6_K)
        XCTAssertEqual(t("blk.1.attn_kv_b.weight", [4096, 512], .q4_K_M, ds), .q4_K)
        XCTAssertEqual(t("blk.0.attn_v_b.weight", [16, 128, 512], .q4_K_M, ds), .q4_K)
        XCTAssertEqual(t("blk.0.attn_k_b.weight", [16, 512, 128], .q4_K_M, ds), .q5_0)
        XCTAssertEqual(t("blk.1.ffn_down_exps.weight", [64, 2048, 1408], .q4_K_M, ds), .q5_0)
        XCTAssertEqual(t("blk.3.ffn_down_exps.weight", [64, 2048, 1408], .q4_K_M, ds), .q8_0)
        XCTAssertEqual(t("blk.3.ffn_down_shexp.weight", [2048, 2816], .q4_K_M, ds), .q6_K)
    }

    struct Figures { let top1: Double; let maxAbs: Float; let greedyMatch: Bool }

    /// Quantizes a fixture, loads the result and compares per-position logits with expected.json.
    func figures(_ rel: String, _ scheme: QuantizationScheme) throws -> Figures {
        let dir = NSTemporaryDirectory() + "tiefsee-qm-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/m.gguf"
        _ = try quantizeModel(input: fixturePath(rel), output: out, scheme: scheme)
        // These figures are about the quantizer: the down projections take two-level activations
        // so that 8-bit activation rounding (the engine's default) does not blur the comparison —
        // the tiny random fixtures have logit gaps of the order of that rounding.
        let saved = Linear.preciseFFNDown
        Linear.preciseFFNDown = true
        defer { Linear.preciseFFNDown = saved }
        let model = try ModelLoader.load(ModelFiles.open(.gguf(out)))
        let j = try JSONValue.parse(contentsOf: fixturePath(rel + "/expected.json"))
        let prompt = j["prompt"]!.array!.map { $0.int! }
        let ref = j["logits"]!.array!.map { ($0.array ?? []).map { Float($0.double ?? .nan) } }
        let greedy = j["greedy"]!.array!.map { $0.int! }
        let V = model.config.vocabSize
        let cache = model.makeCache(capacity: 64)
        let logits = try model.forward(prompt, cache: cache, lastK: prompt.count)
        var agree = 0, worst: Float = 0
        for (t, row) in ref.enumerated() {
            let p = logits.p + t * V
            if Sampler.argmax(p, V) == row.indices.max(by: { row[$0] < row[$1] })! { agree += 1 }
            for v in 0..<V { worst = max(worst, abs(p[v] - row[v])) }
        }
        var next = Sampler.argmax(logits.p + (prompt.count - 1) * V, V)
        var gen = [next]
        while gen.count < greedy.count {
            next = Sampler.argmax(try model.forward([next], cache: cache).p, V)
            gen.append(next)
        }
        return Figures(top1: Double(agree) / Double(ref.count), maxAbs: worst, greedyMatch: gen == greedy)
    }

    /// Acceptance: the DeepSeek-V3 fixture converted to Q8_0 agrees on top-1 at ≥ 99% of positions.
    func testDeepSeekV3Q8_0Top1() throws {
        let f = try figures("moe/deepseek-v3", .q8_0)
        print("deepseek-v3 Q8_0: top-1 \(f.top1), max |Δlogit| \(f.maxAbs), greedy match \(f.greedyMatch)")
        XCTAssertGreaterThanOrEqual(f.top1, 0.99)
    }

    func testFP8DeepSeekV3Q8_0() throws {
        let f = try figures("moe/deepseek-v3-fp8", .q8_0)
        print("deepseek-v3-fp8 Q8_0: top-1 \(f.top1), max |Δlogit| \(f.maxAbs), greedy match \(f.greedyMatch)")
        XCTAssertGreaterThanOrEqual(f.top1, 0.9)
    }

    /// Dense fixtures (Llama Q/K permutation and rope_freqs; Qwen2 biases and tied embeddings),
    /// every scheme: figures printed, loose bounds (these tiny random models have small logit gaps).
    func testDenseFixturesAllSchemes() throws {
        for rel in ["models/llama-gqa-llama3rope", "models/qwen2-bias-tied", "moe/deepseek-v3"] {
            for s in QuantizationScheme.allCases {
                let f = try figures(rel, s)
                print("\(rel) \(s.rawValue): top-1 \(f.top1), max |Δlogit| \(f.maxAbs), greedy match \(f.greedyMatch)")
                if s == .q8_0 || s == .q6_K { XCTAssertGreaterThanOrEqual(f.top1, 0.9, "\(rel) \(s.rawValue)") }
            }
        }
    }

    /// GGUF in: a re-quantized GGUF keeps names and metadata; Q8_0 → Q8_0 copies bytes.
    func testGGUFInput() throws {
        let dir = NSTemporaryDirectory() + "tiefsee-qg-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = fixturePath("gguf/qwen2-bias-tied-f32.gguf")
        let out = dir + "/q.gguf"
        _ = try quantizeModel(input: src, output: out, scheme: .q8_0)
        let a = try GGUFFile(path: out), b = try GGUFFile(path: src)
        XCTAssertEqual(a.tensorInfos.map(\.name), b.tensorInfos.map(\.name))
        XCTAssertEqual(a["general.file_type"]?.int, 7)
        XCTAssertEqual(a["qwen2.block_count"]?.int, b["qwen2.block_count"]?.int)
        let ref = try GGUFFile(path: fixturePath("gguf/qwen2-bias-tied-q8_0.gguf"))
        for i in a.tensorInfos where i.type == .q8_0 {
            let x = a.tensor(i.name)!, y = ref.tensor(i.name)!
            XCTAssertEqual(memcmp(x.data, y.data, x.byteCount), 0, "\(i.name) differs from gguf.quants")
        }
    }

    /// The default model (llama.cpp's official Qwen2.5-Coder-0.5B Q4_K_M), when cached: our Q4_K_M
    /// mix must pick llama.cpp's type for every tensor, and re-quantizing its Q8_0 conversion to
    /// Q4_K_M must reproduce llama.cpp's bytes almost everywhere (the Q8_0 step perturbs a few).
    func testMatchesLlamaCppQ4_K_MOnDefaultModel() throws {
        let official = ModelCache.defaultModelPath
        guard FileManager.default.fileExists(atPath: official) else { throw XCTSkip("default model not cached") }
        let dir = NSTemporaryDirectory() + "tiefsee-qr-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try quantizeModel(input: official, output: dir + "/q8.gguf", scheme: .q8_0)
        _ = try quantizeModel(input: dir + "/q8.gguf", output: dir + "/q4km.gguf", scheme: .q4_K_M)
        let ours = try GGUFFile(path: dir + "/q4km.gguf"), ref = try GGUFFile(path: official)
        XCTAssertEqual(ours.tensorInfos.map(\.name), ref.tensorInfos.map(\.name))
        var same = 0, total = 0
        for i in ref.tensorInfos {
            XCTAssertEqual(ours.info(i.name)?.type, i.type, "\(i.name): llama.cpp chose \(i.type.rawValue)")
            guard i.type.isQuantized, let a = ours.tensor(i.name), let b = ref.tensor(i.name), a.byteCount == b.byteCount else { continue }
            let pa = a.data.assumingMemoryBound(to: UInt8.self), pb = b.data.assumingMemoryBound(to: UInt8.self)
            for k in 0..<a.byteCount where pa[k] == pb[k] { same += 1 }
            total += a.byteCount
        }
        let agreement = Double(same) / Double(max(total, 1))
        print("Q4_K_M bytes equal to llama.cpp's: \(agreement)")
        XCTAssertGreaterThan(agreement, 0.98)
    }
}

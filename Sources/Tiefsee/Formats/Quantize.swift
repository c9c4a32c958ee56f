import CKernels
import Foundation

// MARK: - Row quantization

/// Types `quantizeRow` writes (the C quantizers in quantize.c and quantize_iq.c, plus F32/F16).
public let supportedQuantizeTypes: [TensorType] = [.f32, .f16, .q4_0, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K,
                                                   .iq4_nl, .iq4_xs, .iq2_xxs, .iq2_xs, .iq1_s, .iq1_m]

/// Quantizes `count` floats (a whole number of blocks of `type`) into `dst`
/// (`type.byteCount(elements: count)` bytes), in the block layout llama.cpp and `dequantizeRow` read.
public func quantizeRow(_ type: TensorType, _ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, count: Int) throws {
    try quantizeRows(type, src, dst, rows: 1, rowLength: count, importance: nil)
}

/// `rows` rows of `rowLength` floats, each weighted by the same importance row (`rowLength`
/// values: an imatrix's mean squared activation per column, see `ImportanceMatrix`), or nil.
/// Q2_K, Q3_K and the IQ types use the importance; the other types ignore it.
public func quantizeRows(_ type: TensorType, _ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, rows: Int,
                         rowLength: Int, importance: UnsafePointer<Float>?) throws {
    guard supportedQuantizeTypes.contains(type), let id = type.ggmlID else { throw DequantError.unsupportedType(type) }
    guard rowLength % type.blockSize == 0 else { throw DequantError.badElementCount(type, rowLength) }
    guard tf_quantize_rows(Int32(id), src, dst, Int64(rows), Int64(rowLength), importance) == 0 else {
        throw DequantError.unsupportedType(type)
    }
}

/// `values` quantized to `type` (rows of any length that is a whole number of blocks; with
/// `importance`, rows of `importance.count` values weighted by it).
public func quantize(_ values: [Float], as type: TensorType, importance: [Float]? = nil) throws -> [UInt8] {
    guard let n = type.byteCount(elements: values.count) else { throw DequantError.badElementCount(type, values.count) }
    let rowLength = importance?.count ?? values.count
    guard rowLength > 0, values.count % rowLength == 0 else { throw DequantError.badElementCount(type, values.count) }
    var out = [UInt8](repeating: 0, count: n)
    try values.withUnsafeBufferPointer { v in
        try out.withUnsafeMutableBytes { o in
            guard n > 0 else { return }
            if let w = importance {
                try w.withUnsafeBufferPointer {
                    try quantizeRows(type, v.baseAddress!, o.baseAddress!, rows: values.count / rowLength, rowLength: rowLength,
                                     importance: $0.baseAddress!)
                }
            } else {
                try quantizeRow(type, v.baseAddress!, o.baseAddress!, count: values.count)
            }
        }
    }
    return out
}

// MARK: - Schemes and llama.cpp's per-tensor type choice

/// The `--type` of `tiefsee quantize`: llama.cpp's file types (`llama_ftype`) of the same names.
public enum QuantizationScheme: String, CaseIterable, Sendable {
    case q8_0 = "Q8_0", q4_K_M = "Q4_K_M", q5_K_M = "Q5_K_M", q6_K = "Q6_K"
    case q2_K = "Q2_K", q3_K_M = "Q3_K_M", iq4_XS = "IQ4_XS", iq4_NL = "IQ4_NL"
    case iq2_XXS = "IQ2_XXS", iq2_XS = "IQ2_XS", iq1_S = "IQ1_S", iq1_M = "IQ1_M"

    /// `general.file_type` (llama.cpp's LLAMA_FTYPE_MOSTLY_*).
    public var fileType: UInt32 {
        switch self {
        case .q8_0: return 7
        case .q2_K: return 10
        case .q3_K_M: return 12
        case .q4_K_M: return 15
        case .q5_K_M: return 17
        case .q6_K: return 18
        case .iq2_XXS: return 19
        case .iq2_XS: return 20
        case .iq1_S: return 24
        case .iq4_NL: return 25
        case .iq4_XS: return 30
        case .iq1_M: return 31
        }
    }

    /// The type most weights get.
    public var baseType: TensorType {
        switch self {
        case .q8_0: return .q8_0
        case .q4_K_M: return .q4_K
        case .q5_K_M: return .q5_K
        case .q6_K: return .q6_K
        case .q2_K: return .q2_K
        case .q3_K_M: return .q3_K
        case .iq4_XS: return .iq4_xs
        case .iq4_NL: return .iq4_nl
        case .iq2_XXS: return .iq2_xxs
        case .iq2_XS: return .iq2_xs
        case .iq1_S: return .iq1_s
        case .iq1_M: return .iq1_m
        }
    }

    /// The 1-2 bit schemes whose mix follows llama.cpp's IQ1/IQ2 rules.
    var isVeryLowBit: Bool { [.iq2_XXS, .iq2_XS, .iq1_S, .iq1_M].contains(self) }

    public init?(name: String) {
        guard let s = QuantizationScheme.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else { return nil }
        self = s
    }
}

/// A `--tensor-type REGEX=TYPE` override (llama-quantize's `--tensor-type`): tensors whose name
/// the pattern matches get the type (the first matching override wins), still subject to the
/// row-length fallback.
public struct TensorTypeOverride: Sendable {
    public let pattern: String
    public let type: TensorType
    let regex: NSRegularExpression

    public init(pattern: String, type: TensorType) throws {
        guard supportedQuantizeTypes.contains(type) else {
            throw QuantizeError("--tensor-type: \(type.rawValue) cannot be written (supported: \(supportedQuantizeTypes.map(\.rawValue).joined(separator: ", ")))")
        }
        do { regex = try NSRegularExpression(pattern: pattern) } catch { throw QuantizeError("--tensor-type: bad pattern '\(pattern)'") }
        self.pattern = pattern
        self.type = type
    }

    /// Parses `PATTERN=TYPE`.
    public init(_ spec: String) throws {
        guard let eq = spec.lastIndex(of: "="), let t = TensorType(rawValue: spec[spec.index(after: eq)...].uppercased()) else {
            throw QuantizeError("--tensor-type expects PATTERN=TYPE (e.g. ffn_down=Q4_K), got '\(spec)'")
        }
        try self.init(pattern: String(spec[..<eq]), type: t)
    }

    public func matches(_ name: String) -> Bool {
        regex.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
    }
}

/// What the type choice needs to know about the model.
public struct QuantizationContext: Sendable {
    public var numLayers: Int
    public var numExperts: Int
    /// Whether the file has `output.weight` (else the tied `token_embd` is treated as the output).
    public var hasOutput: Bool
    /// Query heads per KV head (llama.cpp's `n_gqa()`).
    public var gqa: Int
    /// Whether an importance matrix is given (a few rules differ, as in llama.cpp).
    public var hasImatrix: Bool
    public var overrides: [TensorTypeOverride]
    public init(numLayers: Int, numExperts: Int, hasOutput: Bool, gqa: Int = 1, hasImatrix: Bool = false,
                overrides: [TensorTypeOverride] = []) {
        self.numLayers = numLayers; self.numExperts = numExperts; self.hasOutput = hasOutput
        self.gqa = gqa; self.hasImatrix = hasImatrix; self.overrides = overrides
    }
}

public enum QuantizationRules {
    /// llama.cpp's `use_more_bits`: the first and last eighth of the layers, and every third between.
    public static func useMoreBits(_ i: Int, _ n: Int) -> Bool {
        i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
    }

    /// Whether llama-quantize would quantize the tensor at all: 2-D+ `.weight` tensors except
    /// norms, the MoE router and rope frequency factors.
    public static func isQuantizable(name: String, shape: [Int]) -> Bool {
        shape.count >= 2 && name.hasSuffix(".weight") && !name.hasSuffix("_norm.weight")
            && !name.contains("ffn_gate_inp") && !name.hasPrefix("rope_freqs") && shape.last ?? 0 > 0
    }

    static func layerIndex(_ name: String) -> Int? {
        guard name.hasPrefix("blk.") else { return nil }
        return Int(name.dropFirst(4).prefix(while: { $0.isNumber }))
    }

    /// Types that llama.cpp only writes with an importance matrix (except for the token embedding
    /// and the output head): without one their codebook choice is close to arbitrary.
    public static func requiresImatrix(_ t: TensorType, name: String) -> Bool {
        [.iq2_xxs, .iq2_xs, .iq1_s, .iq1_m].contains(t) && name != "token_embd.weight" && name != "output.weight"
    }

    /// The type of one tensor: llama.cpp's `llama_tensor_get_type` for the schemes above (not
    /// Falcon, not the 70B special case). `ordinal` is llama.cpp's running count of attn_v
    /// (resp. ffn_down) tensors before this one in file order; without it the `blk.N.` layer
    /// index is used (the same when the file is in layer order with one such tensor per layer).
    public static func type(name: String, shape: [Int], scheme: QuantizationScheme, context c: QuantizationContext,
                            ordinal: Int? = nil) -> TensorType {
        guard isQuantizable(name: name, shape: shape) else { return .f32 }
        let nx = shape.last!
        let t = c.overrides.first(where: { $0.matches(name) })?.type
            ?? mixType(name: name, nx: nx, scheme: scheme, context: c, layer: ordinal ?? layerIndex(name) ?? 0)
        return fallback(t, rowLength: nx)
    }

    /// llama.cpp's fallback for rows that are not whole blocks of the chosen type.
    static func fallback(_ type: TensorType, rowLength nx: Int) -> TensorType {
        guard nx % type.blockSize != 0 else { return type }
        var t: TensorType
        switch type {
        case .iq1_s, .iq1_m, .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq4_xs: t = .iq4_nl
        case .q2_K, .q3_K, .tq1_0, .tq2_0: t = .q4_0
        case .q4_K: t = .q5_0
        case .q5_K: t = .q5_1
        case .q6_K: t = .q8_0
        default: t = type
        }
        if nx % t.blockSize != 0 { t = .f16 }
        return t
    }

    /// The mix: the scheme's base type, changed for the output head, token embedding, attention
    /// V/K/output and FFN down by the scheme's rules.
    static func mixType(name: String, nx: Int, scheme s: QuantizationScheme, context c: QuantizationContext, layer: Int) -> TensorType {
        var t = s.baseType
        if name == "output.weight" || (!c.hasOutput && name == "token_embd.weight") {
            if nx % t.blockSize != 0 { return .q8_0 }
            return s.isVeryLowBit ? .q5_K : t == .q8_0 ? .q8_0 : .q6_K
        }
        if name == "token_embd.weight" { return s.isVeryLowBit ? .q2_K : t }
        let attnV = name.contains("attn_v.weight") || name.contains("attn_kv_b.weight")
        if s.isVeryLowBit {
            if attnV { return c.gqa >= 4 || c.numExperts >= 4 ? .q4_K : .q2_K }
            if c.numExperts == 8 && name.contains("attn_k.weight") { return .q4_K }
            if name.contains("ffn_down") { return layer < c.numLayers / 8 ? .q2_K : t }
            if name.contains("attn_output.weight") {
                if c.numExperts == 8 { return .q5_K }
                return s == .iq1_S || s == .iq1_M ? .iq2_xxs : t
            }
            return t
        }
        let mixed = s == .q4_K_M || s == .q5_K_M
        if attnV {
            switch s {
            case .q2_K: t = c.gqa >= 4 ? .q4_K : .q3_K
            case .q3_K_M: t = layer < 2 ? .q5_K : .q4_K
            case .iq4_NL, .iq4_XS: if c.gqa >= 4 { t = .q5_K }
            default: if mixed && useMoreBits(layer, c.numLayers) { t = .q6_K }
            }
            if c.numExperts == 8 { t = .q8_0 }
        } else if name.contains("attn_k.weight") {
            if c.numExperts == 8 { t = .q8_0 }
        } else if name.contains("ffn_down") {
            switch s {
            case .q2_K: t = .q3_K
            case .q3_K_M: t = layer < c.numLayers / 16 ? .q5_K : .q4_K
            case .iq4_NL, .iq4_XS: if layer < c.numLayers / 8 && !c.hasImatrix { t = .q5_K }
            default: if mixed && useMoreBits(layer, c.numLayers) { t = .q6_K }
            }
        } else if name.contains("attn_output.weight") {
            if c.numExperts == 8 {
                if [.q2_K, .q3_K_M, .iq4_NL, .q4_K_M, .iq4_XS].contains(s) { t = .q5_K }
            } else if s == .q2_K {
                t = .q3_K
            } else if s == .q3_K_M {
                t = .q4_K
            }
        }
        return t
    }
}

// MARK: - Plan: what to write, where each tensor's values come from

/// One tensor of the output file. Its f32 values are produced in `parts` (consecutive row
/// ranges), so that no tensor needs to be in memory whole: an expert stack is one part per
/// expert, a big matrix a part per chunk of rows.
public struct QuantizeTensorPlan {
    public let name: String
    /// Row-major (outermost first).
    public let shape: [Int]
    public var type: TensorType
    /// Rows and a producer of `rows * shape.last` floats.
    let parts: [(rows: Int, produce: () throws -> [Float])]
    /// A source tensor whose bytes may be copied when it already has the chosen type.
    let passthrough: Tensor?
    /// Per matrix (expert of a 3-D stack, else one) the importance of each column, or nil.
    var importance: [Float]? = nil

    public var rowLength: Int { shape.last ?? 1 }
    public var elementCount: Int { shape.reduce(1, *) }
}

public struct QuantizeError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

/// Streams rows of a source tensor as f32 (any dequantizable type, or block-scaled FP8 with
/// its `weight_scale_inv`), optionally reordering rows.
struct RowReader {
    let tensor: Tensor
    let scaleInv: Tensor?
    let fp8Block: Int

    var rowLength: Int { tensor.shape.count <= 1 ? tensor.elementCount : tensor.rowLength }
    var rowCount: Int { tensor.shape.count <= 1 ? 1 : tensor.rowCount }

    /// Rows `rows` of the output, where output row r is source row `map(r)`.
    func read(_ rows: Range<Int>, map: ((Int) -> Int)? = nil) throws -> [Float] {
        let n = rowLength
        var out = [Float](repeating: 0, count: rows.count * n)
        if let s = scaleInv {
            let scales = try dequantize(s)
            let sc = (n + fp8Block - 1) / fp8Block
            try out.withUnsafeMutableBufferPointer { o in
                try scales.withUnsafeBufferPointer { sp in
                    for (k, r) in rows.enumerated() {
                        let src = map?(r) ?? r
                        guard (src / fp8Block + 1) * sc <= sp.count else { throw QuantizeError("\(tensor.name): scale tensor too small") }
                        dequantizeFP8BlockScaledRow(tensor.data + src * n, scaleRow: sp.baseAddress! + (src / fp8Block) * sc,
                                                    o.baseAddress! + k * n, count: n, blockSize: fp8Block)
                    }
                }
            }
            return out
        }
        try checkTensorBytes(tensor)
        let rowBytes = tensor.type.byteCount(elements: n)!
        try out.withUnsafeMutableBufferPointer { o in
            if let map = map {
                for (k, r) in rows.enumerated() {
                    try dequantizeRow(tensor.type, tensor.data + map(r) * rowBytes, o.baseAddress! + k * n, count: n)
                }
            } else if !rows.isEmpty {
                try dequantizeRow(tensor.type, tensor.data + rows.lowerBound * rowBytes, o.baseAddress!, count: rows.count * n)
            }
        }
        return out
    }
}

/// Splits `rows` rows of `rowLength` into parts of at most ~4M elements.
func chunkedParts(rows: Int, rowLength: Int, _ read: @escaping (Range<Int>) throws -> [Float]) -> [(rows: Int, produce: () throws -> [Float])] {
    let per = max(1, (4 << 20) / max(rowLength, 1))
    return stride(from: 0, to: max(rows, 1), by: per).map { start in
        let r = start..<min(rows, start + per)
        return (r.count, { try read(r) })
    }
}

/// llama.cpp's Q/K row order for its adjacent-pair rope (convert_hf_to_gguf `LlamaModel.permute`):
/// within each head, output row 2i+j is source row j*(hd/2)+i.
func llamaPermutedRow(_ r: Int, headDim hd: Int) -> Int {
    let h = r / hd, k = r % hd
    return h * hd + (k % 2) * (hd / 2) + k / 2
}

public final class QuantizePlan {
    public var tensors: [QuantizeTensorPlan] = []
    public var metadata: [(String, GGUFValue)] = []
    public let scheme: QuantizationScheme
    public let context: QuantizationContext
    /// Source tensors that no output tensor uses (for a warning).
    public var unused: [String] = []
    let files: ModelFiles

    /// Plans the conversion of a model (HF folder or GGUF) to `scheme`, weighting rounding errors
    /// by `importance` when given (required for IQ2_XXS/IQ2_XS/IQ1_S/IQ1_M tensors), with
    /// `overrides` taking precedence over the scheme's mix.
    public init(files: ModelFiles, scheme: QuantizationScheme, importance: ImportanceMatrix? = nil,
                overrides: [TensorTypeOverride] = []) throws {
        self.files = files
        self.scheme = scheme
        var planned = [(name: String, shape: [Int], parts: [(rows: Int, produce: () throws -> [Float])], pass: Tensor?)]()
        var used = Set<String>()
        let src = files.weights

        if let g = files.gguf {
            // GGUF in: names, layouts and metadata are already llama.cpp's; re-quantize tensor by tensor.
            for info in g.tensorInfos {
                guard let t = g.tensor(info.name) else { continue }
                let reader = RowReader(tensor: t, scaleInv: nil, fp8Block: 128)
                planned.append((info.name, t.shape, chunkedParts(rows: reader.rowCount, rowLength: reader.rowLength) { try reader.read($0) }, t))
            }
            let skip: Set<String> = ["general.file_type", "general.quantization_version", "general.alignment"]
            for k in g.metadataKeys where !skip.contains(k) { metadata.append((k, g.metadata[k]!)) }
            let nExp = g.archValue("expert_count")?.int ?? 0
            let heads = g.archValue("attention.head_count")?.int ?? 1
            context = QuantizationContext(numLayers: g.archValue("block_count")?.int ?? 0, numExperts: nExp,
                                          hasOutput: g.info("output.weight") != nil,
                                          gqa: heads / max(1, g.archValue("attention.head_count_kv")?.int ?? heads),
                                          hasImatrix: importance != nil, overrides: overrides)
        } else {
            guard let c = files.config else { throw files.configError ?? QuantizeError("unsupported model") }
            guard case .hfFolder(let dir) = files.location else { throw QuantizeError("expected a model folder") }
            var w = WeightLoader(source: src, naming: .huggingFace, fileName: dir)
            w.fp8BlockSize = c.fp8BlockSize
            let fp8 = c.fp8BlockSize
            func reader(_ name: String) throws -> RowReader {
                let t = try w.tensor(name)
                used.insert(name)
                var s: Tensor? = nil
                if t.type == .f8e4m3 {
                    guard let sc = src.tensor(name + "_scale_inv") else { throw QuantizeError("FP8 tensor '\(name)' has no '\(name)_scale_inv'") }
                    s = sc
                    used.insert(name + "_scale_inv")
                }
                return RowReader(tensor: t, scaleInv: s, fp8Block: fp8)
            }
            func add(_ gguf: String, _ hf: String, permuteHeadDim: Int? = nil, shape: [Int]? = nil) throws {
                let r = try reader(hf)
                let map: ((Int) -> Int)? = permuteHeadDim.map { hd in { llamaPermutedRow($0, headDim: hd) } }
                let shp = shape ?? r.tensor.shape
                planned.append((gguf, shp, chunkedParts(rows: r.rowCount, rowLength: r.rowLength) { try r.read($0, map: map) },
                                permuteHeadDim == nil && r.scaleInv == nil ? r.tensor : nil))
            }
            func addIfPresent(_ gguf: String, _ hf: String, permuteHeadDim: Int? = nil) throws {
                if w.has(hf) { try add(gguf, hf, permuteHeadDim: permuteHeadDim) }
            }
            let arch = try QuantizePlan.ggufArchitecture(c.family)
            let llamaRope = arch == "llama"
            let n = WeightNaming.huggingFace

            try add("token_embd.weight", "model.embed_tokens.weight")
            if c.ropeScaling.kind == .llama3 {
                let factors = QuantizePlan.llama3RopeFactors(c)
                planned.append(("rope_freqs.weight", [factors.count], [(1, { factors })], nil))
            }
            // DeepSeek-V3's multi-token-prediction layers follow as blk.{N…}, with their nextn.*
            // tensors (as llama.cpp's converters write them; placeholders are left out).
            let mtp = c.family == .deepseekV3 && c.numNextnPredictLayers > 0
                && w.has(n.nextn(c.numLayers, "eh_proj")) && w.has(n.layer(c.numLayers, "attn_kv_a_mqa")) ? c.numNextnPredictLayers : 0
            for i in 0..<c.numLayers + mtp {
                if i >= c.numLayers {
                    for k in ["enorm", "hnorm", "eh_proj", "embed_tokens", "shared_head_norm", "shared_head_head"] {
                        try addIfPresent("blk.\(i).nextn.\(k).weight", n.nextn(i, k))
                    }
                }
                try add("blk.\(i).attn_norm.weight", n.layer(i, "attn_norm"))
                try add("blk.\(i).ffn_norm.weight", n.layer(i, "ffn_norm"))
                if let mla = c.mla {
                    if mla.qLoraRank != nil {
                        for k in ["attn_q_a", "attn_q_a_norm", "attn_q_b"] { try add("blk.\(i).\(k).weight", n.layer(i, k)) }
                    } else {
                        try add("blk.\(i).attn_q.weight", n.layer(i, "attn_q"))
                    }
                    try add("blk.\(i).attn_kv_a_mqa.weight", n.layer(i, "attn_kv_a_mqa"))
                    try add("blk.\(i).attn_kv_a_norm.weight", n.layer(i, "attn_kv_a_norm"))
                    try add("blk.\(i).attn_output.weight", n.layer(i, "attn_output"))
                    for k in ["attn_q_a", "attn_kv_a_mqa", "attn_output"] {  // attention_bias
                        try addIfPresent("blk.\(i).\(k).bias", n.layer(i, k, "bias"))
                    }
                    if c.dsa != nil {  // DeepSeek-V3.2's lightning indexer
                        for k in ["indexer.attn_q_b", "indexer.attn_k", "indexer.k_norm", "indexer.proj"] {
                            try add("blk.\(i).\(k).weight", n.layer(i, k))
                        }
                        try add("blk.\(i).indexer.k_norm.bias", n.layer(i, "indexer.k_norm", "bias"))
                    }
                    // The current converter splits kv_b_proj for MLA: attn_k_b [H, lora, nope]
                    // (W_UK transposed per head) and attn_v_b [H, vd, lora].
                    let r = try reader(n.layer(i, "attn_kv_b"))
                    let H = c.numHeads, nope = mla.qkNopeHeadDim, vd = mla.vHeadDim, lora = mla.kvLoraRank
                    guard r.tensor.shape == [H * (nope + vd), lora] else {
                        throw QuantizeError("\(r.tensor.name) has shape \(r.tensor.shape), expected [\(H * (nope + vd)), \(lora)]")
                    }
                    planned.append(("blk.\(i).attn_k_b.weight", [H, lora, nope], [(H * lora, {
                        let all = try r.read(0..<(H * (nope + vd)))
                        var kb = [Float](repeating: 0, count: H * lora * nope)
                        for h in 0..<H { for d in 0..<nope { for l in 0..<lora {
                            kb[(h * lora + l) * nope + d] = all[(h * (nope + vd) + d) * lora + l]
                        } } }
                        return kb
                    })], nil))
                    planned.append(("blk.\(i).attn_v_b.weight", [H, vd, lora], [(H * vd, {
                        let all = try r.read(0..<(H * (nope + vd)))
                        var vb = [Float]()
                        vb.reserveCapacity(H * vd * lora)
                        let stride: Int = (nope + vd) * lora
                        for h in 0..<H {
                            let lo: Int = h * stride + nope * lora
                            vb += all[lo..<(h + 1) * stride]
                        }
                        return vb
                    })], nil))
                } else {
                    for k in ["attn_q", "attn_k", "attn_v", "attn_output"] {
                        let perm: Int? = llamaRope && (k == "attn_q" || k == "attn_k") ? c.headDim : nil
                        try add("blk.\(i).\(k).weight", n.layer(i, k), permuteHeadDim: perm)
                        try addIfPresent("blk.\(i).\(k).bias", n.layer(i, k, "bias"), permuteHeadDim: perm)
                    }
                    try addIfPresent("blk.\(i).attn_q_norm.weight", n.layer(i, "attn_q_norm"))
                    try addIfPresent("blk.\(i).attn_k_norm.weight", n.layer(i, "attn_k_norm"))
                }
                if c.isMoELayer(i), let m = c.moe {
                    guard let router = w.firstTensor(n.layerCandidates(i, "ffn_gate_inp")) else {
                        throw ModelLoadError.missingTensor(n.layer(i, "ffn_gate_inp"), file: dir)
                    }
                    try add("blk.\(i).ffn_gate_inp.weight", router)
                    if w.has(n.expertScoreBias(i)) { try add("blk.\(i).exp_probs_b.bias", n.expertScoreBias(i)) }
                    for p in [WeightNaming.ExpertProjection.gate, .up, .down] {
                        var parts = [(rows: Int, produce: () throws -> [Float])]()
                        var inner: [Int]? = nil
                        for e in 0..<m.numExperts {
                            for ref in n.expertCandidates(i, expert: e, p) {
                                switch ref { case .matrix(let s), .stacked(let s, _): if w.has(s) { used.insert(s); used.insert(s + "_scale_inv") } }
                            }
                            let mat = try w.expertMatrix(i, expert: e, p)  // a view (FP8: dequantized here, one expert)
                            if inner == nil { inner = mat.shape }
                            guard mat.shape == inner! else { throw QuantizeError("layer \(i) expert \(e) \(p) has shape \(mat.shape), expected \(inner!)") }
                            let rows = mat.shape[0]
                            parts.append((rows, { [i, e, p] in
                                let t = try w.expertMatrix(i, expert: e, p)
                                return try RowReader(tensor: t, scaleInv: nil, fp8Block: fp8).read(0..<t.shape[0])
                            }))
                        }
                        planned.append(("blk.\(i).ffn_\(p.rawValue)_exps.weight", [m.numExperts] + inner!, parts, nil))
                    }
                    if let shared = w.firstTensor(n.layerCandidates(i, "ffn_gate_shexp")) {
                        try add("blk.\(i).ffn_gate_shexp.weight", shared)
                        try add("blk.\(i).ffn_up_shexp.weight", w.firstTensor(n.layerCandidates(i, "ffn_up_shexp"))!)
                        try add("blk.\(i).ffn_down_shexp.weight", w.firstTensor(n.layerCandidates(i, "ffn_down_shexp"))!)
                    }
                    if w.has(n.layer(i, "ffn_gate_inp_shexp")) {
                        let t = try w.tensor(n.layer(i, "ffn_gate_inp_shexp"))
                        try add("blk.\(i).ffn_gate_inp_shexp.weight", n.layer(i, "ffn_gate_inp_shexp"), shape: [t.elementCount])
                    }
                } else {
                    for k in ["ffn_gate", "ffn_up", "ffn_down"] { try add("blk.\(i).\(k).weight", n.layer(i, k)) }
                }
            }
            try add("output_norm.weight", "model.norm.weight")
            if !c.tieWordEmbeddings && w.has("lm_head.weight") { try add("output.weight", "lm_head.weight") }
            metadata = try QuantizePlan.hfMetadata(files: files, config: c, arch: arch, nextnLayers: mtp)
            context = QuantizationContext(numLayers: c.numLayers, numExperts: c.moe?.numExperts ?? 0,
                                          hasOutput: planned.contains { $0.name == "output.weight" },
                                          gqa: c.mla != nil ? c.numHeads : c.numHeads / max(1, c.numKVHeads),
                                          hasImatrix: importance != nil, overrides: overrides)
            unused = src.tensorNames.filter { !used.contains($0) }
        }
        metadata.append(("general.file_type", .uint32(scheme.fileType)))
        metadata.append(("general.quantization_version", .uint32(2)))
        // llama.cpp counts attn_v tensors in file order; ffn_down ones too when there is exactly
        // one per layer (else it reads the layer from the name).
        let nDown = planned.filter { $0.name.contains("ffn_down") }.count
        var iV = 0, iDown = 0
        for p in planned {
            var ordinal: Int? = nil
            if p.name.contains("attn_v.weight") || p.name.contains("attn_kv_b.weight") { ordinal = iV; iV += 1 }
            else if p.name.contains("ffn_down") { if nDown == context.numLayers { ordinal = iDown }; iDown += 1 }
            let t = QuantizationRules.type(name: p.name, shape: p.shape, scheme: scheme, context: context, ordinal: ordinal)
            var plan = QuantizeTensorPlan(name: p.name, shape: p.shape, type: t, parts: p.parts, passthrough: p.pass)
            if t.isQuantized, let imatrix = importance {
                plan.importance = try imatrix.weights(for: p.name, matrices: p.shape.count == 3 ? p.shape[0] : 1, columns: plan.rowLength)
            }
            if QuantizationRules.requiresImatrix(t, name: p.name) && plan.importance == nil {
                throw QuantizeError(importance == nil
                    ? "\(p.name) becomes \(t.rawValue), which needs an importance matrix: give --imatrix FILE (see tiefsee imatrix)"
                    : "the importance matrix has no entry for \(p.name), which becomes \(t.rawValue)")
            }
            tensors.append(plan)
        }
        if let imatrix = importance {
            metadata.append(("quantize.imatrix.dataset", .string(imatrix.datasets.last ?? "")))
            metadata.append(("quantize.imatrix.entries_count", .uint32(UInt32(imatrix.entries.count))))
            metadata.append(("quantize.imatrix.chunks_count", .uint32(UInt32(imatrix.chunkCount))))
        }
    }

    static func ggufArchitecture(_ f: ModelFamily) throws -> String {
        switch f {
        case .llama, .mistral, .mixtral: return "llama"
        case .qwen2: return "qwen2"
        case .qwen3: return "qwen3"
        case .qwen2moe: return "qwen2moe"
        case .qwen3moe: return "qwen3moe"
        case .deepseekV2, .deepseekV3: return "deepseek2"
        case .deepseekV32: return "deepseek32"
        case .deepseekV4: throw QuantizeError("quantizing DeepSeek-V4 to GGUF is not supported yet")
        }
    }

    /// llama.cpp's `rope_freqs` for Llama-3 rope scaling: per frequency, the divisor of the
    /// unscaled inverse frequency.
    static func llama3RopeFactors(_ c: ModelConfig) -> [Float] {
        let s = c.ropeScaling, dim = c.ropeDim
        let old = Double(s.originalMaxPositionEmbeddings ?? 8192)
        return (0..<dim / 2).map { i in
            let f = 1 / pow(c.ropeTheta, Double(Float(2 * i) / Float(dim)))
            let wave = 2 * Double.pi / f
            if wave < old / s.highFreqFactor { return 1 }
            if wave > old / s.lowFreqFactor { return Float(s.factor) }
            let smooth = (old / wave - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor)
            return Float(1 / ((1 - smooth) / s.factor + smooth))
        }
    }

    /// The `general.*`, `<arch>.*` and `tokenizer.*` keys llama.cpp's converter writes.
    static func hfMetadata(files: ModelFiles, config c: ModelConfig, arch: String, nextnLayers: Int = 0) throws -> [(String, GGUFValue)] {
        var m = [(String, GGUFValue)]()
        func u32(_ k: String, _ v: Int) { m.append(("\(arch).\(k)", .uint32(UInt32(v)))) }
        func f32(_ k: String, _ v: Double) { m.append(("\(arch).\(k)", .float32(Float(v)))) }
        m.append(("general.architecture", .string(arch)))
        m.append(("general.type", .string("model")))
        m.append(("general.name", .string(URL(fileURLWithPath: files.location.path).lastPathComponent)))
        u32("block_count", c.numLayers + nextnLayers)
        if nextnLayers > 0 { u32("nextn_predict_layers", nextnLayers) }
        u32("context_length", c.maxPositionEmbeddings)
        u32("embedding_length", c.hiddenSize)
        u32("feed_forward_length", c.intermediateSize)
        u32("attention.head_count", c.numHeads)
        f32("rope.freq_base", c.ropeTheta)
        f32("attention.layer_norm_rms_epsilon", c.rmsNormEps)
        u32("vocab_size", c.vocabSize)
        if let mla = c.mla {
            let moe = c.moe!
            u32("attention.head_count_kv", 1)
            u32("leading_dense_block_count", moe.firstKDenseReplace)
            if let q = mla.qLoraRank { u32("attention.q_lora_rank", q) }
            u32("attention.kv_lora_rank", mla.kvLoraRank)
            u32("attention.key_length", mla.kvLoraRank + mla.qkRopeHeadDim)
            u32("attention.value_length", mla.kvLoraRank)
            u32("attention.key_length_mla", mla.qkHeadDim)
            u32("attention.value_length_mla", mla.vHeadDim)
            u32("rope.dimension_count", mla.qkRopeHeadDim)
            if let d = c.dsa {
                u32("attention.indexer.head_count", d.indexNHeads)
                u32("attention.indexer.key_length", d.indexHeadDim)
                u32("attention.indexer.top_k", d.indexTopK)
            }
        } else {
            u32("attention.head_count_kv", c.numKVHeads)
            u32("rope.dimension_count", c.ropeDim)
            if c.headDim != c.hiddenSize / c.numHeads || c.family == .qwen3 || c.family == .qwen3moe {
                u32("attention.key_length", c.headDim)
                u32("attention.value_length", c.headDim)
            }
        }
        if let moe = c.moe {
            u32("expert_count", moe.numExperts)
            u32("expert_used_count", moe.numExpertsPerToken)
            if c.family != .mixtral { u32("expert_feed_forward_length", moe.expertIntermediateSize) }
            if moe.sharedExpertIntermediateSize > 0 { u32("expert_shared_feed_forward_length", moe.sharedExpertIntermediateSize) }
            if c.family.usesMLA {
                u32("expert_shared_count", moe.numSharedExperts)
                f32("expert_weights_scale", moe.routedScalingFactor)
                m.append(("\(arch).expert_weights_norm", .bool(moe.normTopKProb)))
                u32("expert_gating_func", moe.scoring == .sigmoid ? 2 : 1)
                if moe.nGroup > 1 {
                    u32("expert_group_count", moe.nGroup)
                    u32("expert_group_used_count", moe.topKGroup)
                }
            } else if c.family == .qwen3moe || c.family == .qwen2moe {
                m.append(("\(arch).expert_weights_norm", .bool(moe.normTopKProb)))
            }
        }
        let s = c.ropeScaling
        switch s.kind {
        case .linear:
            m.append(("\(arch).rope.scaling.type", .string("linear")))
            f32("rope.scaling.factor", s.factor)
        case .yarn:
            m.append(("\(arch).rope.scaling.type", .string("yarn")))
            f32("rope.scaling.factor", s.factor)
            if let o = s.originalMaxPositionEmbeddings { u32("rope.scaling.original_context_length", o) }
            if c.family.usesMLA, let ma = s.mscaleAllDim { f32("rope.scaling.yarn_log_multiplier", 0.1 * ma) }
        default: break
        }
        m += try tokenizerMetadata(files: files, config: c)
        if let t = files.chatTemplate { m.append(("tokenizer.chat_template", .string(t))) }
        return m
    }

    /// tokenizer.ggml.* from tokenizer.json (byte-level BPE only, as llama.cpp's "gpt2" model).
    static func tokenizerMetadata(files: ModelFiles, config c: ModelConfig) throws -> [(String, GGUFValue)] {
        guard case .hfFolder(let dir) = files.location else { return [] }
        let path = dir + "/tokenizer.json"
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let root = try JSONValue.parse(contentsOf: path)
        guard let model = root["model"], model["type"]?.string ?? "BPE" == "BPE", let vocab = model["vocab"]?.object else {
            throw QuantizeError("\(path): only byte-level BPE tokenizers can be converted")
        }
        var tokens = [String?](repeating: nil, count: max(c.vocabSize, vocab.count))
        for (k, v) in vocab { if let i = v.int, i >= 0 { if i >= tokens.count { tokens += [String?](repeating: nil, count: i + 1 - tokens.count) }; tokens[i] = k } }
        var types = [Int32](repeating: 1, count: tokens.count)
        var added = [String: Int]()
        for a in root["added_tokens"]?.array ?? [] {
            guard let id = a["id"]?.int, let content = a["content"]?.string else { continue }
            if id >= tokens.count { tokens += [String?](repeating: nil, count: id + 1 - tokens.count); types += [Int32](repeating: 1, count: id + 1 - types.count) }
            tokens[id] = content
            types[id] = (a["special"]?.bool ?? false) ? 3 : 4
            added[content] = id
        }
        for i in tokens.indices where tokens[i] == nil { tokens[i] = "[PAD\(i)]"; types[i] = 5 }
        var merges = [GGUFValue]()
        for mg in model["merges"]?.array ?? [] {
            if let s = mg.string { merges.append(.string(s)) }
            else if let p = mg.array, p.count == 2, let a = p[0].string, let b = p[1].string { merges.append(.string(a + " " + b)) }
        }
        var m: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string(preTokenizerName(c.family))),
            ("tokenizer.ggml.tokens", .array(tokens.map { .string($0!) })),
            ("tokenizer.ggml.token_type", .array(types.map { .int32($0) })),
            ("tokenizer.ggml.merges", .array(merges)),
        ]
        let raw = files.rawConfig
        func id(_ key: String, _ cfgKey: String) -> Int? {
            if let text = files.specialTokenText(key), let i = added[text] ?? vocab.first(where: { $0.0 == text })?.1.int { return i }
            return raw?[cfgKey]?.int
        }
        if let b = id("bos_token", "bos_token_id") { m.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(b)))) }
        if let e = id("eos_token", "eos_token_id") { m.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(e)))) }
        if let p = id("pad_token", "pad_token_id") { m.append(("tokenizer.ggml.padding_token_id", .uint32(UInt32(p)))) }
        if let ab = files.tokenizerConfig?["add_bos_token"]?.bool { m.append(("tokenizer.ggml.add_bos_token", .bool(ab))) }
        return m
    }

    /// llama.cpp identifies the pre-tokenizer by hashing its output on a test text; this picks the
    /// name by model family instead (the families Tiefsee runs ship these pre-tokenizers).
    static func preTokenizerName(_ f: ModelFamily) -> String {
        switch f {
        case .qwen2, .qwen3, .qwen2moe, .qwen3moe: return "qwen2"
        case .llama: return "llama-bpe"
        case .deepseekV3, .deepseekV32, .deepseekV4: return "deepseek-v3"
        case .deepseekV2: return "deepseek-llm"
        case .mistral, .mixtral: return "default"
        }
    }

    /// Output bytes of each tensor's data.
    public var totalBytes: Int { tensors.reduce(0) { $0 + ($1.type.byteCount(elements: $1.elementCount) ?? 0) } }

    // MARK: Writing

    /// Writes the GGUF in one pass: the header with computed offsets, then each tensor's data,
    /// produced, quantized and written part by part. `progress(i, n, bytesDone, bytesTotal)`.
    public func write(to path: String, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                      progress: ((Int, Int, Int, Int, String) -> Void)? = nil) throws {
        let alignment = 32
        let (header, offsets) = GGUFWriter.header(
            metadata: metadata, alignment: alignment,
            tensors: tensors.map { ($0.name, $0.type, $0.shape, $0.type.byteCount(elements: $0.elementCount)!) })
        let tmp = path + ".part"
        guard let f = fopen(tmp, "wb") else { throw ModelFileError.io(path: tmp, reason: String(cString: strerror(errno))) }
        var closed = false
        defer { if !closed { fclose(f); unlink(tmp) } }
        func put(_ p: UnsafeRawPointer, _ n: Int) throws {
            guard n == 0 || fwrite(p, 1, n, f) == n else { throw ModelFileError.io(path: tmp, reason: "write failed: \(String(cString: strerror(errno)))") }
        }
        try header.withUnsafeBytes { try put($0.baseAddress!, $0.count) }
        var written = 0
        let total = totalBytes
        let zeros = [UInt8](repeating: 0, count: alignment)
        for (i, t) in tensors.enumerated() {
            progress?(i, tensors.count, written, total, t.name)
            precondition(written <= offsets[i])
            if written < offsets[i] { try zeros.withUnsafeBytes { try put($0.baseAddress!, offsets[i] - written) }; written = offsets[i] }
            let n = t.rowLength
            let rowBytes = t.type.byteCount(elements: n)!
            if let p = t.passthrough, p.type == t.type, p.byteCount == rowBytes * (t.elementCount / max(n, 1)) {
                try put(p.data, p.byteCount)
                written += p.byteCount
                continue
            }
            // Rows of one matrix (one expert of a 3-D stack) share an importance row.
            let rowsPerMatrix = t.shape.count == 3 ? t.shape[1] : max(t.elementCount / max(n, 1), 1)
            var firstRow = 0
            for part in t.parts {
                let values = try part.produce()
                guard values.count == part.rows * n else {
                    throw QuantizeError("\(t.name): a part produced \(values.count) values, expected \(part.rows * n)")
                }
                let out = try QuantizePlan.quantizePart(values, rows: part.rows, firstRow: firstRow, rowLength: n, type: t.type,
                                                       importance: t.importance, rowsPerMatrix: rowsPerMatrix, threads: threads)
                try out.withUnsafeBytes { try put($0.baseAddress!, $0.count) }
                written += out.count
                firstRow += part.rows
            }
        }
        progress?(tensors.count, tensors.count, written, total, "")
        let pad = (alignment - written % alignment) % alignment
        if pad > 0 { try zeros.withUnsafeBytes { try put($0.baseAddress!, pad) } }
        guard fclose(f) == 0 else { closed = true; unlink(tmp); throw ModelFileError.io(path: tmp, reason: "close failed") }
        closed = true
        guard rename(tmp, path) == 0 else { throw ModelFileError.io(path: path, reason: "rename failed: \(String(cString: strerror(errno)))") }
    }
}

extension QuantizePlan {
    /// Quantizes `rows` rows (global row index `firstRow` onwards) on `threads` workers; each
    /// row is weighted by its matrix's importance row when there is one.
    static func quantizePart(_ values: [Float], rows: Int, firstRow: Int, rowLength n: Int, type: TensorType,
                             importance: [Float]?, rowsPerMatrix: Int, threads: Int) throws -> [UInt8] {
        let rowBytes = type.byteCount(elements: n)!
        var out = [UInt8](repeating: 0, count: rows * rowBytes)
        var failed = false
        values.withUnsafeBufferPointer { v in
            out.withUnsafeMutableBytes { o in
                let src = v.baseAddress!, dst = o.baseAddress!
                let workers = max(1, min(threads, rows))
                let per = (rows + workers - 1) / workers
                DispatchQueue.concurrentPerform(iterations: workers) { wk in
                    var lo = wk * per
                    let hi = min(rows, lo + per)
                    while lo < hi {
                        // Up to the end of this row's matrix.
                        let m = (firstRow + lo) / rowsPerMatrix
                        let end = min(hi, (m + 1) * rowsPerMatrix - firstRow)
                        let ok: Bool = importance.map { w in
                            w.withUnsafeBufferPointer { wp in
                                (try? quantizeRows(type, src + lo * n, dst + lo * rowBytes, rows: end - lo, rowLength: n,
                                                   importance: wp.baseAddress! + m * n)) != nil
                            }
                        } ?? ((try? quantizeRows(type, src + lo * n, dst + lo * rowBytes, rows: end - lo, rowLength: n,
                                                 importance: nil)) != nil)
                        if !ok { failed = true }
                        lo = end
                    }
                }
            }
        }
        if failed { throw QuantizeError("cannot quantize rows of \(n) to \(type.rawValue)") }
        return out
    }
}

extension ModelFiles {
    /// config.json of a Hugging Face folder, parsed (nil for GGUF).
    var rawConfig: JSONValue? {
        guard case .hfFolder(let dir) = location else { return nil }
        return try? JSONValue.parse(contentsOf: dir + "/config.json")
    }
}

/// Converts a model folder or GGUF to a llama.cpp-compatible quantized GGUF (`tiefsee quantize`).
public func quantizeModel(input: String, output: String, scheme: QuantizationScheme, importance: ImportanceMatrix? = nil,
                          overrides: [TensorTypeOverride] = [],
                          progress: ((Int, Int, Int, Int, String) -> Void)? = nil) throws -> QuantizePlan {
    let loc = try ModelLocator.resolve(input)
    let files = try ModelFiles.open(loc)
    let plan = try QuantizePlan(files: files, scheme: scheme, importance: importance, overrides: overrides)
    try plan.write(to: output, progress: progress)
    return plan
}

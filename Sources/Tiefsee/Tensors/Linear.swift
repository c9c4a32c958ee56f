import Foundation
import CKernels

/// y = x·Wᵀ (+ b) with W used in its stored type straight from the memory map.
/// Quantized weights multiply activations quantized to 8 bits per 32 values (Q8A), as
/// llama.cpp does (but per 32 values for K-quants too); f32/f16/bf16 weights use f32 activations.
public final class Linear: @unchecked Sendable {
    public let weight: Tensor
    public let bias: [Float]?
    public let outFeatures: Int
    public let inFeatures: Int
    let rowBytes: Int
    let typeCode: Int32
    let activation: ActivationQuant
    /// Quantize activations in two levels (main + residual, ~15 bits) instead of 8 bits.
    public var preciseActivations = false

    public init(weight: Tensor, bias: [Float]? = nil) throws {
        guard weight.shape.count == 2 else {
            throw ModelLoadError.badShape(name: weight.name, shape: weight.shape, expected: "a 2-D matrix")
        }
        self.weight = weight
        self.bias = bias
        outFeatures = weight.shape[0]
        inFeatures = weight.shape[1]
        rowBytes = weight.rowBytes
        if let b = bias, b.count != outFeatures {
            throw ModelLoadError.badShape(name: weight.name + " bias", shape: [b.count], expected: "[\(outFeatures)]")
        }
        guard let act = activationFormat(for: weight.type) else {
            throw ModelLoadError.unsupported("tensor '\(weight.name)' has type \(weight.type.rawValue), which has no matrix kernel yet")
        }
        guard inFeatures % act.blockSize == 0 else {
            throw ModelLoadError.unsupported("tensor '\(weight.name)': rows of \(inFeatures) elements do not fit \(act) activation blocks")
        }
        activation = act
        typeCode = Int32(weight.type.ggmlID ?? 0)
    }

    /// x: `rows` × inFeatures, out: `rows` × outFeatures (row-major).
    public func forward(_ x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>,
                        pool: ThreadPool = .shared) {
        Linear.forward([(self, out)], x: x, rows: rows, pool: pool)
    }

    /// Several matrices that read the same input (q/k/v, gate/up): the activations are quantized
    /// once and one parallel loop covers all their rows, so small projections share a dispatch.
    /// (The one-input case of `forward(jobs:inputs:)`.)
    public static func forward(_ parts: [(Linear, UnsafeMutablePointer<Float>)], x: UnsafePointer<Float>, rows: Int,
                               pool: ThreadPool = .shared) {
        forward(jobs: parts.map { LinearJob($0.0, input: 0, out: $0.1) }, inputs: [LinearInput(x, rows: rows)], pool: pool)
    }

    /// out[t] += bias for each of `rows` output rows.
    func addBias(_ out: UnsafeMutablePointer<Float>, rows: Int) {
        guard let b = bias else { return }
        b.withUnsafeBufferPointer { bp in
            for t in 0..<rows { VectorOps.add(bp.baseAddress!, into: out + t * outFeatures, outFeatures) }
        }
    }

    var wantsExact: Bool {
        activation != .f32 && (Linear.exactActivations || Linear.exactMatch.map { weight.name.contains($0) } == true)
    }
}

extension Linear {
    /// Recomputes the `topK` largest outputs of each row with f32 activations (the weight row
    /// dequantized). Used on the output head: 8-bit activations perturb logits by ~1e-2, enough
    /// to swap near-tied candidates; refining the few that sampling and argmax look at makes
    /// their order exact at the cost of `topK` row dots.
    public func refineTop(_ x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>, topK: Int) {
        guard activation != .f32, topK > 0 else { return }
        let n = inFeatures, o = outFeatures
        // One row per work item: in batched decode (the server) each sequence's row in parallel.
        ThreadPool.shared.parallelFor(rows) { range in
            let row = UnsafeMutablePointer<Float>.allocate(capacity: n)
            defer { row.deallocate() }
            for t in range {
                let logits = out + t * o
                for (id, _) in VectorOps.largest(logits, o, topK) {
                    try? dequantizeRow(self.weight.type, self.weight.data + id * self.rowBytes, row, count: n)
                    logits[id] = VectorOps.dot(row, x + t * n, n) + (self.bias?[id] ?? 0)
                }
            }
        }
    }

    /// Debug/accuracy mode (TIEFSEE_EXACT=1): dequantize weight rows and multiply f32 activations,
    /// so results differ from the f32 reference only by float order. Several times slower.
    public nonisolated(unsafe) static var exactActivations = ProcessInfo.processInfo.environment["TIEFSEE_EXACT"] == "1"
    static let exactMatch = ProcessInfo.processInfo.environment["TIEFSEE_EXACT_MATCH"]
    /// Two-level activations for FFN down projections, opt-in (TIEFSEE_PRECISE=1). Measured on the
    /// default model with per-32 activation scales and the refined head: KL to the f32 reference
    /// 0.00025 → 0.00019 nats, same argmax agreement (98.65%), for ~15% of generation speed and
    /// ~30% of prompt speed — so 8-bit is the default.
    public nonisolated(unsafe) static var preciseFFNDown = ProcessInfo.processInfo.environment["TIEFSEE_PRECISE"] == "1"
    /// Accuracy mode (TIEFSEE_PRECISE=all): two-level activations for every quantized product, so
    /// what remains of a difference to the f32 reference is the weights' own (checks a new kernel
    /// apart from the 8-bit activation noise).
    public nonisolated(unsafe) static var preciseAllActivations = ProcessInfo.processInfo.environment["TIEFSEE_PRECISE"] == "all"

    func forwardDequantized(_ x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        let n = inFeatures, o = outFeatures, tile = 16, w = weight
        pool.parallelFor(o, grain: tile) { range in
            let buf = UnsafeMutablePointer<Float>.allocate(capacity: tile * n)
            defer { buf.deallocate() }
            var lo = range.lowerBound
            while lo < range.upperBound {
                let cnt = min(tile, range.upperBound - lo)
                try? dequantizeRow(w.type, w.data + lo * self.rowBytes, buf, count: cnt * n)
                for t in 0..<rows {
                    for r in 0..<cnt { out[t * o + lo + r] = VectorOps.dot(buf + r * n, x + t * n, n) }
                }
                lo += cnt
            }
        }
        addBias(out, rows: rows)
    }
}

/// Q8A activation rows repacked with the tokens in the vector lanes for `tf_gemm_packed`, the
/// matrix kernel for 2 or more rows (in a decode step, for more than `Linear.rowKernelMaxRows`).
/// Its result for a token does not depend on the other rows in the batch (same float operations
/// in every tile shape), so a prompt token gives the same logits whether it is processed with its
/// whole prompt or with only its predecessor.
final class PackedActivations {
    let data: UnsafeMutableRawPointer

    init?(_ xq: UnsafeRawPointer, n: Int, rows: Int, rowBytes: Int) {
        guard rows >= 2 else { return nil }
        data = UnsafeMutableRawPointer.allocate(byteCount: tf_gemm_pack_bytes(Int32(n), Int32(rows)), alignment: 64)
        tf_gemm_pack(Int32(n), xq, rowBytes, Int32(rows), data)
    }
    deinit { data.deallocate() }
}

/// The per-group activation sums the panel matrix kernel (`tf_gemm_q8a`) starts its integer sums
/// from, once per input: it reads the Q8A rows themselves, decoding each tile of 16 weight rows
/// once into a panel with the rows in the vector lanes. A token's results do not depend on the
/// other rows either (see `PackedActivations`).
final class PanelSums {
    let data: UnsafeMutablePointer<Int32>

    init(_ xq: UnsafeRawPointer, n: Int, rows: Int, rowBytes: Int) {
        data = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, tf_gemm_q8a_sums_bytes(Int32(n), Int32(rows)) / 4))
        tf_gemm_q8a_sums(Int32(n), xq, rowBytes, Int32(rows), data)
    }
    deinit { data.deallocate() }
}

extension Linear {
    /// Whether 2 or more quantized activation rows go through the panel kernel (every quantized
    /// type but Q2_K, which keeps the packed kernel).
    var usesPanelKernel: Bool { activation == .q8_0 && tf_gemm_q8a_supports(typeCode) != 0 }
}

public enum ModelLoadError: Error, CustomStringConvertible {
    case missingTensor(String, file: String)
    case badShape(name: String, shape: [Int], expected: String)
    case unsupported(String)

    public var description: String {
        switch self {
        case .missingTensor(let n, let f): return "tensor '\(n)' is missing from \(f)"
        case .badShape(let n, let s, let e): return "tensor '\(n)' has shape \(s), expected \(e)"
        case .unsupported(let m): return m
        }
    }
}

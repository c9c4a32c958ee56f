import CKernels

/// How activations are prepared for a dot with a weight row of a given type (llama.cpp's
/// scheme): int8 blocks with a scale, so the inner loops are integer.
///  - `.q8_0`: per 32 values `{f32 d, f32 s = d*sum(q), 32 x int8}` (40 bytes) — for every
///    quantized type, K-quants included (one activation scale per 32 values is more accurate
///    than llama.cpp's per-256 Q8_K). Tiefsee's own layout, not ggml's block_q8_0.
///  - `.f32`: plain f32 (named so to avoid confusion with `Optional.none`) — for F32, F16,
///    BF16 weights.
public enum ActivationQuant: Sendable, Equatable {
    case q8_0, f32

    public var blockSize: Int {
        switch self { case .q8_0: return 32; case .f32: return 1 }
    }
    public var blockBytes: Int {
        switch self { case .q8_0: return Int(TF_Q8A_BLOCK_BYTES); case .f32: return 4 }
    }
    /// Bytes needed for `n` activations (n must be a multiple of `blockSize`).
    public func byteCount(elements n: Int) -> Int { n / blockSize * blockBytes }
}

/// The low-bit weight types: integer kernels of their own (quant_lowbit.h), Q8A activations.
public let lowBitTypes: [TensorType] = [.q2_K, .q3_K, .iq1_s, .iq1_m, .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s,
                                        .iq4_xs, .iq4_nl, .mxfp4, .tq1_0, .tq2_0]

/// Weight types `dotRow` supports.
public let quantDotTypes: [TensorType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K] + lowBitTypes

/// The activation format to use with weights of `type` (nil when `dotRow` can't handle the type:
/// dequantize such weights to f32 instead).
public func activationFormat(for type: TensorType) -> ActivationQuant? {
    switch type {
    case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K: return .q8_0
    case .f32, .f16, .bf16: return .f32
    default: return lowBitTypes.contains(type) ? .q8_0 : nil
    }
}

/// Quantizes `n` activations into `dst` (`format.byteCount(elements: n)` bytes). `n` must be a
/// multiple of `format.blockSize`. For `.f32` it copies the floats.
public func quantizeActivations(_ x: UnsafePointer<Float>, count n: Int, format: ActivationQuant,
                                into dst: UnsafeMutableRawPointer) {
    precondition(n % format.blockSize == 0, "\(n) activations is not a multiple of \(format.blockSize)")
    switch format {
    case .q8_0: tf_quantize_row_q8_0(x, dst, Int32(n))
    case .f32: dst.copyMemory(from: x, byteCount: n * 4)
    }
}

/// Convenience: quantized activations for weights of `type`, as bytes.
public func quantizeActivations(_ x: [Float], for type: TensorType) throws -> [UInt8] {
    guard let f = activationFormat(for: type) else { throw DequantError.unsupportedType(type) }
    guard x.count % f.blockSize == 0 else { throw DequantError.badElementCount(type, x.count) }
    var out = [UInt8](repeating: 0, count: f.byteCount(elements: x.count))
    x.withUnsafeBufferPointer { xp in
        out.withUnsafeMutableBytes { quantizeActivations(xp.baseAddress!, count: x.count, format: f, into: $0.baseAddress!) }
    }
    return out
}

/// The instruction set the quantized kernels run with on this CPU ("AVX2" or "AVX-512 VNNI";
/// TIEFSEE_KERNELS=avx2 forces AVX2).
public var kernelInstructionSet: String { tf_kernel_isa() == TF_ISA_AVX512_VNNI ? "AVX-512 VNNI" : "AVX2" }

/// ggml type id used by the C dispatcher.
@inline(__always)
func cTypeCode(_ t: TensorType) -> Int32 {
    switch t {
    case .f32: return Int32(TF_TYPE_F32)
    case .f16: return Int32(TF_TYPE_F16)
    case .bf16: return Int32(TF_TYPE_BF16)
    default: return Int32(t.ggmlID ?? 0xFFFF)
    }
}

/// Dot product of one weight row (`n` elements of `type`, ggml layout) with activations `xq`
/// prepared by `quantizeActivations` with `activationFormat(for: type)` (plain f32 for
/// F32/F16/BF16 weights). `type` must be in `quantDotTypes`.
@inline(__always)
public func dotRow(type: TensorType, row: UnsafeRawPointer, xq: UnsafeRawPointer, n: Int) -> Float {
    let n32 = Int32(n)
    switch type {
    case .q4_0: return tf_vec_dot_q4_0(n32, row, xq)
    case .q4_1: return tf_vec_dot_q4_1(n32, row, xq)
    case .q5_0: return tf_vec_dot_q5_0(n32, row, xq)
    case .q5_1: return tf_vec_dot_q5_1(n32, row, xq)
    case .q8_0: return tf_vec_dot_q8_0(n32, row, xq)
    case .q4_K: return tf_vec_dot_q4_K(n32, row, xq)
    case .q5_K: return tf_vec_dot_q5_K(n32, row, xq)
    case .q6_K: return tf_vec_dot_q6_K(n32, row, xq)
    case .f32: return tf_vec_dot_f32(n32, row.assumingMemoryBound(to: Float.self), xq.assumingMemoryBound(to: Float.self))
    case .f16: return tf_vec_dot_f16_f32(n32, row, xq.assumingMemoryBound(to: Float.self))
    case .bf16: return tf_vec_dot_bf16_f32(n32, row, xq.assumingMemoryBound(to: Float.self))
    default:
        precondition(tf_is_lowbit(cTypeCode(type)) != 0, "dotRow: unsupported weight type \(type.rawValue)")
        return tf_vec_dot_lowbit(cTypeCode(type), n32, row, xq)
    }
}

/// `count` consecutive weight rows (row r at `rows + r * rowStride` bytes) dotted with the same
/// activations: out[r] = dotRow(row r).
public func dotRows(type: TensorType, rows: UnsafeRawPointer, rowStride: Int, count: Int,
                    xq: UnsafeRawPointer, n: Int, out: UnsafeMutablePointer<Float>) {
    let rc = tf_vec_dot_rows(cTypeCode(type), Int32(n), Int32(count), rows, rowStride, xq, out)
    precondition(rc == 0, "dotRows: unsupported weight type \(type.rawValue)")
}

/// Scalar reference of `dotRow` (same integer math, sequential accumulation), for tests.
public func dotRowReference(type: TensorType, row: UnsafeRawPointer, xq: UnsafeRawPointer, n: Int) -> Float {
    let n32 = Int32(n)
    switch type {
    case .q4_0: return tf_vec_dot_q4_0_ref(n32, row, xq)
    case .q4_1: return tf_vec_dot_q4_1_ref(n32, row, xq)
    case .q5_0: return tf_vec_dot_q5_0_ref(n32, row, xq)
    case .q5_1: return tf_vec_dot_q5_1_ref(n32, row, xq)
    case .q8_0: return tf_vec_dot_q8_0_ref(n32, row, xq)
    case .q4_K: return tf_vec_dot_q4_K_ref(n32, row, xq)
    case .q5_K: return tf_vec_dot_q5_K_ref(n32, row, xq)
    case .q6_K: return tf_vec_dot_q6_K_ref(n32, row, xq)
    case .f32: return tf_vec_dot_f32_ref(n32, row.assumingMemoryBound(to: Float.self), xq.assumingMemoryBound(to: Float.self))
    case .f16: return tf_vec_dot_f16_f32_ref(n32, row, xq.assumingMemoryBound(to: Float.self))
    case .bf16: return tf_vec_dot_bf16_f32_ref(n32, row, xq.assumingMemoryBound(to: Float.self))
    default:
        precondition(tf_is_lowbit(cTypeCode(type)) != 0, "dotRowReference: unsupported weight type \(type.rawValue)")
        return tf_vec_dot_lowbit_ref(cTypeCode(type), n32, row, xq)
    }
}

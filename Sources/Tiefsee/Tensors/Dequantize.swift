import CKernels

/// Errors from dequantization and quantized dots.
public enum DequantError: Error, CustomStringConvertible, Equatable {
    case unsupportedType(TensorType)
    case badElementCount(TensorType, Int)
    case sizeMismatch(name: String, expected: Int, actual: Int)
    case badScaleTensor(String)

    public var description: String {
        switch self {
        case .unsupportedType(let t):
            return "dequantization of \(t.rawValue) is not supported (supported: "
                + supportedDequantTypes.map(\.rawValue).joined(separator: ", ") + ")"
        case .badElementCount(let t, let n):
            return "\(n) elements is not a whole number of \(t.rawValue) blocks (\(t.blockSize) each)"
        case .sizeMismatch(let name, let e, let a):
            return "tensor \(name): expected \(e) bytes of data, have \(a)"
        case .badScaleTensor(let why):
            return "block-scaled FP8: \(why)"
        }
    }
}

/// Types `dequantizeRow` / `dequantize` handle.
public let supportedDequantTypes: [TensorType] = [
    .f32, .f16, .bf16, .f8e4m3, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K,
    .iq1_s, .iq1_m, .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq4_xs, .iq4_nl, .mxfp4, .tq1_0, .tq2_0,
]

public func canDequantize(_ type: TensorType) -> Bool { supportedDequantTypes.contains(type) }

/// Dequantizes `count` consecutive elements (a whole number of blocks) of `type` from `src`
/// into `dst`. Bit-exact with llama.cpp's reference dequantization and the `gguf` package.
public func dequantizeRow(_ type: TensorType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>,
                          count: Int) throws {
    guard count >= 0, count % type.blockSize == 0 else { throw DequantError.badElementCount(type, count) }
    let n = Int64(count)
    switch type {
    case .f32: tf_dequant_f32(src, dst, n)
    case .f16: tf_dequant_f16(src, dst, n)
    case .bf16: tf_dequant_bf16(src, dst, n)
    case .f8e4m3: tf_dequant_f8_e4m3(src, dst, n)
    case .q4_0: tf_dequant_q4_0(src, dst, n)
    case .q4_1: tf_dequant_q4_1(src, dst, n)
    case .q5_0: tf_dequant_q5_0(src, dst, n)
    case .q5_1: tf_dequant_q5_1(src, dst, n)
    case .q8_0: tf_dequant_q8_0(src, dst, n)
    case .q2_K: tf_dequant_q2_K(src, dst, n)
    case .q3_K: tf_dequant_q3_K(src, dst, n)
    case .q4_K: tf_dequant_q4_K(src, dst, n)
    case .q5_K: tf_dequant_q5_K(src, dst, n)
    case .q6_K: tf_dequant_q6_K(src, dst, n)
    case .iq1_s: tf_dequant_iq1_s(src, dst, n)
    case .iq1_m: tf_dequant_iq1_m(src, dst, n)
    case .iq2_xxs: tf_dequant_iq2_xxs(src, dst, n)
    case .iq2_xs: tf_dequant_iq2_xs(src, dst, n)
    case .iq2_s: tf_dequant_iq2_s(src, dst, n)
    case .iq3_xxs: tf_dequant_iq3_xxs(src, dst, n)
    case .iq3_s: tf_dequant_iq3_s(src, dst, n)
    case .iq4_xs: tf_dequant_iq4_xs(src, dst, n)
    case .iq4_nl: tf_dequant_iq4_nl(src, dst, n)
    case .mxfp4: tf_dequant_mxfp4(src, dst, n)
    case .tq1_0: tf_dequant_tq1_0(src, dst, n)
    case .tq2_0: tf_dequant_tq2_0(src, dst, n)
    default: throw DequantError.unsupportedType(type)
    }
}

/// Checks that the tensor's data size matches its shape and type.
func checkTensorBytes(_ t: Tensor) throws {
    guard canDequantize(t.type) else { throw DequantError.unsupportedType(t.type) }
    guard t.rowLength % t.type.blockSize == 0, let expected = t.type.byteCount(elements: t.elementCount) else {
        throw DequantError.badElementCount(t.type, t.rowLength)
    }
    guard expected <= t.byteCount else {
        throw DequantError.sizeMismatch(name: t.name, expected: expected, actual: t.byteCount)
    }
}

/// Dequantizes rows `rows` of `t` (each `t.rowLength` elements) into `dst`.
public func dequantizeRows(_ t: Tensor, _ rows: Range<Int>, into dst: UnsafeMutablePointer<Float>) throws {
    try checkTensorBytes(t)
    precondition(rows.lowerBound >= 0 && rows.upperBound <= t.rowCount, "rows \(rows) out of 0..<\(t.rowCount)")
    let rowBytes = t.rowBytes, n = t.rowLength
    // Rows are contiguous, so one call covers the whole range.
    try dequantizeRow(t.type, t.data + rows.lowerBound * rowBytes, dst, count: rows.count * n)
}

/// The whole tensor as f32, row-major in `t.shape`.
public func dequantize(_ t: Tensor) throws -> [Float] {
    try checkTensorBytes(t)
    let n = t.elementCount
    return try [Float](unsafeUninitializedCapacity: n) { buf, initialized in
        if n > 0 { try dequantizeRow(t.type, t.data, buf.baseAddress!, count: n) }
        initialized = n
    }
}

/// One row of a DeepSeek-style block-scaled FP8 weight: `src` holds `count` e4m3fn values of
/// weight row r and `scaleRow` the row `r / blockSize` of `weight_scale_inv`
/// (`ceil(count / blockSize)` floats). Element c = fp8(src[c]) * scaleRow[c / blockSize].
public func dequantizeFP8BlockScaledRow(_ src: UnsafeRawPointer, scaleRow: UnsafePointer<Float>,
                                        _ dst: UnsafeMutablePointer<Float>, count: Int, blockSize: Int = 128) {
    precondition(blockSize > 0 && count >= 0)
    tf_dequant_f8_e4m3_block_scaled_row(src, scaleRow, dst, Int64(count), Int32(blockSize))
}

/// A whole DeepSeek-style block-scaled FP8 weight [out, in] (F8_E4M3) with its
/// `weight_scale_inv` [ceil(out/B), ceil(in/B)] (any dequantizable type, normally F32):
/// value[r][c] = fp8(w[r][c]) * scale[r / B][c / B], B = `blockSize` (128 for DeepSeek V3).
public func dequantizeFP8BlockScaled(weight w: Tensor, scaleInv s: Tensor, blockSize: Int = 128) throws -> [Float] {
    guard w.type == .f8e4m3 else { throw DequantError.badScaleTensor("weight \(w.name) is \(w.type.rawValue), not F8_E4M3") }
    guard w.shape.count == 2 else { throw DequantError.badScaleTensor("weight \(w.name) is not 2-D: \(w.shape)") }
    try checkTensorBytes(w)
    let rows = w.shape[0], cols = w.shape[1]
    let sr = (rows + blockSize - 1) / blockSize, sc = (cols + blockSize - 1) / blockSize
    guard s.shape == [sr, sc] else {
        throw DequantError.badScaleTensor("scale \(s.name) has shape \(s.shape), expected [\(sr), \(sc)] for weight \(w.shape)")
    }
    let scales = try dequantize(s)
    let n = rows * cols
    return [Float](unsafeUninitializedCapacity: n) { buf, initialized in
        scales.withUnsafeBufferPointer { sp in
            for r in 0..<rows {
                dequantizeFP8BlockScaledRow(w.data + r * cols, scaleRow: sp.baseAddress! + (r / blockSize) * sc,
                                            buf.baseAddress! + r * cols, count: cols, blockSize: blockSize)
            }
        }
        initialized = n
    }
}

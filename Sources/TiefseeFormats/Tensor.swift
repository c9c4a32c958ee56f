/// A weight tensor as stored in a model file: its bytes stay in the memory map.
/// `shape` is row-major, outermost first (PyTorch order): a linear layer's weight is
/// [out_features, in_features], and each of its rows is `in_features` contiguous elements
/// (for quantized types: `in_features / blockSize` contiguous blocks).
public struct Tensor: @unchecked Sendable {
    public let name: String
    public let type: TensorType
    public let shape: [Int]
    public let data: UnsafeRawPointer
    public let byteCount: Int
    /// Keeps the mapping (or buffer) that `data` points into alive.
    public let owner: AnyObject?

    public init(name: String, type: TensorType, shape: [Int], data: UnsafeRawPointer, byteCount: Int, owner: AnyObject?) {
        self.name = name; self.type = type; self.shape = shape
        self.data = data; self.byteCount = byteCount; self.owner = owner
    }

    public var elementCount: Int { shape.reduce(1, *) }
    /// Elements per row (innermost dimension).
    public var rowLength: Int { shape.last ?? 1 }
    /// Number of rows (product of all outer dimensions).
    public var rowCount: Int { shape.dropLast().reduce(1, *) }
    public var rowBytes: Int { type.byteCount(elements: rowLength) ?? 0 }
}

/// Multiply dimensions with overflow checks; nil on overflow or a negative dimension.
func checkedProduct(_ dims: [Int]) -> Int? {
    var n = 1
    for d in dims {
        guard d >= 0 else { return nil }
        let (r, o) = n.multipliedReportingOverflow(by: d)
        if o { return nil }
        n = r
    }
    return n
}

// MARK: - Views (no copies)

extension Tensor {
    /// Slice `i` of the outermost dimension as a tensor of one rank less, sharing the bytes:
    /// expert e of a stacked [n_expert, out, in] weight (GGUF `ffn_*_exps`, transformers'
    /// fused `experts.gate_up_proj`) is a plain [out, in] matrix for `Linear`.
    public func slice(_ i: Int) -> Tensor {
        precondition(shape.count >= 2 && i >= 0 && i < shape[0], "slice \(i) of \(name) \(shape)")
        let inner = Array(shape.dropFirst())
        let innerRows = inner.dropLast().reduce(1, *)
        let stride = innerRows * rowBytes
        return Tensor(name: "\(name)[\(i)]", type: type, shape: inner, data: data + i * stride,
                      byteCount: stride, owner: owner)
    }

    /// Rows `r` of a 2-D tensor (each row is contiguous, quantized or not), sharing the bytes.
    public func rows(_ r: Range<Int>) -> Tensor {
        precondition(shape.count == 2 && r.lowerBound >= 0 && r.upperBound <= shape[0], "rows \(r) of \(name) \(shape)")
        return Tensor(name: "\(name)[\(r.lowerBound)..<\(r.upperBound)]", type: type, shape: [r.count, shape[1]],
                      data: data + r.lowerBound * rowBytes, byteCount: r.count * rowBytes, owner: owner)
    }
}

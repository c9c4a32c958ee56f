/// A heap buffer of Floats with a stable address (activations, KV cache, scratch).
/// Allocated 64-byte aligned so SIMD loads never straddle cache lines.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let p: UnsafeMutablePointer<Float>

    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        p = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        if zeroed { p.initialize(repeating: 0, count: max(count, 1)) }
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count, zeroed: false)
        values.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { p.deallocate() }

    public var array: [Float] { Array(UnsafeBufferPointer(start: p, count: count)) }
    public subscript(i: Int) -> Float {
        get { p[i] }
        set { p[i] = newValue }
    }
}

extension Tensor {
    /// An f32 tensor over values computed at load (e.g. dequantized FP8), owning its buffer.
    public static func owned(name: String, shape: [Int], values: [Float]) -> Tensor {
        precondition(shape.reduce(1, *) == values.count)
        let buf = FloatBuffer(values)
        return Tensor(name: name, type: .f32, shape: shape, data: UnsafeRawPointer(buf.p),
                      byteCount: values.count * 4, owner: buf)
    }
}

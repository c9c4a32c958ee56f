import Foundation

/// Writes GGUF v3 files: used by `tiefsee quantize` and by tests that build small or
/// deliberately damaged files. Tensors are given in row-major shape (outermost first).
public struct GGUFWriter {
    public var metadata: [(String, GGUFValue)] = []
    public var tensors: [(name: String, type: TensorType, shape: [Int], bytes: [UInt8])] = []
    public var alignment = 32

    public init() {}

    public mutating func set(_ key: String, _ value: GGUFValue) { metadata.append((key, value)) }

    public mutating func add(_ name: String, type: TensorType, shape: [Int], bytes: [UInt8]) {
        tensors.append((name, type, shape, bytes))
    }

    public mutating func add(_ name: String, shape: [Int], f32 values: [Float]) {
        add(name, type: .f32, shape: shape, bytes: values.withUnsafeBytes { Array($0) })
    }

    public func serialize() -> [UInt8] {
        let (header, _) = GGUFWriter.header(metadata: metadata, alignment: alignment,
                                            tensors: tensors.map { ($0.name, $0.type, $0.shape, $0.bytes.count) })
        var out = header
        for t in tensors {
            out += t.bytes
            while out.count % alignment != 0 { out.append(0) }
        }
        return out
    }

    /// The header (magic, counts, metadata, tensor infos) padded to `alignment`, and each tensor's
    /// offset in the data section (data padded to `alignment` after each tensor). Used for
    /// single-pass streaming writers: header first, then the data in the same order.
    public static func header(metadata: [(String, GGUFValue)], alignment: Int,
                              tensors: [(name: String, type: TensorType, shape: [Int], byteCount: Int)]) -> (bytes: [UInt8], offsets: [Int]) {
        var out = [UInt8]()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func str(_ s: String) { let u = Array(s.utf8); u64(UInt64(u.count)); out += u }
        func value(_ v: GGUFValue) {
            switch v {
            case .uint8(let x): out.append(x)
            case .int8(let x): out.append(UInt8(bitPattern: x))
            case .uint16(let x): withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case .int16(let x): withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case .uint32(let x): u32(x)
            case .int32(let x): u32(UInt32(bitPattern: x))
            case .float32(let x): u32(x.bitPattern)
            case .bool(let x): out.append(x ? 1 : 0)
            case .string(let x): str(x)
            case .array(let a):
                u32(a.first?.typeID ?? 0); u64(UInt64(a.count)); a.forEach(value)
            case .uint64(let x): u64(x)
            case .int64(let x): u64(UInt64(bitPattern: x))
            case .float64(let x): u64(x.bitPattern)
            }
        }
        u32(GGUFFile.magic); u32(3)
        u64(UInt64(tensors.count))
        var meta = metadata
        if alignment != 32 && !meta.contains(where: { $0.0 == "general.alignment" }) {
            meta.append(("general.alignment", .uint32(UInt32(alignment))))
        }
        u64(UInt64(meta.count))
        for (k, v) in meta { str(k); u32(v.typeID); value(v) }
        var offset = 0
        var offsets = [Int]()
        for t in tensors {
            offsets.append(offset)
            offset += (t.byteCount + alignment - 1) / alignment * alignment
        }
        for (i, t) in tensors.enumerated() {
            str(t.name)
            u32(UInt32(t.shape.count))
            for d in t.shape.reversed() { u64(UInt64(d)) }
            u32(t.type.ggmlID ?? 0)
            u64(UInt64(offsets[i]))
        }
        while out.count % alignment != 0 { out.append(0) }
        return (out, offsets)
    }

    public func write(to path: String) throws {
        try Data(serialize()).write(to: URL(fileURLWithPath: path))
    }
}

/// GGUF, the single-file model format llama.cpp writes (versions 2 and 3).
///
/// Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the metadata
/// key/value pairs, the tensor infos (name, dims innermost-first, ggml type, offset), padding
/// to `general.alignment`, then the tensor data. All integers little-endian.
public indirect enum GGUFValue: Equatable, Sendable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16)
    case uint32(UInt32), int32(Int32), float32(Float), bool(Bool)
    case string(String)
    case array([GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    /// GGUF value type ids (gguf.md `gguf_metadata_value_type`), indexed by id.
    static let typeNames = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                            "bool", "string", "array", "uint64", "int64", "float64"]
    static func typeName(_ t: UInt32) -> String? { t < 13 ? typeNames[Int(t)] : nil }

    /// The type id this value is written with.
    var typeID: UInt32 {
        switch self {
        case .uint8: return 0
        case .int8: return 1
        case .uint16: return 2
        case .int16: return 3
        case .uint32: return 4
        case .int32: return 5
        case .float32: return 6
        case .bool: return 7
        case .string: return 8
        case .array: return 9
        case .uint64: return 10
        case .int64: return 11
        case .float64: return 12
        }
    }

    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int64(let v): return Int(v)
        case .bool(let v): return v ? 1 : 0
        default: return nil
        }
    }

    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return int.map(Double.init)
        }
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return int.map { $0 != 0 }
    }
    public var array: [GGUFValue]? { if case .array(let a) = self { return a }; return nil }
    public var stringArray: [String]? { array?.compactMap { $0.string } }

    public var description: String {
        switch self {
        case .string(let s): return s.debugDescription
        case .array(let a):
            let head = a.prefix(8).map { $0.description }.joined(separator: ", ")
            return "[\(head)\(a.count > 8 ? ", … (\(a.count) items)" : "")]"
        case .bool(let b): return String(b)
        case .float32(let f): return String(f)
        case .float64(let f): return String(f)
        default: return String(int ?? 0)
        }
    }
}

public struct GGUFTensorInfo: Sendable {
    public let name: String
    /// Dimensions as stored: innermost (contiguous) first, like ggml's `ne`.
    public let dims: [Int]
    public let type: TensorType
    /// Offset from the start of the data section.
    public let offset: Int
    public let byteCount: Int
}

public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    public let tensorInfos: [GGUFTensorInfo]
    public let alignment: Int
    public let dataOffset: Int
    public let file: MappedFile
    private let tensorIndex: [String: Int]

    public static let magic: UInt32 = 0x4655_4747  // "GGUF" read as little-endian u32

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        self.file = file
        self.path = file.path
        let path = file.path
        func bad(_ r: String) -> ModelFileError { .invalid(path: path, reason: r) }
        var c = ByteCursor(base: file.base, count: file.size, path: path)

        guard file.size >= 4 else { throw bad("file is \(file.size) bytes, too short for a GGUF header") }
        let magic = try c.read(UInt32.self, "magic")
        guard magic == GGUFFile.magic else {
            throw bad("not a GGUF file (magic bytes \(String(magic, radix: 16)), expected 'GGUF')")
        }
        version = try c.read(UInt32.self, "version")
        guard version == 2 || version == 3 else {
            throw ModelFileError.unsupported(path: path, reason: "GGUF version \(version) (supported: 2 and 3)")
        }
        let tensorCount = try c.read(UInt64.self, "tensor count")
        let kvCount = try c.read(UInt64.self, "metadata count")
        // Each metadata entry needs at least 12 bytes and each tensor info at least 24: a
        // count that cannot fit in the file is corrupt, and must not drive a huge allocation.
        guard kvCount <= UInt64(c.remaining / 12) else { throw bad("metadata count \(kvCount) exceeds what the file holds (truncated or corrupt)") }
        guard tensorCount <= UInt64(c.remaining / 24) else { throw bad("tensor count \(tensorCount) exceeds what the file holds (truncated or corrupt)") }

        func readString(_ what: @autoclosure () -> String) throws -> String {
            let n = try c.read(UInt64.self, "length of \(what())")
            guard n <= UInt64(c.remaining) else { throw bad("string length \(n) for \(what()) runs past end of file") }
            let bytes = try c.readBytes(Int(n), what())
            // GGUF strings are UTF-8; invalid bytes are repaired rather than rejected (some
            // converters wrote raw byte tokens), which String(decoding:) does with U+FFFD.
            return String(decoding: bytes, as: UTF8.self)
        }

        func readValue(type t: UInt32, key: String, depth: Int) throws -> GGUFValue {
            switch t {
            case 0: return .uint8(try c.read(UInt8.self, key))
            case 1: return .int8(try c.read(Int8.self, key))
            case 2: return .uint16(try c.read(UInt16.self, key))
            case 3: return .int16(try c.read(Int16.self, key))
            case 4: return .uint32(try c.read(UInt32.self, key))
            case 5: return .int32(try c.read(Int32.self, key))
            case 6: return .float32(try c.readF32(key))
            case 7:
                let b = try c.read(UInt8.self, key)
                guard b <= 1 else { throw bad("bool value \(b) for \(key)") }
                return .bool(b == 1)
            case 8: return .string(try readString(key))
            case 9:
                guard depth < 4 else { throw bad("arrays nested too deeply in \(key)") }
                let et = try c.read(UInt32.self, "array type of \(key)")
                guard GGUFValue.typeName(et) != nil else { throw bad("unknown array element type \(et) in \(key)") }
                let n = try c.read(UInt64.self, "array length of \(key)")
                let minSize: UInt64 = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8][Int(et)]
                guard n <= UInt64(c.remaining) / minSize else { throw bad("array length \(n) for \(key) runs past end of file") }
                var out = [GGUFValue]()
                out.reserveCapacity(Int(n))
                for _ in 0..<Int(n) { out.append(try readValue(type: et, key: key, depth: depth + 1)) }
                return .array(out)
            case 10: return .uint64(try c.read(UInt64.self, key))
            case 11: return .int64(try c.read(Int64.self, key))
            case 12: return .float64(try c.readF64(key))
            default: throw bad("unknown metadata value type \(t) for key '\(key)'")
            }
        }

        var meta = [String: GGUFValue]()
        var keys = [String]()
        for i in 0..<Int(kvCount) {
            let key = try readString("metadata key #\(i)")
            let t = try c.read(UInt32.self, "value type of \(key)")
            let v = try readValue(type: t, key: key, depth: 0)
            guard meta[key] == nil else { throw bad("duplicate metadata key '\(key)'") }
            meta[key] = v
            keys.append(key)
        }
        metadata = meta
        metadataKeys = keys

        var align = 32
        if let a = meta["general.alignment"] {
            guard let v = a.int, v > 0, v & (v - 1) == 0, v <= 1 << 20 else {
                throw bad("general.alignment must be a power of two, got \(a)")
            }
            align = v
        }
        alignment = align

        struct RawInfo { let name: String; let dims: [Int]; let type: TensorType; let offset: UInt64 }
        var raws = [RawInfo]()
        var index = [String: Int]()
        for i in 0..<Int(tensorCount) {
            let name = try readString("name of tensor #\(i)")
            let nd = try c.read(UInt32.self, "dimension count of \(name)")
            guard nd >= 1 && nd <= 4 else { throw bad("tensor '\(name)' has \(nd) dimensions (1 to 4 allowed)") }
            var dims = [Int]()
            for _ in 0..<Int(nd) {
                let d = try c.read(UInt64.self, "dims of \(name)")
                guard d <= UInt64(Int.max) else { throw bad("tensor '\(name)' dimension \(d) overflows") }
                dims.append(Int(d))
            }
            let tid = try c.read(UInt32.self, "type of \(name)")
            guard let type = TensorType(ggmlID: tid) else {
                throw ModelFileError.unsupported(path: path, reason: "tensor '\(name)' has unknown ggml type \(tid)")
            }
            let off = try c.read(UInt64.self, "offset of \(name)")
            guard index[name] == nil else { throw bad("duplicate tensor name '\(name)'") }
            index[name] = raws.count
            raws.append(RawInfo(name: name, dims: dims, type: type, offset: off))
        }
        let headerEnd = c.pos
        dataOffset = (headerEnd + align - 1) / align * align
        let dataSize = file.size - dataOffset

        var infos = [GGUFTensorInfo]()
        infos.reserveCapacity(raws.count)
        for r in raws {
            guard let n = checkedProduct(r.dims) else {
                throw bad("tensor '\(r.name)' dims \(r.dims) overflow")
            }
            guard r.dims[0] % r.type.blockSize == 0, let bytes = r.type.byteCount(elements: n) else {
                throw bad("tensor '\(r.name)' row of \(r.dims[0]) elements is not a whole number of \(r.type.rawValue) blocks")
            }
            guard r.offset % UInt64(align) == 0 else {
                throw bad("tensor '\(r.name)' offset \(r.offset) is not aligned to \(align)")
            }
            guard dataSize >= 0, r.offset <= UInt64(dataSize), UInt64(bytes) <= UInt64(dataSize) - r.offset else {
                throw bad("tensor '\(r.name)' data (offset \(r.offset), \(bytes) bytes) runs past end of file (truncated?)")
            }
            infos.append(GGUFTensorInfo(name: r.name, dims: r.dims, type: r.type, offset: Int(r.offset), byteCount: bytes))
        }
        tensorInfos = infos
        tensorIndex = index
    }

    public func info(_ name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensorInfos[$0] } }

    /// The tensor's bytes, straight from the memory map; shape in row-major (outermost first).
    public func tensor(_ name: String) -> Tensor? {
        guard let i = info(name) else { return nil }
        return Tensor(name: name, type: i.type, shape: Array(i.dims.reversed()),
                      data: file.base + dataOffset + i.offset, byteCount: i.byteCount, owner: file)
    }

    public subscript(key: String) -> GGUFValue? { metadata[key] }

    /// `general.architecture`, e.g. "qwen2", "llama", "deepseek2".
    public var architecture: String? { metadata["general.architecture"]?.string }

    /// An architecture-scoped key, e.g. `archKey("block_count")` → `qwen2.block_count`.
    public func archValue(_ suffix: String) -> GGUFValue? {
        guard let a = architecture else { return nil }
        return metadata["\(a).\(suffix)"]
    }
}

import Foundation

/// safetensors: u64 little-endian header length N, N bytes of JSON
/// `{"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}`,
/// then the raw tensor data (offsets are relative to the end of the header).
public final class SafetensorsFile: @unchecked Sendable {
    public let path: String
    public let file: MappedFile
    public let metadata: [String: String]
    public let tensorNames: [String]
    private var infos: [String: (type: TensorType, shape: [Int], begin: Int, end: Int)] = [:]
    private let dataStart: Int

    /// Headers larger than this are rejected as corrupt (real ones are a few MB at most).
    static let maxHeaderBytes = 100 << 20

    public convenience init(path: String) throws { try self.init(file: MappedFile(path: path)) }

    public init(file: MappedFile) throws {
        self.file = file
        path = file.path
        let path = file.path
        func bad(_ r: String) -> ModelFileError { .invalid(path: path, reason: r) }
        guard file.size >= 8 else { throw bad("file is \(file.size) bytes, too short for a safetensors header") }
        let n = UInt64(littleEndian: file.base.loadUnaligned(as: UInt64.self))
        guard n >= 2, n <= UInt64(SafetensorsFile.maxHeaderBytes) else { throw bad("header length \(n) is implausible") }
        guard n <= UInt64(file.size - 8) else { throw bad("header length \(n) runs past end of file (truncated?)") }
        dataStart = 8 + Int(n)
        let headerBytes = [UInt8](UnsafeRawBufferPointer(start: file.base + 8, count: Int(n)))
        let header: JSONValue
        do {
            header = try JSONValue.parse(headerBytes, maxDepth: 8, rejectDuplicateKeys: true)
        } catch let e as JSONParseError {
            throw bad("header is not valid JSON (\(e.message) at byte \(e.offset))")
        }
        guard let entries = header.object else { throw bad("header is not a JSON object") }
        let dataSize = file.size - dataStart
        var meta = [String: String]()
        var names = [String]()
        var ranges = [(Int, Int, String)]()
        for (name, v) in entries {
            if name == "__metadata__" {
                for (k, mv) in v.object ?? [] { if let s = mv.string { meta[k] = s } }
                continue
            }
            guard let dt = v["dtype"]?.string else { throw bad("tensor '\(name)' has no dtype") }
            guard let type = TensorType(safetensorsDtype: dt) else {
                throw ModelFileError.unsupported(path: path, reason: "tensor '\(name)' has unsupported dtype \(dt)")
            }
            guard let shapeArr = v["shape"]?.array else { throw bad("tensor '\(name)' has no shape") }
            let shape = shapeArr.compactMap { $0.int }
            guard shape.count == shapeArr.count, shape.allSatisfy({ $0 >= 0 }) else { throw bad("tensor '\(name)' has an invalid shape") }
            guard let count = checkedProduct(shape), let bytes = type.byteCount(elements: count) else {
                throw bad("tensor '\(name)' shape \(shape) overflows")
            }
            guard let offs = v["data_offsets"]?.array, offs.count == 2, let b = offs[0].int, let e = offs[1].int, b >= 0, e >= b else {
                throw bad("tensor '\(name)' has invalid data_offsets")
            }
            guard e <= dataSize else { throw bad("tensor '\(name)' data (bytes \(b)..<\(e)) runs past end of file (truncated?)") }
            guard e - b == bytes else { throw bad("tensor '\(name)' has \(e - b) bytes but shape \(shape) of \(dt) needs \(bytes)") }
            infos[name] = (type, shape, b, e)
            names.append(name)
            ranges.append((b, e, name))
        }
        // Overlapping tensors mean a corrupt or hostile file.
        ranges.sort { $0.0 < $1.0 }
        for k in ranges.indices.dropFirst() where ranges[k].0 < ranges[k - 1].1 {
            throw bad("tensors '\(ranges[k - 1].2)' and '\(ranges[k].2)' overlap")
        }
        metadata = meta
        tensorNames = names
    }

    public func tensor(_ name: String) -> Tensor? {
        guard let i = infos[name] else { return nil }
        return Tensor(name: name, type: i.type, shape: i.shape, data: file.base + dataStart + i.begin,
                      byteCount: i.end - i.begin, owner: file)
    }
}

/// A source of named weight tensors: one GGUF file, or a folder of (sharded) safetensors.
public protocol WeightSource: AnyObject {
    var tensorNames: [String] { get }
    func tensor(_ name: String) -> Tensor?
}

extension GGUFFile: WeightSource {
    public var tensorNames: [String] { tensorInfos.map(\.name) }
}

extension SafetensorsFile: WeightSource {}

/// All safetensors of a Hugging Face model folder: `model.safetensors`, or the shards listed
/// in `model.safetensors.index.json` (`weight_map`: tensor name → shard file).
public final class SafetensorsCollection: WeightSource, @unchecked Sendable {
    public let folder: String
    public let shards: [SafetensorsFile]
    private var index: [String: Int] = [:]
    public let tensorNames: [String]

    public init(folder: String) throws {
        self.folder = folder
        let fm = FileManager.default
        let indexPath = folder + "/model.safetensors.index.json"
        var files: [String]
        var expected: [String: String] = [:]
        if fm.fileExists(atPath: indexPath) {
            let idx: JSONValue
            do { idx = try JSONValue.parse(contentsOf: indexPath) } catch {
                throw ModelFileError.invalid(path: indexPath, reason: "\(error)")
            }
            guard let map = idx["weight_map"]?.object else {
                throw ModelFileError.invalid(path: indexPath, reason: "no weight_map")
            }
            for (k, v) in map {
                guard let f = v.string, !f.contains("/") else {
                    throw ModelFileError.invalid(path: indexPath, reason: "bad shard name for \(k)")
                }
                expected[k] = f
            }
            files = Array(Set(expected.values)).sorted()
        } else {
            let all = (try? fm.contentsOfDirectory(atPath: folder)) ?? []
            files = all.filter { $0.hasSuffix(".safetensors") }.sorted()
        }
        guard !files.isEmpty else {
            throw ModelFileError.io(path: folder, reason: "no .safetensors files found")
        }
        var shards = [SafetensorsFile]()
        var names = [String]()
        for f in files {
            let p = folder + "/" + f
            guard fm.fileExists(atPath: p) else {
                throw ModelFileError.io(path: p, reason: "shard listed in model.safetensors.index.json is missing")
            }
            let s = try SafetensorsFile(path: p)
            for n in s.tensorNames {
                if index[n] != nil { throw ModelFileError.invalid(path: p, reason: "tensor '\(n)' appears in two shards") }
                if let want = expected[n], want != f {
                    throw ModelFileError.invalid(path: p, reason: "tensor '\(n)' is in \(f) but the index says \(want)")
                }
                index[n] = shards.count
                names.append(n)
            }
            shards.append(s)
        }
        for (n, f) in expected where index[n] == nil {
            throw ModelFileError.invalid(path: folder + "/" + f, reason: "tensor '\(n)' listed in the index is missing")
        }
        self.shards = shards
        tensorNames = names
    }

    public func tensor(_ name: String) -> Tensor? {
        guard let i = index[name] else { return nil }
        return shards[i].tensor(name)
    }
}

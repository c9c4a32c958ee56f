import Foundation

/// What a MODEL argument names: a GGUF file, a Hugging Face folder, or a short name of a
/// model in the local cache (a GGUF file or folder under ModelCache.modelsDirectory).
public enum ModelLocation: Equatable, Sendable {
    case gguf(String)
    case hfFolder(String)
    case tokenizerJSON(String)

    public var path: String {
        switch self {
        case .gguf(let p), .hfFolder(let p), .tokenizerJSON(let p): return p
        }
    }
}

public struct ModelNotFound: Error, CustomStringConvertible {
    public let name: String
    public let reason: String
    package init(name: String, reason: String) { self.name = name; self.reason = reason }
    public var description: String { "model '\(name)' not found: \(reason)" }
}

public enum ModelLocator {
    /// Resolves a MODEL argument; nil means the default model.
    public static func resolve(_ arg: String?) throws -> ModelLocation {
        let fm = FileManager.default
        guard let name = arg, !name.isEmpty else {
            let p = ModelCache.defaultModelPath
            guard fm.fileExists(atPath: p) else {
                throw ModelNotFound(name: "default", reason: "\(p) is missing; run scripts/fetch-model.sh")
            }
            return .gguf(p)
        }
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: name, isDirectory: &isDir) {
            if isDir.boolValue {
                guard fm.fileExists(atPath: name + "/config.json") || fm.fileExists(atPath: name + "/tokenizer.json")
                        || fm.fileExists(atPath: name + "/tiktoken.model") else {
                    let ggufs = ((try? fm.contentsOfDirectory(atPath: name)) ?? []).filter { $0.hasSuffix(".gguf") }.sorted()
                    if let first = ggufs.first { return .gguf(name + "/" + first) }
                    throw ModelNotFound(name: name, reason: "the folder has no config.json, tokenizer.json, tiktoken.model or .gguf file")
                }
                return .hfFolder(name)
            }
            if name.hasSuffix(".json") { return .tokenizerJSON(name) }
            return .gguf(name)
        }
        if name.contains("/") || name.hasSuffix(".gguf") {
            throw ModelNotFound(name: name, reason: "no such file or folder")
        }
        // A short name: look in the cache, exact file/folder first, then a unique prefix match.
        let dir = ModelCache.modelsDirectory
        let entries = ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).sorted()
        let lower = name.lowercased()
        let matches = entries.filter { $0.lowercased() == lower || $0.lowercased() == lower + ".gguf" }
            + entries.filter { $0.lowercased().hasPrefix(lower) && $0.lowercased() != lower && $0.lowercased() != lower + ".gguf" }
        guard let hit = matches.first else {
            let known = entries.isEmpty ? "the cache \(dir) is empty" : "cached models: \(entries.joined(separator: ", "))"
            throw ModelNotFound(name: name, reason: "not a file, folder or cached model name (\(known))")
        }
        return try resolve(dir + "/" + hit)
    }
}

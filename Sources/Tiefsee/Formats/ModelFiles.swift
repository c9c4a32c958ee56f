import Foundation

/// The files of one model opened for reading: weights, configuration and (when present)
/// tokenizer and chat template sources. Nothing is computed here; models are built from it.
public final class ModelFiles {
    public let location: ModelLocation
    public let gguf: GGUFFile?
    public let weights: WeightSource
    /// nil when the architecture is not one Tiefsee can run (still useful for `info`).
    public let config: ModelConfig?
    public let configError: Error?
    public let architectureName: String
    public let naming: WeightNaming
    /// HF folder: parsed tokenizer_config.json (chat template, bos/eos tokens).
    public let tokenizerConfig: JSONValue?

    public static func open(_ loc: ModelLocation) throws -> ModelFiles { try ModelFiles(loc) }

    init(_ loc: ModelLocation) throws {
        location = loc
        switch loc {
        case .gguf(let p):
            let g = try GGUFFile(path: p)
            gguf = g
            weights = g
            naming = .gguf
            architectureName = g.architecture ?? "unknown"
            tokenizerConfig = nil
            do { config = try ModelConfig.fromGGUF(g); configError = nil } catch { config = nil; configError = error }
        case .hfFolder(let dir):
            gguf = nil
            naming = .huggingFace
            let cfgPath = dir + "/config.json"
            guard FileManager.default.fileExists(atPath: cfgPath) else {
                throw ModelFileError.io(path: cfgPath, reason: "no such file (a model folder needs config.json)")
            }
            let j: JSONValue
            do { j = try JSONValue.parse(contentsOf: cfgPath) } catch {
                throw ModelFileError.invalid(path: cfgPath, reason: "\(error)")
            }
            architectureName = j["architectures"]?[0]?.string ?? j["model_type"]?.string ?? "unknown"
            do { config = try ModelConfig.fromHF(j, path: cfgPath); configError = nil } catch { config = nil; configError = error }
            do { weights = try SafetensorsCollection(folder: dir) } catch {
                // An unsupported architecture is the more useful message when both fail.
                if let ce = configError { throw ce }
                throw error
            }
            let tc = dir + "/tokenizer_config.json"
            tokenizerConfig = FileManager.default.fileExists(atPath: tc) ? try? JSONValue.parse(contentsOf: tc) : nil
        case .tokenizerJSON(let p):
            throw ModelFileError.unsupported(path: p, reason: "a tokenizer.json holds no model weights")
        }
    }

    /// The chat template source: GGUF `tokenizer.chat_template`, or the folder's (TokenizerFolderConfig).
    public var chatTemplate: String? {
        if let g = gguf { return g["tokenizer.chat_template"]?.string }
        return TokenizerFolderConfig(self).chatTemplate
    }

    /// tokenizer_config.json's text for a special token (`bos_token`, `eos_token`).
    public func specialTokenText(_ key: String) -> String? { TokenizerFolderConfig(self).specialTokenText(key) }

    /// A short human-readable line about special tokens, for `info`.
    public var tokenizerSummary: String? {
        if let g = gguf {
            let tokens = g["tokenizer.ggml.tokens"]?.stringArray ?? []
            func name(_ key: String) -> String? {
                guard let id = g[key]?.int else { return nil }
                return id < tokens.count ? "\(tokens[id].debugDescription) (\(id))" : "\(id)"
            }
            var parts = ["tokenizer:     \(g["tokenizer.ggml.model"]?.string ?? "?") (pre \(g["tokenizer.ggml.pre"]?.string ?? "default")), \(tokens.count) tokens"]
            for (label, key) in [("bos", "tokenizer.ggml.bos_token_id"), ("eos", "tokenizer.ggml.eos_token_id"),
                                 ("eot", "tokenizer.ggml.eot_token_id"), ("pad", "tokenizer.ggml.padding_token_id")] {
                if let n = name(key) { parts.append("  \(label): \(n)") }
            }
            if let b = g["tokenizer.ggml.add_bos_token"]?.bool { parts.append("  add_bos_token: \(b)") }
            return parts.joined(separator: "\n")
        }
        guard let tc = tokenizerConfig else { return nil }
        func tok(_ k: String) -> String? { tc[k]?.string ?? tc[k]?["content"]?.string }
        var file = "tokenizer.json"
        if case .hfFolder(let dir) = location, !FileManager.default.fileExists(atPath: dir + "/tokenizer.json") {
            file = FileManager.default.fileExists(atPath: dir + "/tiktoken.model") ? "tiktoken.model (Kimi-K2's tiktoken BPE)" : "none (no tokenizer.json)"
        }
        var parts = ["tokenizer:     \(file)"]
        for k in ["bos_token", "eos_token", "pad_token"] { if let v = tok(k) { parts.append("  \(k): \(v.debugDescription)") } }
        return parts.joined(separator: "\n")
    }
}

/// What a Hugging Face folder says about chat formatting: tokenizer_config.json (chat template,
/// special tokens) or chat_template.jinja. A model folder has these next to config.json; a
/// tokenizer-only folder (what `AutoTokenizer` loads) has only them.
public struct TokenizerFolderConfig {
    public let folder: String?
    public let json: JSONValue?

    public init(folder: String) {
        self.folder = folder
        let tc = folder + "/tokenizer_config.json"
        json = FileManager.default.fileExists(atPath: tc) ? try? JSONValue.parse(contentsOf: tc) : nil
    }

    public init(_ files: ModelFiles) {
        if case .hfFolder(let dir) = files.location { folder = dir } else { folder = nil }
        json = files.tokenizerConfig
    }

    /// tokenizer_config.json's `chat_template` (a string, or a list of named templates: "default"
    /// is used), else chat_template.jinja.
    public var chatTemplate: String? {
        guard let t = json?["chat_template"] else {
            if let dir = folder, let s = try? String(contentsOfFile: dir + "/chat_template.jinja", encoding: .utf8) { return s }
            return nil
        }
        if let s = t.string { return s }
        if let list = t.array {
            let named = list.compactMap { e -> (String, String)? in
                guard let n = e["name"]?.string, let s = e["template"]?.string else { return nil }
                return (n, s)
            }
            return named.first(where: { $0.0 == "default" })?.1 ?? named.first?.1
        }
        return nil
    }

    /// The text of a special token (`bos_token`, `eos_token`): a string, or an object with `content`.
    public func specialTokenText(_ key: String) -> String? {
        guard let v = json?[key] else { return nil }
        return v.string ?? v["content"]?.string
    }
}

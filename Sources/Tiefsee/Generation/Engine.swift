import Foundation

/// How an engine runs its model (beyond the model files themselves).
public struct EngineOptions: Sendable {
    /// MoE models: paging hints and resident experts (nil: experts are read from the mapping
    /// with the kernel's default paging). See ExpertResidency.swift. The default is hints
    /// without a resident set: free when the model fits in memory, ~4× faster decoding when
    /// it does not.
    public var experts: ExpertResidencyOptions?
    /// The DeepSeek prompt encoder to use instead of the chat template; nil: chosen from the
    /// architecture (V3.2 and V4 models), the chat template otherwise.
    public var chatEncoding: DeepSeekEncoding?
    /// How the KV cache stores keys and values (`--cache-type-k/-v`).
    public var cacheKeyType = KVCacheType.f32
    public var cacheValueType = KVCacheType.f32

    public init(experts: ExpertResidencyOptions? = ExpertResidencyOptions(), chatEncoding: DeepSeekEncoding? = nil) {
        self.experts = experts
        self.chatEncoding = chatEncoding
    }
}

/// A loaded model ready to generate: weights (memory-mapped), tokenizer and chat template.
public final class Engine: @unchecked Sendable {
    public let files: ModelFiles
    public let model: TransformerModel
    public let tokenizer: Tokenizer
    public let chatTemplateSource: String?
    /// V3.2 / V4 models: the prompt encoder that replaces a chat template (DeepSeekEncoding.swift).
    public let deepSeekEncoding: DeepSeekEncoding?
    /// The chat template parsed once at load (nil without one); a template that does not parse
    /// keeps its error, reported by every `renderChat` as before.
    let chatTemplate: Result<ChatTemplate, Error>?
    /// Set up from `EngineOptions.experts` on MoE models.
    public let expertResidency: ExpertResidency?

    public var config: ModelConfig { model.config }

    public init(files: ModelFiles, options: EngineOptions = EngineOptions()) throws {
        self.files = files
        model = try ModelLoader.load(files)
        try model.setCacheTypes(key: options.cacheKeyType, value: options.cacheValueType)
        expertResidency = model.configureExpertResidency(options.experts)
        switch files.location {
        case .gguf:
            tokenizer = try Tokenizer.load(gguf: files.gguf!)
        case .hfFolder(let dir):
            tokenizer = try Tokenizer.load(modelFolder: dir)
        case .tokenizerJSON(let p):
            throw ModelFileError.unsupported(path: p, reason: "a tokenizer.json holds no model weights")
        }
        chatTemplateSource = files.chatTemplate
        chatTemplate = files.chatTemplate.map { src in Result { try ChatTemplate(source: src) } }
        deepSeekEncoding = options.chatEncoding ?? DeepSeekEncoding.forArchitecture(files.architectureName)
    }

    public static func load(_ modelArgument: String?, options: EngineOptions = EngineOptions()) throws -> Engine {
        try Engine(files: ModelFiles.open(ModelLocator.resolve(modelArgument)), options: options)
    }

    /// The model's own context length, bounded so the KV cache stays within `maxCacheBytes`.
    public func defaultContextSize(maxCacheBytes: Int = 2 << 30) -> Int {
        let perToken = max(1, model.cacheBytesPerToken)
        return max(256, min(config.maxPositionEmbeddings, maxCacheBytes / perToken))
    }

    /// Special token text as the chat template expects it (`bos_token`, `eos_token`).
    public var bosToken: String { tokenizer.bosID.map { tokenizer.piece($0) } ?? "" }
    public var eosToken: String { tokenizer.eosID.map { tokenizer.piece($0) } ?? "" }

    /// Renders a conversation with the model's chat template (or its DeepSeek encoder, which
    /// reads `thinking`/`enable_thinking`/`drop_thinking` from `extra`). Without either, a plain
    /// "role: content" transcript is used.
    public func renderChat(_ messages: [JSONValue], tools: [JSONValue]? = nil, addGenerationPrompt: Bool = true,
                           extra: [String: JSONValue] = [:], reasoningEffort: String? = nil) throws -> String {
        if let enc = deepSeekEncoding {
            return try enc.render(messages: messages, tools: tools, options: DeepSeekEncodingOptions(kwargs: extra, reasoningEffort: reasoningEffort))
        }
        guard let parsed = chatTemplate else {
            var s = ""
            for m in messages { s += "\(m["role"]?.string ?? "user"): \(m["content"]?.string ?? "")\n" }
            return addGenerationPrompt ? s + "assistant: " : s
        }
        return try parsed.get().render(messages: messages, tools: tools, addGenerationPrompt: addGenerationPrompt,
                            bosToken: bosToken, eosToken: eosToken, extra: extra)
    }

    /// Token ids of a rendered prompt: special tokens in it are matched, and a BOS is added
    /// only if the tokenizer wants one and the template did not already write it.
    public func encodePrompt(_ text: String) -> [Int] {
        var ids = tokenizer.encode(text, parseSpecial: true)
        if tokenizer.addsBOS, let bos = tokenizer.bosID, ids.first != bos { ids.insert(bos, at: 0) }
        return ids
    }
}

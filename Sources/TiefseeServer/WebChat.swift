import Foundation
import Tiefsee

/// The chat page's side of the server: its files at `/` (WebChatAssets, compiled into the
/// binary: no CDN, no outbound request), and the endpoints only it needs — the model panel
/// (`GET /api/model`), the knowledge-base picker (`GET /api/knowledge`) and document upload
/// (`POST /api/knowledge/NAME/documents?filename=F`). Conversations go through the ordinary
/// `/v1/chat/completions`.
extension OpenAIServer {
    /// The page's files and session endpoints (shared with `ModelRouter`); nil for other paths.
    static func webResponse(_ req: HTTPRequest, _ config: ServerConfig) -> HTTPResponse? {
        if let f = WebChatAssets.files[req.path] {
            // The page loads nothing from elsewhere, and nothing else may frame it.
            return HTTPResponse(status: 200, headers: [
                ("Content-Type", f.contentType), ("Cache-Control", "no-cache"),
                ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"),
                ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
            ], body: .bytes(Array(f.body.utf8)))
        }
        return sessionResponse(req, config)
    }

    /// NAME of `/api/knowledge/NAME/documents`.
    static func uploadTarget(_ path: String) -> String? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[1] == "api", parts[2] == "knowledge", parts[4] == "documents" else { return nil }
        return String(parts[3]).removingPercentEncoding
    }

    func knowledgeBases(_ req: HTTPRequest) throws -> HTTPResponse {
        guard let f = hooks.knowledgeBases else {
            return .json(200, .object([("object", .string("list")), ("data", .array([])), ("available", .bool(false))]))
        }
        return .json(200, try f(OpenAIServer.knowledgeAccess(req, config)))
    }

    func upload(_ req: HTTPRequest, kb: String) throws -> HTTPResponse {
        guard let f = hooks.upload else {
            throw OpenAIError(400, "knowledge bases are not available on this server (start it with --embedding-model, or fetch the default embedding model)",
                              code: "knowledge_unavailable")
        }
        guard let name = req.query("filename") else {
            throw OpenAIError.badParam("filename", "give the document's name as ?filename=NAME")
        }
        return .json(200, try f(kb, name, req.body, OpenAIServer.knowledgeAccess(req, config)))
    }

    /// The model panel: what is loaded, its size and shape, the context per conversation, and for
    /// MoE models how many experts a token uses and how often each was chosen so far.
    var modelInfo: JSONValue {
        let c = engine.config
        let params = ParameterCount.of(config: c, weights: engine.files.weights)
        var byType: [String: Int] = [:]
        for name in engine.files.weights.tensorNames {
            if let t = engine.files.weights.tensor(name) { byType[t.type.rawValue, default: 0] += t.byteCount }
        }
        let fileType = engine.files.gguf?["general.file_type"]?.int.flatMap { OpenAIServer.ggufFileTypes[$0] }
        let weightType = fileType ?? byType.max { $0.value < $1.value }?.key ?? "unknown"
        var o: [(String, JSONValue)] = [
            ("id", .string(modelID)), ("architecture", .string(engine.files.architectureName)), ("family", .string(c.family.rawValue)),
            ("format", .string(engine.files.gguf != nil ? "gguf" : "safetensors")), ("weights_type", .string(weightType)),
            ("weights_bytes", .int(byType.values.reduce(0, +))),
            ("parameters", .object([("total", .int(params.total)), ("active_per_token", .int(params.activePerToken))])),
            ("context_length", .int(contextSize)), ("max_position_embeddings", .int(c.maxPositionEmbeddings)),
            ("slots", .int(scheduler.parallel)), ("slots_busy", .int(scheduler.busySlots)),
            ("layers", .int(c.numLayers)), ("hidden_size", .int(c.hiddenSize)), ("heads", .int(c.numHeads)),
            ("kv_heads", .int(c.numKVHeads)), ("vocab_size", .int(c.vocabSize)),
            ("kv_cache_bytes_per_token", .int(engine.model.cacheBytesPerToken)),
            ("reasoning", .bool(splitsReasoning)), ("tools", .bool(supportsTools)),
            ("knowledge", .bool(hooks.knowledge != nil)),
        ]
        o.append(("moe", moeInfo))
        return .object(o)
    }

    /// Names of llama.cpp's `general.file_type` values (LLAMA_FTYPE_MOSTLY_*) for the common mixes.
    static let ggufFileTypes: [Int: String] = [
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M",
        13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 32: "BF16",
    ]

    /// nil for dense models. `routing.counts[layer][expert]`: tokens sent to that expert since
    /// the server started (prompt and generated tokens), `routing.tokens[layer]`: tokens routed.
    var moeInfo: JSONValue {
        guard let m = engine.config.moe else { return .null }
        let layers = (0..<engine.config.numLayers).filter { engine.config.isMoELayer($0) }
        var o: [(String, JSONValue)] = [
            ("experts", .int(m.numExperts)), ("experts_per_token", .int(m.numExpertsPerToken)),
            ("shared_experts", .int(m.numSharedExperts)), ("moe_layers", .array(layers.map { .int($0) })),
            ("active_share", .double(Double(m.numExpertsPerToken) / Double(max(1, m.numExperts)))),
        ]
        if let r = routing {
            let counts = r.counts, tokens = r.tokens
            o.append(("routing", .object([
                ("tokens", .array(layers.map { .int(tokens[$0]) })),
                ("counts", .array(layers.map { .array(counts[$0].map { .int($0) }) })),
            ])))
        }
        return .object(o)
    }
}

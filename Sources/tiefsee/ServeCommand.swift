import Foundation
import Tiefsee
import TiefseeKnowledge
import TiefseeServer
#if canImport(Glibc)
import Glibc
#endif

/// `tiefsee serve`: the OpenAI-compatible HTTP server.
enum ServeCommand {
    static let spec: [OptionSpec] = [
        OptionSpec.help,
        OptionSpec("host", nil, .text, value: "ADDR", help: "numeric IPv4/IPv6 address to bind (default 127.0.0.1)"),
        OptionSpec("port", nil, .int(0...65535), value: "N", help: "TCP port (default 8080; 0 picks a free one)"),
        OptionSpec("api-key", nil, .text, value: "KEY", help: "require 'Authorization: Bearer KEY' (or env TIEFSEE_API_KEY)"),
        OptionSpec("users", nil, .text, value: "PATH", help: """
            user database (tiefsee user add): users' API keys or a chat-page login
            are required, and knowledge bases are read by the groups granted them
            (default: $TIEFSEE_HOME/users.sqlite when it exists; --users none: no users)
            """),
        OptionSpec("parallel", "-np", .int(1...64), value: "N", help: "sequences decoded together, each with its own KV cache (default 4)"),
        OptionSpec("ctx", "-c", .int(16...Int.max), value: "N", help: "context per sequence (default: the model's maximum, bounded by memory)"),
        OptionSpec.threads,
        OptionSpec("queue", nil, .int(0...Int.max), value: "N", help: "requests that may wait for a slot before 503 (default 32)"),
        OptionSpec("max-body", nil, .int(1024...Int.max), value: "BYTES", help: "largest request body (default 8388608)"),
        OptionSpec("timeout", nil, .int(1...Int.max), value: "S", help: "idle connection timeout in seconds (default 15)"),
        OptionSpec("model-id", nil, .text, value: "NAME", help: "the model name clients use (default: the file name)"),
        OptionSpec("models-dir", nil, .text, value: "DIR", help: """
            serve every model in DIR (*.gguf files, Hugging Face folders): a
            request's "model" loads it on first use; GET /v1/models lists them
            """),
        OptionSpec("models-max", nil, .int(1...Int.max), value: "N", help: """
            models kept loaded at once; the least recently used idle one is
            unloaded to make room (default 1; needs --models-dir)
            """),
        OptionSpec("cache-ram", nil, .int(0...(1 << 30)), value: "MiB", help: """
            keep KV states of prompts beyond the slots in this much RAM: a
            later request starting with the same long system prompt or passages
            reads only what follows them (default 0: off)
            """),
        OptionSpec("think", nil, .choice(["on", "off"]), value: "on|off", help: """
            default thinking switch of hybrid models (a request's
            chat_template_kwargs override it)
            """),
        OptionSpec("embedding-model", nil, .text, value: "M", help: """
            serve POST /v1/embeddings with this sentence-transformers model (folder
            or name in the model cache, e.g. all-minilm-l6-v2) and search knowledge
            bases with it
            """),
        OptionSpec("reranker-model", nil, .text, value: "M", help: """
            serve POST /v1/rerank ({"query", "documents", "top_n"} →
            {"results": [{"index", "relevance_score"}]}) with this cross-encoder
            (BERT or XLM-RoBERTa, e.g. a bge-reranker folder); knowledge answers
            rerank their passages with it
            """),
    ] + EngineFlags.spec + DraftFlags.spec

    static let help = """
    usage: tiefsee serve [MODEL] [options]
           tiefsee serve --models-dir DIR [--models-max N] [options]

    OpenAI-compatible server: POST /v1/chat/completions, POST /v1/completions, POST /v1/responses,
    POST /v1/messages (Anthropic), GET /v1/models, GET /health, GET /metrics, POST /v1/embeddings
    (with --embedding-model), and a chat page at / . Binds to loopback
    unless --host says otherwise.

    \(OptionSpec.helpText(spec))

    Knowledge bases (tiefsee kb add): a chat request with "knowledge": "NAME" (or
    {"kb": "NAME", "top_k": 3, "min_score": 0.3}), or with model "MODEL@kb:NAME", is answered
    like tiefsee ask from that base, with a top-level "sources" array. Needs --embedding-model
    or the default embedding model (scripts/fetch-embedding-model.sh).
    """

    static func run(_ argv: ArraySlice<String>) throws {
        let a = try Args(argv, spec: spec)
        if a.has("help") { print(help); return }
        guard a.positional.count <= 1 else { throw CLIError("serve takes at most one MODEL argument") }
        var cfg = ServerConfig()
        cfg.host = a.string("host") ?? "127.0.0.1"
        if let p = try a.int("port") { cfg.port = p }
        cfg.apiKey = a.string("api-key") ?? ProcessInfo.processInfo.environment["TIEFSEE_API_KEY"]
        if cfg.apiKey?.isEmpty == true { cfg.apiKey = nil }
        cfg.users = try openUsers(a.string("users"))
        if let n = try a.int("parallel") { cfg.parallel = n }
        if let c = try a.int("ctx") { cfg.contextSize = c }
        if let q = try a.int("queue") { cfg.maxQueue = q }
        if let b = try a.int("max-body") { cfg.limits.maxBodyBytes = b }
        if let t = try a.int("timeout") { cfg.limits.idleTimeoutSeconds = t }
        cfg.modelID = a.string("model-id")
        if let m = try a.int("cache-ram") { cfg.cacheRAMBytes = m << 20 }
        if let t = a.string("think") {
            let on = t == "on"
            cfg.chatTemplateKwargs = ["thinking": .bool(on), "enable_thinking": .bool(on)]
        }
        try a.configureThreads()
        // Many idle connections need file descriptors: raise the soft limit to the hard one.
        var rl = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = min(rl.rlim_max, 65536)
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
        }
        signal(SIGPIPE, SIG_IGN)

        let embedder = try a.string("embedding-model").map { try EmbeddingModel.load($0) }
        let reranker = try a.string("reranker-model").map { try Reranker.load($0) }
        if let dir = a.string("models-dir") {
            guard a.string("draft") == nil else { throw CLIError("--draft needs a single MODEL, not --models-dir") }
            guard !a.has("mtp") else { throw CLIError("--mtp needs a single MODEL, not --models-dir") }
            guard a.positional.isEmpty, a.string("model-id") == nil else { throw CLIError("--models-dir serves a folder: give no MODEL or --model-id") }
            let maxLoaded = try a.int("models-max") ?? 1
            try serveFolder(dir, cfg, maxLoaded: maxLoaded, options: try EngineFlags.options(a), embedder: embedder, reranker: reranker)
            return
        }
        guard a.string("models-max") == nil else { throw CLIError("--models-max needs --models-dir") }
        let engine = try Engine.load(a.positional.first, options: try EngineFlags.options(a))
        cfg.draft = try DraftFlags.load(a, target: engine)
        if let d = cfg.draft { err("tiefsee serve: draft model \(d.engine.files.location.path), up to \(d.maxDraft) tokens per check (greedy requests)") }
        cfg.mtp = try DraftFlags.mtp(a, engine: engine)
        if let m = cfg.mtp { err("tiefsee serve: multi-token prediction (layer \(m.mtp.layerIndex)) drafts up to \(m.maxDraft) token\(m.maxDraft == 1 ? "" : "s") per check (greedy requests)") }
        let knowledgeAvailable = embedder != nil || FileManager.default.fileExists(atPath: EmbeddingModel.defaultModelPath)
        var hooks = ServerKnowledge(engine: engine, embedder: embedder, reranker: reranker).hooks
        if !knowledgeAvailable { hooks.knowledge = nil }
        let server = try OpenAIServer(engine: engine, config: cfg, hooks: hooks)
        let kvMiB = Double(server.contextSize * engine.model.cacheBytesPerToken) / 1048576
        err("tiefsee serve: model \(server.modelID) (\(engine.config.maxPositionEmbeddings) positions max)")
        err("tiefsee serve: context \(server.contextSize) tokens per sequence × \(cfg.parallel) parallel "
            + "(KV cache up to \(String(format: "%.0f", kvMiB)) MiB each, \(String(format: "%.0f", kvMiB * Double(cfg.parallel))) MiB in all)")
        if let e = embedder {
            err("tiefsee serve: embeddings \(e.name) (\(e.dimension) dimensions) on POST /v1/embeddings")
        }
        if let r = reranker { err("tiefsee serve: reranker \(r.name) on POST /v1/rerank (and for knowledge answers)") }
        err(knowledgeAvailable ? "tiefsee serve: knowledge bases in \(KnowledgeBase.directory) (\"knowledge\": NAME or model \(server.modelID)@kb:NAME)"
                               : "tiefsee serve: no embedding model, so no knowledge bases (--embedding-model, or scripts/fetch-embedding-model.sh)")
        if !HTTPServer.isLoopback(cfg.host) && cfg.apiKey == nil && cfg.users == nil {
            err("""

            ************************************************************************
            WARNING: listening on \(cfg.host), which is reachable from other machines,
            and no API key is set: anyone who can reach this port can use the model.
            Set --api-key KEY (or TIEFSEE_API_KEY), or bind to 127.0.0.1.
            ************************************************************************

            """)
        }
        let shownHost = cfg.host.contains(":") ? "[\(cfg.host)]" : cfg.host
        err("tiefsee serve: listening on http://\(shownHost):\(server.port)\(cfg.apiKey != nil || cfg.users != nil ? " (API key or login required)" : "")"
            + " — chat page at http://\(shownHost):\(server.port)/")
        waitForSignal()
        server.stop()
    }

    static func serveFolder(_ dir: String, _ cfg: ServerConfig, maxLoaded: Int, options: EngineOptions, embedder: EmbeddingModel?,
                            reranker: Reranker?) throws {
        let router = try ModelRouter(directory: dir, config: cfg, maxLoaded: maxLoaded) { entry, cfg in
            let engine = try Engine.load(entry.path, options: options)
            var hooks = ServerKnowledge(engine: engine, embedder: embedder, reranker: reranker).hooks
            if embedder == nil && !FileManager.default.fileExists(atPath: EmbeddingModel.defaultModelPath) { hooks.knowledge = nil }
            err("tiefsee serve: loaded \(entry.id)")
            return try OpenAIServer(engine: engine, config: cfg, hooks: hooks, listen: false)
        }
        for e in router.entries {
            err("tiefsee serve: model \(e.id) (\(ModelRouter.gib(e.fileBytes)), \(ModelRouter.gib(e.residentBytes)) resident)")
        }
        err("tiefsee serve: \(router.entries.count) models, at most \(maxLoaded) loaded at once, memory budget \(ModelRouter.gib(router.memoryBudget))")
        if !HTTPServer.isLoopback(cfg.host) && cfg.apiKey == nil && cfg.users == nil {
            err("WARNING: listening on \(cfg.host) without an API key: anyone who can reach this port can use the models.")
        }
        err("tiefsee serve: listening on http://\(cfg.host.contains(":") ? "[\(cfg.host)]" : cfg.host):\(router.port)")
        waitForSignal()
        router.stop()
    }

    /// `--users PATH`, `--users none`, or the default database when it exists.
    static func openUsers(_ arg: String?) throws -> UserDatabase? {
        if arg == "none" { return nil }
        let path = arg ?? UserDatabase.defaultPath
        guard arg != nil || FileManager.default.fileExists(atPath: path) else { return nil }
        let db = try UserDatabase(path: path, create: false)
        let users = try db.users()
        guard !users.isEmpty else { throw CLIError("the user database \(path) has no users (tiefsee user add NAME)") }
        err("tiefsee serve: \(users.count) users from \(path): requests need a user's API key or a login; knowledge bases follow group grants")
        return db
    }

    /// Blocks until Ctrl-C or SIGTERM.
    static func waitForSignal() {
        let stop = DispatchSemaphore(value: 0)
        let sources = [SIGINT, SIGTERM].map { sig -> DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler { stop.signal() }
            src.resume()
            return src
        }
        stop.wait()
        sources.forEach { $0.cancel() }
        err("tiefsee serve: shutting down")
    }
}

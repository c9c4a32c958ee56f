import Foundation
import Tiefsee

/// `tiefsee serve --models-dir DIR`: every model in a folder behind one address, as Ollama and
/// llama.cpp's router do. `/v1/models` lists them all; a request's `model` loads that one on
/// first use (each model is an `OpenAIServer` of its own, without a listener: its scheduler,
/// slots and KV caches), and at most `maxLoaded` stay loaded — the least recently used idle one
/// is unloaded to make room. A model that cannot fit the memory budget, even after unloading
/// the others, is refused with a clear error before anything is loaded.
public final class ModelRouter: @unchecked Sendable {
    public struct Entry: Sendable {
        public let id: String
        public let path: String
        /// Bytes that must be resident: the whole file for dense models, the weights other than
        /// the routed experts for MoE models (their experts can stream from disk).
        public let residentBytes: Int
        public let fileBytes: Int
    }

    public let entries: [Entry]
    public let maxLoaded: Int
    /// Resident bytes all loaded models may take together.
    public let memoryBudget: Int
    let config: ServerConfig
    let makeServer: (Entry, ServerConfig) throws -> OpenAIServer
    let metrics = ServerMetrics(slots: 0)
    private var http: HTTPServer!

    private final class Loaded {
        let server: OpenAIServer
        let entry: Entry
        var lastUsed = Date()
        var inFlight = 0
        init(_ s: OpenAIServer, _ e: Entry) { server = s; entry = e }
    }
    private let cond = NSCondition()
    private var loaded: [String: Loaded] = [:]
    private var loading: Set<String> = []

    public var port: Int { http.port }

    /// `makeServer` builds a model's server (listen: false) from its entry; tests pass a small
    /// `memoryBudget`, the default is 90% of the machine's memory.
    public init(directory: String, config: ServerConfig, maxLoaded: Int, memoryBudget: Int? = nil,
                makeServer: @escaping (Entry, ServerConfig) throws -> OpenAIServer) throws {
        entries = try ModelRouter.scan(directory)
        guard !entries.isEmpty else { throw HTTPServerError(description: "no models (*.gguf files or Hugging Face folders) in \(directory)") }
        self.maxLoaded = max(1, maxLoaded)
        self.memoryBudget = memoryBudget ?? Int(Double(ProcessInfo.processInfo.physicalMemory) * 0.9)
        self.config = config
        self.makeServer = makeServer
        http = try HTTPServer(host: config.host, port: config.port, limits: config.limits,
                              preflight: { [unowned self] in self.preflight($0) },
                              handler: { [unowned self] in self.handle($0) })
        http.onResponse = { [metrics] req, status in
            metrics.countRequest(endpoint: OpenAIServer.endpointLabel(req.path), status: status)
        }
    }

    public func stop() {
        http.stop()
        cond.lock(); let all = loaded.values.map(\.server); loaded = [:]; cond.unlock()
        all.forEach { $0.stop() }
    }

    public var loadedIDs: [String] { cond.lock(); defer { cond.unlock() }; return loaded.keys.sorted() }

    // MARK: the folder

    /// GGUF files (the first part of a split file) and folders with a config.json, by name.
    static func scan(_ directory: String) throws -> [Entry] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory) else {
            throw HTTPServerError(description: "cannot read the models folder \(directory)")
        }
        var out: [Entry] = []
        for name in names.sorted() where !name.hasPrefix(".") {
            let path = (directory as NSString).appendingPathComponent(name)
            var isDir: ObjCBool = false
            fm.fileExists(atPath: URL(fileURLWithPath: path).resolvingSymlinksInPath().path, isDirectory: &isDir)
            if isDir.boolValue {
                guard fm.fileExists(atPath: path + "/config.json") else { continue }
                let files = (try? fm.contentsOfDirectory(atPath: path)) ?? []
                let bytes = files.filter { $0.hasSuffix(".safetensors") }.reduce(0) { $0 + fileSize(path + "/" + $1) }
                out.append(Entry(id: name, path: path, residentBytes: bytes, fileBytes: bytes))
            } else if name.lowercased().hasSuffix(".gguf") {
                if name.range(of: #"-0*[2-9][0-9]*-of-[0-9]+\.gguf$"#, options: .regularExpression) != nil { continue }
                let size = fileSize(path)
                out.append(Entry(id: String(name.dropLast(5)), path: path, residentBytes: residentBytes(gguf: path) ?? size, fileBytes: size))
            }
        }
        return out
    }

    static func fileSize(_ path: String) -> Int {
        let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        return ((try? FileManager.default.attributesOfItem(atPath: real))?[.size] as? NSNumber)?.intValue ?? 0
    }

    /// From the GGUF header alone: all tensor bytes except the routed experts' (`*_exps`).
    static func residentBytes(gguf path: String) -> Int? {
        guard let g = try? GGUFFile(path: path) else { return nil }
        return g.tensorInfos.filter { !$0.name.contains("_exps") }.reduce(0) { $0 + $1.byteCount }
    }

    // MARK: requests

    func preflight(_ req: HTTPRequest) -> HTTPResponse? {
        guard let e = OpenAIServer.preflightError(req, config: config, embeddings: false) else { return nil }
        return req.path == "/v1/messages" ? OpenAIServer.anthropicError(e) : e.response
    }

    func handle(_ req: HTTPRequest) -> HTTPResponse {
        switch req.path {
        case "/health":
            return .json(200, .object([("status", .string("ok")), ("models", .int(entries.count)),
                                       ("loaded", .array(loadedIDs.map { .string($0) }))]))
        case "/metrics":
            return .text(200, metrics.render(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        case "/v1/models":
            return .json(200, .object([("object", .string("list")), ("data", .array(entries.map(modelObject)))]))
        default:
            if let r = OpenAIServer.webResponse(req, config) { return r }
            if req.path.hasPrefix("/v1/models/") {
                let id = String(req.path.dropFirst("/v1/models/".count)).removingPercentEncoding ?? ""
                guard let e = entries.first(where: { $0.id == id }) else { return notFound(id, req).response }
                return .json(200, modelObject(e))
            }
        }
        do {
            let entry = try route(req)
            let (server, release) = try acquire(entry)
            return ModelRouter.releasing(server.handle(req), release)
        } catch let e as OpenAIError {
            return req.path == "/v1/messages" ? OpenAIServer.anthropicError(e) : e.response
        } catch {
            return OpenAIError(500, "internal error: \(error)", type: "server_error").response
        }
    }

    func modelObject(_ e: Entry) -> JSONValue {
        cond.lock(); let isLoaded = loaded[e.id] != nil; cond.unlock()
        return .object([("id", .string(e.id)), ("object", .string("model")), ("created", .int(0)), ("owned_by", .string("tiefsee")),
                        ("loaded", .bool(isLoaded)), ("size_bytes", .int(e.fileBytes))])
    }

    func notFound(_ id: String, _ req: HTTPRequest) -> OpenAIError {
        OpenAIError(404, "The model '\(id)' does not exist; this server serves: \(entries.map(\.id).joined(separator: ", ")).",
                    param: "model", code: "model_not_found")
    }

    /// The entry a request names (`model`, without a `@kb:` suffix); the only one if it names none.
    func route(_ req: HTTPRequest) throws -> Entry {
        let body = try? JSONValue.parse(req.body, maxDepth: 64)
        guard var name = body?["model"]?.string ?? req.query("model") else {
            if entries.count == 1 { return entries[0] }
            throw OpenAIError.badParam("model", "'model' is required: this server serves \(entries.map(\.id).joined(separator: ", "))")
        }
        if let at = name.range(of: OpenAIServer.kbAliasMarker, options: .backwards) { name = String(name[..<at.lowerBound]) }
        guard let e = entries.first(where: { $0.id == name }) else { throw notFound(name, req) }
        return e
    }

    /// The model's server, loading it (and unloading idle ones) if needed; `release` must be
    /// called once the response is finished.
    func acquire(_ e: Entry) throws -> (OpenAIServer, () -> Void) {
        cond.lock()
        defer { cond.unlock() }
        while loading.contains(e.id) { cond.wait() }
        if let l = loaded[e.id] {
            l.inFlight += 1; l.lastUsed = Date()
            return (l.server, release(l))
        }
        guard e.residentBytes <= memoryBudget else {
            throw OpenAIError(507, "model '\(e.id)' needs \(ModelRouter.gib(e.residentBytes)) resident, more than the memory budget of "
                              + "\(ModelRouter.gib(memoryBudget)); serve it on its own (tiefsee serve MODEL) or on a larger machine",
                              type: "server_error", param: "model", code: "model_too_large")
        }
        // Unload least recently used idle models until it fits in count and in memory.
        while loaded.count >= maxLoaded || loaded.values.reduce(0, { $0 + $1.entry.residentBytes }) + e.residentBytes > memoryBudget {
            guard let victim = loaded.values.filter({ $0.inFlight == 0 }).min(by: { $0.lastUsed < $1.lastUsed }) else {
                throw OpenAIError(503, "every loaded model is busy and model '\(e.id)' does not fit beside them; retry shortly",
                                  type: "server_error", code: "server_busy")
            }
            loaded[victim.entry.id] = nil
            victim.server.stop()
        }
        loading.insert(e.id)
        cond.unlock()
        var cfg = config
        cfg.modelID = e.id
        let result = Result { try makeServer(e, cfg) }
        cond.lock()
        loading.remove(e.id)
        cond.broadcast()
        switch result {
        case .failure(let error):
            throw OpenAIError(500, "model '\(e.id)' could not be loaded: \(error)", type: "server_error", param: "model", code: "model_load_failed")
        case .success(let server):
            let l = Loaded(server, e)
            l.inFlight = 1
            loaded[e.id] = l
            return (server, release(l))
        }
    }

    private func release(_ l: Loaded) -> () -> Void {
        var done = false
        return { [self] in
            cond.lock()
            if !done { done = true; l.inFlight -= 1; l.lastUsed = Date() }
            cond.unlock()
        }
    }

    /// The response with `release` run when it is finished (at once, or when its stream ends).
    static func releasing(_ r: HTTPResponse, _ release: @escaping () -> Void) -> HTTPResponse {
        guard case .stream(let inner) = r.body else { release(); return r }
        return HTTPResponse(status: r.status, headers: r.headers, body: .stream(inner.whenFinished(release)))
    }

    public static func gib(_ b: Int) -> String { String(format: "%.1f GiB", Double(b) / 1_073_741_824) }
}

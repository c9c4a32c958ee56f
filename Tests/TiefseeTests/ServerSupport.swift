import Foundation
import XCTest
@testable import Tiefsee
@testable import TiefseeServer
#if canImport(Glibc)
import Glibc
#endif

/// A tiny blocking HTTP/1.1 client over raw sockets, so tests control every byte (hostile
/// requests, half-sent bodies, idle connections). Loopback addresses only.
enum RawHTTP {
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: String
        var json: JSONValue? { try? JSONValue.parse(body) }
        var errorType: String? { json?["error"]?["type"]?.string }
    }

    /// Connects to a loopback address; nil if refused.
    static func connect(_ host: String = "127.0.0.1", port: Int, timeout: Double = 60) -> Int32? {
        precondition(HTTPServer.isLoopback(host), "tests connect to loopback addresses only")
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 { close(fd); return nil }
        return fd
    }

    @discardableResult
    static func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    /// Reads until the peer closes (or the receive timeout passes).
    static func readAll(_ fd: Int32) -> [UInt8] {
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 65536, 0) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    static func parse(_ raw: [UInt8]) -> Response? {
        let sep: [UInt8] = [13, 10, 13, 10]
        guard let idx = (0..<max(0, raw.count - 3)).first(where: { Array(raw[$0..<$0 + 4]) == sep }) else { return nil }
        let head = String(decoding: raw[..<idx], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        var headers: [String: String] = [:]
        for l in lines {
            if let c = l.firstIndex(of: ":") {
                headers[l[..<c].lowercased()] = l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)
            }
        }
        var body = Array(raw[(idx + 4)...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" { body = dechunk(body) }
        return Response(status: status, headers: headers, body: String(decoding: body, as: UTF8.self))
    }

    static func dechunk(_ b: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        var i = 0
        while i < b.count {
            var j = i
            while j + 1 < b.count && !(b[j] == 13 && b[j + 1] == 10) { j += 1 }
            let sizeText = String(decoding: b[i..<j], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size > 0 else { break }
            let start = j + 2
            guard start + size <= b.count else { out += b[start...]; break }
            out += b[start..<start + size]
            i = start + size + 2
        }
        return out
    }

    /// One request on a fresh connection (`Connection: close`).
    static func request(port: Int, _ method: String, _ path: String, body: [UInt8]? = nil,
                        headers: [String: String] = [:], host: String = "127.0.0.1") -> Response? {
        guard let fd = connect(host, port: port) else { return nil }
        defer { close(fd) }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        guard send(fd, Array(head.utf8) + (body ?? [])) else { return nil }
        return parse(readAll(fd))
    }

    static func post(port: Int, _ path: String, _ json: String, headers: [String: String] = [:]) -> Response? {
        request(port: port, "POST", path, body: Array(json.utf8), headers: ["Content-Type": "application/json"].merging(headers) { $1 })
    }

    /// Content of an SSE chat stream: the concatenated deltas, the finish reason, whether [DONE] came.
    static func chatStreamText(_ body: String) -> (content: String, finish: String?, done: Bool) {
        var content = "", finish: String? = nil, done = false
        for line in body.components(separatedBy: "\n") where line.hasPrefix("data: ") {
            let payload = String(line.dropFirst(6))
            if payload == "[DONE]" { done = true; continue }
            guard let v = try? JSONValue.parse(payload), let ch = v["choices"]?[0] else { continue }
            if let c = ch["delta"]?["content"]?.string { content += c }
            if let t = ch["text"]?.string { content += t }
            if let f = ch["finish_reason"]?.string { finish = f }
        }
        return (content, finish, done)
    }
}

/// Servers shared by the server tests: the default model is loaded once.
enum TestServers {
    static let engine: Engine? = {
        guard FileManager.default.fileExists(atPath: ModelCache.defaultModelPath) else { return nil }
        return try? Engine.load(nil)
    }()

    static func requireEngine() throws -> Engine {
        guard let e = engine else {
            print("SKIP: default model not found at \(ModelCache.defaultModelPath); run scripts/fetch-model.sh")
            throw XCTSkip("default model not found; run scripts/fetch-model.sh")
        }
        return e
    }

    static var baseConfig: ServerConfig {
        var c = ServerConfig()
        c.port = 0
        c.parallel = 4
        c.contextSize = 1024
        c.maxQueue = 16
        c.limits.maxBodyBytes = 1 << 20
        c.limits.idleTimeoutSeconds = 3
        return c
    }

    /// The default model on 127.0.0.1 with --parallel 4 and a 1,024-token context.
    static let shared: OpenAIServer? = {
        guard let e = engine else { return nil }
        raiseFileLimit()
        return try? OpenAIServer(engine: e, config: baseConfig)
    }()

    /// Skips (visibly) when python3 with the `openai` (and `anthropic`) package is missing.
    static func requirePythonOpenAI(_ modules: [String] = ["openai"]) throws {
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        check.arguments = ["python3", "-c", modules.map { "import \($0)" }.joined(separator: "; ")]
        check.standardOutput = FileHandle.nullDevice
        check.standardError = FileHandle.nullDevice
        do { try check.run(); check.waitUntilExit() } catch {}
        guard check.terminationStatus == 0 else {
            print("SKIP: python3 with the \(modules.joined(separator: " and ")) package is not available (scripts/setup.sh installs it)")
            throw XCTSkip("python3 with the \(modules.joined(separator: " and ")) package is not available")
        }
    }

    static func requireShared() throws -> OpenAIServer {
        _ = try requireEngine()
        guard let s = shared else { XCTFail("the shared server did not start"); throw XCTSkip("no server") }
        return s
    }

    static func raiseFileLimit() {
        signal(SIGPIPE, SIG_IGN)
        var rl = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 && rl.rlim_cur < min(rl.rlim_max, 8192) {
            rl.rlim_cur = min(rl.rlim_max, 8192)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
        }
    }

    /// Polls /metrics until `predicate` holds for the named value (or the deadline passes).
    static func metric(_ server: OpenAIServer, _ name: String) -> Double? {
        guard let r = RawHTTP.request(port: server.port, "GET", "/metrics") else { return nil }
        for line in r.body.components(separatedBy: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1))
        }
        return nil
    }
}

/// A reasoning-model fixture that answers deterministically: a 1-layer Llama whose attention
/// and MLP weights are zero, so each next token depends only on the current one; one-hot
/// embeddings and an output head wired as a successor table make it emit a fixed R1-style
/// reply — `<think>`-part, `</think>`, answer, end-of-sentence — after the R1 template's
/// `<｜Assistant｜><think>\n` prompt. Uses the DeepSeek-V3-style tokenizer and the R1 template.
enum ReasoningFixture {
    static let reasoning = "Two and two make four."
    static let answer = "The answer is 4"

    static func make() throws -> String {
        let dir = NSTemporaryDirectory() + "tiefsee-r1-fixture-\(getpid())"
        if FileManager.default.fileExists(atPath: dir + "/model.safetensors") { return dir }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tokPath = fixturePath("tokenizer/deepseek-v3-style/tokenizer.json")
        try FileManager.default.copyItem(atPath: tokPath, toPath: dir + "/tokenizer.json")
        let template = try String(contentsOfFile: fixturePath("templates/deepseek-r1.jinja"), encoding: .utf8)
        let tc: JSONValue = .object([
            ("bos_token", .string("<｜begin▁of▁sentence｜>")), ("eos_token", .string("<｜end▁of▁sentence｜>")),
            ("add_bos_token", .bool(false)), ("chat_template", .string(template)),
        ])
        try tc.serialized().write(toFile: dir + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        let tok = try Tokenizer.load(modelFolder: dir)
        let eos = tok.id(of: "<｜end▁of▁sentence｜>")!
        // The chain: last prompt token → reply tokens → EOS.
        let prompt = try ChatTemplate(source: template).render(
            messages: [.object([("role", .string("user")), ("content", .string("What is 2+2?"))])],
            addGenerationPrompt: true, bosToken: "<｜begin▁of▁sentence｜>", eosToken: "<｜end▁of▁sentence｜>")
        let last = tok.encode(prompt, parseSpecial: true).last!
        let reply = tok.encode(reasoning + "</think>" + answer, parseSpecial: true)
        try writeSuccessorModel(dir: dir, tokenizer: tok, chain: [last] + reply + [eos])
        return dir
    }

    /// Writes model.safetensors + config.json of the 1-layer successor model: each token of
    /// `chain` (distinct, at most 64) is followed by the next one under greedy decoding.
    static func writeSuccessorModel(dir: String, tokenizer tok: Tokenizer, chain: [Int]) throws {
        let V = tok.vocabSize, H = 64, I = 96, heads = 4, kvHeads = 2, hd = 16
        let eos = tok.id(of: "<｜end▁of▁sentence｜>")!
        precondition(Set(chain.dropLast()).count == chain.count - 1 && chain.count - 1 <= H, "fixture chain tokens must be distinct")
        var embed = [Float](repeating: 0, count: V * H)
        var head = [Float](repeating: 0, count: V * H)
        for (d, t) in chain.dropLast().enumerated() {
            embed[t * H + d] = 1
            head[chain[d + 1] * H + d] = 10
        }
        let z = { (n: Int) in [Float](repeating: 0, count: n) }
        let ones = { (n: Int) in [Float](repeating: 1, count: n) }
        let tensors: [(String, [Int], [Float])] = [
            ("lm_head.weight", [V, H], head),
            ("model.embed_tokens.weight", [V, H], embed),
            ("model.layers.0.input_layernorm.weight", [H], ones(H)),
            ("model.layers.0.post_attention_layernorm.weight", [H], ones(H)),
            ("model.layers.0.self_attn.q_proj.weight", [heads * hd, H], z(heads * hd * H)),
            ("model.layers.0.self_attn.k_proj.weight", [kvHeads * hd, H], z(kvHeads * hd * H)),
            ("model.layers.0.self_attn.v_proj.weight", [kvHeads * hd, H], z(kvHeads * hd * H)),
            ("model.layers.0.self_attn.o_proj.weight", [H, heads * hd], z(H * heads * hd)),
            ("model.layers.0.mlp.gate_proj.weight", [I, H], z(I * H)),
            ("model.layers.0.mlp.up_proj.weight", [I, H], z(I * H)),
            ("model.layers.0.mlp.down_proj.weight", [H, I], z(H * I)),
            ("model.norm.weight", [H], ones(H)),
        ]
        var header: [(String, JSONValue)] = []
        var offset = 0
        for (name, shape, data) in tensors {
            header.append((name, .object([("dtype", .string("F32")), ("shape", .array(shape.map { .int($0) })),
                                          ("data_offsets", .array([.int(offset), .int(offset + data.count * 4)]))])))
            offset += data.count * 4
        }
        var h = Array(JSONValue.object(header).serialized().utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        var file = Data()
        var n = UInt64(h.count).littleEndian
        file.append(Data(bytes: &n, count: 8))
        file.append(contentsOf: h)
        for (_, _, data) in tensors { data.withUnsafeBytes { file.append(contentsOf: $0) } }
        try file.write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        let config: JSONValue = .object([
            ("architectures", .array([.string("LlamaForCausalLM")])), ("model_type", .string("llama")),
            ("hidden_size", .int(H)), ("intermediate_size", .int(I)), ("num_attention_heads", .int(heads)),
            ("num_key_value_heads", .int(kvHeads)), ("head_dim", .int(hd)), ("num_hidden_layers", .int(1)),
            ("vocab_size", .int(V)), ("max_position_embeddings", .int(512)), ("rms_norm_eps", .double(1e-6)),
            ("rope_theta", .double(10000)), ("tie_word_embeddings", .bool(false)), ("hidden_act", .string("silu")),
            ("bos_token_id", .int(tok.id(of: "<｜begin▁of▁sentence｜>")!)), ("eos_token_id", .int(eos)),
            ("torch_dtype", .string("float32")),
        ])
        try config.serialized().write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
    }
}

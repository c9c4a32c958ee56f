import Foundation
import XCTest
@testable import Tiefsee
@testable import TiefseeKnowledge
@testable import TiefseeServer

/// `tiefsee serve --embedding-model`: POST /v1/embeddings and chat answers from a knowledge base
/// (the `knowledge` field and the `MODEL@kb:NAME` alias), over loopback HTTP.
final class ServerKnowledgeTests: XCTestCase {
    /// A knowledge base of three small markdown files in a temporary directory, with one fact
    /// the model cannot know.
    struct Fixture {
        let server: OpenAIServer
        let embedder: EmbeddingModel
        let directory: String
    }

    nonisolated(unsafe) static var fixture: Fixture?
    static let lock = NSLock()

    static func requireFixture() throws -> Fixture {
        let engine = try TestServers.requireEngine()
        let embedder = try requireEmbeddingModel()
        lock.lock(); defer { lock.unlock() }
        if let f = fixture { return f }
        let dir = NSTemporaryDirectory() + "tiefsee-serverkb-\(UUID().uuidString)"
        let docs = dir + "/docs", kbDir = dir + "/kb"
        try FileManager.default.createDirectory(atPath: docs, withIntermediateDirectories: true)
        try """
            # Office animals

            ## The parrot

            The office parrot of the Hamburg team is named Captain Quirinius. He lives next to the coffee machine.
            """.write(toFile: docs + "/animals.md", atomically: true, encoding: .utf8)
        try """
            # Parking

            Employees park in the underground garage on level -2. Visitors use the spaces at the front gate.
            """.write(toFile: docs + "/parking.md", atomically: true, encoding: .utf8)
        try """
            # Holidays

            Every employee has 30 days of paid holiday per year. Requests go to the team lead two weeks ahead.
            """.write(toFile: docs + "/holidays.md", atomically: true, encoding: .utf8)
        let kb = try KnowledgeBase(name: "office", path: kbDir + "/office.sqlite", embedder: embedder)
        try kb.add(paths: [docs])
        var cfg = TestServers.baseConfig
        cfg.parallel = 1
        cfg.contextSize = 2048
        TestServers.raiseFileLimit()
        let hooks = ServerKnowledge(engine: engine, embedder: embedder, directory: kbDir).hooks
        let f = Fixture(server: try OpenAIServer(engine: engine, config: cfg, hooks: hooks), embedder: embedder, directory: dir)
        fixture = f
        return f
    }

    override class func tearDown() {
        lock.lock(); defer { lock.unlock() }
        if let f = fixture {
            f.server.stop()
            try? FileManager.default.removeItem(atPath: f.directory)
            fixture = nil
        }
        super.tearDown()
    }

    func post(_ f: Fixture, _ path: String, _ body: String) throws -> RawHTTP.Response {
        try XCTUnwrap(RawHTTP.post(port: f.server.port, path, body), "no response from \(path)")
    }

    // MARK: embeddings

    func testEmbeddingsMatchTheLibrary() throws {
        let f = try ServerKnowledgeTests.requireFixture()
        let texts = ["The office parrot is named Captain Quirinius.", "Wie viele Urlaubstage habe ich?",
                     String(repeating: "long input ", count: 40)]
        let want = try f.embedder.embed(texts)
        let r = try post(f, "/v1/embeddings", JSONValue.object([("input", .array(texts.map { .string($0) })),
                                                               ("model", .string(f.embedder.name))]).serialized())
        XCTAssertEqual(r.status, 200, r.body)
        let j = try XCTUnwrap(r.json)
        XCTAssertEqual(j["object"]?.string, "list")
        XCTAssertEqual(j["model"]?.string, f.embedder.name)
        let data = try XCTUnwrap(j["data"]?.array)
        XCTAssertEqual(data.count, 3)
        for (i, d) in data.enumerated() {
            XCTAssertEqual(d["object"]?.string, "embedding")
            XCTAssertEqual(d["index"]?.int, i)
            let v = try XCTUnwrap(d["embedding"]?.array).map { Float($0.double!) }
            XCTAssertEqual(v.count, f.embedder.dimension)
            XCTAssertGreaterThanOrEqual(cosineSimilarity(v, want[i]), 0.9999, "input \(i)")
        }
        let tokens = texts.map { f.embedder.tokenize($0).count }.reduce(0, +)
        XCTAssertEqual(j["usage"]?["prompt_tokens"]?.int, tokens)
        XCTAssertEqual(j["usage"]?["total_tokens"]?.int, tokens)

        // A single string, base64: little-endian f32 bytes of the same vector.
        let b = try post(f, "/v1/embeddings", #"{"input":"The office parrot is named Captain Quirinius.","encoding_format":"base64"}"#)
        XCTAssertEqual(b.status, 200, b.body)
        let s = try XCTUnwrap(b.json?["data"]?[0]?["embedding"]?.string)
        let bytes = try XCTUnwrap(Data(base64Encoded: s))
        XCTAssertEqual(bytes.count, 4 * f.embedder.dimension)
        let raw = [UInt8](bytes)
        var v = [Float]()
        for i in 0..<f.embedder.dimension {
            var bits: UInt32 = 0
            for k in 0..<4 { bits |= UInt32(raw[4 * i + k]) << (8 * UInt32(k)) }
            v.append(Float(bitPattern: bits))
        }
        XCTAssertEqual(v, want[0], "base64 carries the exact floats")
    }

    func testEmbeddingErrors() throws {
        let f = try ServerKnowledgeTests.requireFixture()
        let many = JSONValue.object([("input", .array(Array(repeating: .string("x"), count: 2049)))]).serialized()
        let cases: [(String, String, Int)] = [
            ("token ids", #"{"input":[101,2054,102]}"#, 400),
            ("token id arrays", #"{"input":[[101,2054,102]]}"#, 400),
            ("empty array", #"{"input":[]}"#, 400),
            ("empty string", #"{"input":""}"#, 400),
            ("missing input", #"{"model":"all-minilm-l6-v2"}"#, 400),
            ("number", #"{"input":3}"#, 400),
            ("mixed", #"{"input":["a",3]}"#, 400),
            ("encoding", #"{"input":"a","encoding_format":"int8"}"#, 400),
            ("dimensions", #"{"input":"a","dimensions":64}"#, 400),
            ("unknown field", #"{"input":"a","colour":"blue"}"#, 400),
            ("wrong model", #"{"input":"a","model":"text-embedding-3-small"}"#, 404),
            ("over the batch limit", many, 400),
            ("not json", "{", 400),
        ]
        for (label, body, status) in cases {
            let r = try post(f, "/v1/embeddings", body)
            XCTAssertEqual(r.status, status, "\(label): \(r.body)")
            XCTAssertNotNil(r.json?["error"]?["message"]?.string, "\(label): an OpenAI error object")
        }
        XCTAssertEqual(try post(f, "/v1/embeddings", #"{"input":"a","token":[1]}"#).json?["error"]?["code"]?.string, "unknown_parameter")
        XCTAssertEqual(RawHTTP.request(port: f.server.port, "GET", "/v1/embeddings")?.status, 405)
        // The server without --embedding-model: no endpoint, no knowledge field.
        let plain = try TestServers.requireShared()
        XCTAssertEqual(RawHTTP.post(port: plain.port, "/v1/embeddings", #"{"input":"a"}"#)?.status, 404)
        let k = RawHTTP.post(port: plain.port, "/v1/chat/completions", #"{"messages":[{"role":"user","content":"hi"}],"knowledge":"office"}"#)
        XCTAssertEqual(k?.status, 400)
        let alias = RawHTTP.post(port: plain.port, "/v1/chat/completions",
                                 #"{"model":"\#(plain.modelID)@kb:office","messages":[{"role":"user","content":"hi"}]}"#)
        XCTAssertEqual(alias?.status, 400)
        XCTAssertEqual(alias?.json?["error"]?["code"]?.string, "knowledge_unavailable")
    }

    // MARK: rerank

    /// POST /v1/rerank (and /rerank) with `--reranker-model`: llama.cpp's / vLLM's request and
    /// response shape, scores equal to the library's (which match sentence-transformers, RerankerTests).
    func testRerankEndpoint() throws {
        let engine = try TestServers.requireEngine()
        let reranker = try Reranker(folder: fixturePath("rerankers/xlmr-cross-encoder"))
        var cfg = TestServers.baseConfig
        cfg.parallel = 1
        cfg.contextSize = 256
        let server = try OpenAIServer(engine: engine, config: cfg,
                                      hooks: ServerKnowledge(engine: engine, embedder: nil, reranker: reranker).hooks)
        defer { server.stop() }
        let query = "Wer leitet das Projekt Kompassrose?"
        let docs = ["Die Kantine bietet täglich ein vegetarisches Gericht an.", "Das Projekt Kompassrose wird von Jana Vogt geleitet.",
                    "Project Kompassrose is led by Jana Vogt.", "Fahrtkosten werden mit 0,30 € pro Kilometer erstattet."]
        let want = try reranker.score(query: query, documents: docs)
        let body = JSONValue.object([("model", .string(reranker.name)), ("query", .string(query)),
                                     ("documents", .array(docs.map { .string($0) })), ("top_n", .int(3))]).serialized()
        for path in ["/v1/rerank", "/rerank"] {
            let r = try XCTUnwrap(RawHTTP.post(port: server.port, path, body))
            XCTAssertEqual(r.status, 200, r.body)
            let results = try XCTUnwrap(r.json?["results"]?.array)
            XCTAssertEqual(results.count, 3, "top_n")
            let order = want.indices.sorted { want[$0] > want[$1] }
            XCTAssertEqual(results.map { $0["index"]!.int! }, Array(order.prefix(3)))
            for res in results {
                XCTAssertEqual(Float(res["relevance_score"]!.double!), want[res["index"]!.int!], accuracy: 1e-6)
                XCTAssertNil(res["document"])
            }
            XCTAssertGreaterThan(r.json?["usage"]?["total_tokens"]?.int ?? 0, 0)
        }
        // Documents as {"text": …}, no top_n (all), return_documents echoes the text.
        let objs = JSONValue.object([("query", .string(query)), ("return_documents", .bool(true)),
                                     ("documents", .array(docs.map { .object([("text", .string($0))]) }))]).serialized()
        let r2 = try XCTUnwrap(RawHTTP.post(port: server.port, "/v1/rerank", objs))
        XCTAssertEqual(r2.status, 200, r2.body)
        let all = try XCTUnwrap(r2.json?["results"]?.array)
        XCTAssertEqual(all.count, docs.count)
        XCTAssertEqual(all[0]["document"]?["text"]?.string, docs[all[0]["index"]!.int!])
        let cases: [(String, String, Int)] = [
            ("missing query", #"{"documents":["a"]}"#, 400),
            ("empty documents", #"{"query":"q","documents":[]}"#, 400),
            ("number document", #"{"query":"q","documents":[3]}"#, 400),
            ("bad top_n", #"{"query":"q","documents":["a"],"top_n":0}"#, 400),
            ("unknown field", #"{"query":"q","documents":["a"],"colour":1}"#, 400),
            ("wrong model", #"{"query":"q","documents":["a"],"model":"bge-reranker-v2-m3"}"#, 404),
        ]
        for (label, b, status) in cases {
            let r = try XCTUnwrap(RawHTTP.post(port: server.port, "/v1/rerank", b))
            XCTAssertEqual(r.status, status, "\(label): \(r.body)")
            XCTAssertNotNil(r.json?["error"]?["message"]?.string, label)
        }
        XCTAssertEqual(RawHTTP.request(port: server.port, "GET", "/v1/rerank")?.status, 405)
        // Without --reranker-model there is no such route.
        let plain = try TestServers.requireShared()
        XCTAssertEqual(RawHTTP.post(port: plain.port, "/v1/rerank", #"{"query":"q","documents":["a"]}"#)?.status, 404)
    }

    /// The official `openai` client (it asks for base64 by default and decodes it itself).
    func testOfficialOpenAIClient() throws {
        let f = try ServerKnowledgeTests.requireFixture()
        let script = """
            import sys, math, openai
            c = openai.OpenAI(base_url=sys.argv[1], api_key="none")
            r = c.embeddings.create(model=sys.argv[2], input=["The office parrot is named Captain Quirinius.", "parking"])
            assert r.object == "list" and len(r.data) == 2 and r.data[1].index == 1, r
            v = r.data[0].embedding
            assert len(v) == int(sys.argv[3]) and abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-4, len(v)
            assert r.usage.prompt_tokens == r.usage.total_tokens > 0
            print("embedding", v[:3])
            ch = c.chat.completions.create(model=sys.argv[4], messages=[{"role": "user", "content": "What is the capital of France?"}],
                                           extra_body={"knowledge": "office"}, max_tokens=8)
            assert ch.model_extra["sources"] == [], ch
            print("chat", ch.choices[0].message.content)
            try:
                c.chat.completions.create(model=sys.argv[4] + "@kb:nope", messages=[{"role": "user", "content": "x"}])
                sys.exit("no error for an unknown base")
            except openai.NotFoundError as e:
                print("404", e.body)
            """
        try TestServers.requirePythonOpenAI()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, "http://127.0.0.1:\(f.server.port)/v1", f.embedder.name,
                       String(f.embedder.dimension), f.server.modelID]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        print(out)
        XCTAssertEqual(p.terminationStatus, 0, "openai client: \(out)")
    }

    // MARK: knowledge

    func testKnowledgeAnswerCarriesTheFactAndSources() throws {
        let f = try ServerKnowledgeTests.requireFixture()
        let t0 = Date()
        let r = try post(f, "/v1/chat/completions", """
            {"messages":[{"role":"user","content":"What is the name of the office parrot?"}],
             "knowledge":{"kb":"office","top_k":3},"temperature":0,"max_tokens":40}
            """)
        XCTAssertEqual(r.status, 200, r.body)
        let j = try XCTUnwrap(r.json)
        let content = try XCTUnwrap(j["choices"]?[0]?["message"]?["content"]?.string)
        print("knowledge answer (\(String(format: "%.1f", Date().timeIntervalSince(t0))) s): \(content)")
        XCTAssertTrue(content.contains("Quirinius"), content)
        let sources = try XCTUnwrap(j["sources"]?.array)
        XCTAssertFalse(sources.isEmpty)
        XCTAssertEqual(sources.first?["index"]?.int, 1)
        XCTAssertEqual(sources.first?["file"]?.string, "animals.md", "the parrot passage ranks first")
        XCTAssertNotNil(sources.first?["heading"]?.string)
        XCTAssertNotNil(sources.first?["cited"]?.bool)
        let cited = sources.filter { $0["cited"]?.bool == true }.compactMap { $0["index"]?.int }
        XCTAssertEqual(cited, citedSources(in: content, count: sources.count))
        XCTAssertGreaterThan(j["usage"]?["prompt_tokens"]?.int ?? 0, 100, "the grounded prompt was rendered")

        // Streamed via the model alias: the same answer (greedy), sources on the finish chunk.
        let s = try post(f, "/v1/chat/completions", """
            {"model":"\(f.server.modelID)@kb:office","messages":[{"role":"user","content":"What is the name of the office parrot?"}],
             "temperature":0,"max_tokens":12,"stream":true}
            """)
        XCTAssertEqual(s.status, 200, s.body)
        let (streamed, finish, done) = RawHTTP.chatStreamText(s.body)
        XCTAssertTrue(done)
        XCTAssertEqual(finish, "length")
        XCTAssertTrue(content.hasPrefix(streamed), "streamed '\(streamed)' starts the non-streamed answer")
        let last = s.body.components(separatedBy: "\n").filter { $0.hasPrefix("data: {") }.last.flatMap { try? JSONValue.parse(String($0.dropFirst(6))) }
        XCTAssertEqual(last?["sources"]?[0]?["file"]?.string, "animals.md")
    }

    /// Nothing relevant: the "not covered" reply without the model, via the alias, also streamed.
    func testKnowledgeAliasNotCoveredAndErrors() throws {
        let f = try ServerKnowledgeTests.requireFixture()
        let id = f.server.modelID
        let q = #"[{"role":"user","content":"What is the capital of France?"}]"#
        let r = try post(f, "/v1/chat/completions", #"{"model":"\#(id)@kb:office","messages":\#(q),"max_tokens":8}"#)
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertEqual(r.json?["choices"]?[0]?["message"]?["content"]?.string, noKnowledgeAnswer)
        XCTAssertEqual(r.json?["choices"]?[0]?["finish_reason"]?.string, "stop")
        XCTAssertEqual(r.json?["sources"]?.array?.count, 0)
        XCTAssertEqual(r.json?["usage"]?["completion_tokens"]?.int, 0, "the model was not called")

        let s = try post(f, "/v1/chat/completions", #"{"model":"\#(id)@kb:office","messages":\#(q),"stream":true,"stream_options":{"include_usage":true}}"#)
        XCTAssertEqual(s.status, 200)
        let (content, finish, done) = RawHTTP.chatStreamText(s.body)
        XCTAssertEqual(content, noKnowledgeAnswer)
        XCTAssertEqual(finish, "stop")
        XCTAssertTrue(done)
        XCTAssertTrue(s.body.contains(#""sources":[]"#))

        let unknown = try post(f, "/v1/chat/completions", #"{"messages":\#(q),"knowledge":"no-such-base"}"#)
        XCTAssertEqual(unknown.status, 404, unknown.body)
        XCTAssertEqual(unknown.json?["error"]?["code"]?.string, "knowledge_base_not_found")
        XCTAssertEqual(try post(f, "/v1/chat/completions", #"{"model":"\#(id)@kb:nope","messages":\#(q)}"#).status, 404)
        XCTAssertEqual(try post(f, "/v1/chat/completions", #"{"model":"gpt-4@kb:office","messages":\#(q)}"#).status, 404, "unknown base model")
        for (label, body) in [
            ("both forms", #"{"model":"\#(id)@kb:office","knowledge":"office","messages":\#(q)}"#),
            ("bad name", #"{"knowledge":"../etc","messages":\#(q)}"#),
            ("bad type", #"{"knowledge":3,"messages":\#(q)}"#),
            ("bad top_k", #"{"knowledge":{"kb":"office","top_k":0},"messages":\#(q)}"#),
            ("unknown field", #"{"knowledge":{"kb":"office","rerank":true},"messages":\#(q)}"#),
            ("no user message", #"{"knowledge":"office","messages":[{"role":"system","content":"hi"}]}"#),
        ] {
            let e = try post(f, "/v1/chat/completions", body)
            XCTAssertEqual(e.status, 400, "\(label): \(e.body)")
            XCTAssertNotNil(e.json?["error"]?["message"]?.string, label)
        }
    }
}

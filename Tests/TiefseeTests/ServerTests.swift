import Foundation
import XCTest
@testable import Tiefsee
@testable import TiefseeServer
#if canImport(Glibc)
import Glibc
#endif

/// `tiefsee serve` driven over loopback HTTP with the default model (in-process server).
final class ServerAPITests: XCTestCase {
    func chat(_ content: String, _ extra: String = "", port: Int) -> RawHTTP.Response? {
        let msg = JSONValue.string(content).serialized()
        return RawHTTP.post(port: port, "/v1/chat/completions",
                            #"{"messages":[{"role":"user","content":\#(msg)}],"temperature":0\#(extra)}"#)
    }

    func testHealthModelsAndMetrics() throws {
        let s = try TestServers.requireShared()
        let h = try XCTUnwrap(RawHTTP.request(port: s.port, "GET", "/health"))
        XCTAssertEqual(h.status, 200)
        XCTAssertEqual(h.json?["status"]?.string, "ok")
        let m = try XCTUnwrap(RawHTTP.request(port: s.port, "GET", "/v1/models"))
        XCTAssertEqual(m.status, 200)
        XCTAssertEqual(m.json?["data"]?[0]?["id"]?.string, s.modelID)
        let one = try XCTUnwrap(RawHTTP.request(port: s.port, "GET", "/v1/models/\(s.modelID)"))
        XCTAssertEqual(one.status, 200)
        let metrics = try XCTUnwrap(RawHTTP.request(port: s.port, "GET", "/metrics"))
        XCTAssertEqual(metrics.status, 200)
        for name in ["tiefsee_requests_total", "tiefsee_prompt_tokens_total", "tiefsee_generated_tokens_total",
                     "tiefsee_queue_depth", "tiefsee_tokens_per_second", "tiefsee_time_to_first_token_seconds_bucket"] {
            XCTAssertTrue(metrics.body.contains(name), "metrics lack \(name)")
        }
    }

    func testChatStreamMatchesNonStreamAndCompletions() throws {
        let s = try TestServers.requireShared()
        let full = try XCTUnwrap(chat("Name three colors.", #","max_tokens":8"#, port: s.port))
        XCTAssertEqual(full.status, 200, full.body)
        let j = try XCTUnwrap(full.json)
        XCTAssertEqual(j["object"]?.string, "chat.completion")
        let text = try XCTUnwrap(j["choices"]?[0]?["message"]?["content"]?.string)
        XCTAssertFalse(text.isEmpty)
        XCTAssertEqual(j["usage"]?["completion_tokens"]?.int, 8)
        XCTAssertEqual(j["choices"]?[0]?["finish_reason"]?.string, "length")

        let st = try XCTUnwrap(chat("Name three colors.", #","max_tokens":8,"stream":true,"stream_options":{"include_usage":true}"#, port: s.port))
        XCTAssertEqual(st.status, 200)
        XCTAssertEqual(st.headers["content-type"], "text/event-stream")
        let (content, finish, done) = RawHTTP.chatStreamText(st.body)
        XCTAssertEqual(content, text, "streamed text equals the non-streamed text (greedy)")
        XCTAssertEqual(finish, "length")
        XCTAssertTrue(done)
        XCTAssertTrue(st.body.contains(#""completion_tokens":8"#), "usage chunk present")

        let c = try XCTUnwrap(RawHTTP.post(port: s.port, "/v1/completions", #"{"prompt":"def add(a, b):","max_tokens":6,"temperature":0}"#))
        XCTAssertEqual(c.status, 200, c.body)
        XCTAssertEqual(c.json?["object"]?.string, "text_completion")
        XCTAssertFalse(c.json?["choices"]?[0]?["text"]?.string?.isEmpty ?? true)
    }

    /// Acceptance 2: eight clients streaming at once (four decode, four wait) all get complete
    /// answers identical to what each gets alone.
    func testEightConcurrentStreams() throws {
        let s = try TestServers.requireShared()
        let prompts = (0..<8).map { "Write the number \($0 + 1) in words." }
        final class Box: @unchecked Sendable { var r = [RawHTTP.Response?](repeating: nil, count: 8) }
        let box = Box()
        let lock = NSLock()
        // One thread per client (concurrentPerform would run only as many as there are cores).
        let group = DispatchGroup()
        var peakBusy = 0.0, peakQueue = 0.0
        for i in 0..<8 {
            group.enter()
            Thread {
                let r = self.chat(prompts[i], #","max_tokens":5,"stream":true"#, port: s.port)
                lock.lock(); box.r[i] = r; lock.unlock()
                group.leave()
            }.start()
        }
        while group.wait(timeout: .now() + 0.2) == .timedOut {
            peakBusy = max(peakBusy, TestServers.metric(s, "tiefsee_slots_busy") ?? 0)
            peakQueue = max(peakQueue, TestServers.metric(s, "tiefsee_queue_depth") ?? 0)
        }
        XCTAssertEqual(peakBusy, 4, "four sequences decoded together")
        XCTAssertGreaterThan(peakQueue, 0, "the others waited in the queue")
        for i in 0..<8 {
            let r = try XCTUnwrap(box.r[i], "client \(i) got no response")
            XCTAssertEqual(r.status, 200)
            let (content, finish, done) = RawHTTP.chatStreamText(r.body)
            XCTAssertTrue(done && finish != nil, "client \(i) stream is complete")
            XCTAssertFalse(content.isEmpty, "client \(i) got text")
            guard [0, 3, 7].contains(i) else { continue }  // spot-check against a lone request (CI time)
            let alone = try XCTUnwrap(chat(prompts[i], #","max_tokens":5"#, port: s.port))
            XCTAssertEqual(content, alone.json?["choices"]?[0]?["message"]?["content"]?.string, "client \(i)")
        }
    }

    func testLogprobsAndSeed() throws {
        let s = try TestServers.requireShared()
        let body = #"{"messages":[{"role":"user","content":"Tell me a word."}],"temperature":1.0,"seed":1234,"max_tokens":6,"logprobs":true,"top_logprobs":2}"#
        let a = try XCTUnwrap(RawHTTP.post(port: s.port, "/v1/chat/completions", body))
        let b = try XCTUnwrap(RawHTTP.post(port: s.port, "/v1/chat/completions", body))
        XCTAssertEqual(a.status, 200, a.body)
        XCTAssertEqual(a.json?["choices"]?[0]?["message"]?["content"], b.json?["choices"]?[0]?["message"]?["content"])
        let lp = try XCTUnwrap(a.json?["choices"]?[0]?["logprobs"]?["content"]?.array)
        XCTAssertEqual(lp.count, 6)
        XCTAssertEqual(lp[0]["top_logprobs"]?.array?.count, 2)
        XCTAssertLessThanOrEqual(lp[0]["logprob"]?.double ?? 1, 0)
    }
}

/// Acceptance 3 and 4: hostile input, limits, disconnects, binding and keys.
final class ServerRobustnessTests: XCTestCase {
    func testMalformedAndHostileRequests() throws {
        let s = try TestServers.requireShared()
        let port = s.port
        let ok = #"{"role":"user","content":"hi"}"#
        let longPrompt = String(repeating: "hello world ", count: 1200)
        // (name, body, expected status)
        let cases: [(String, [UInt8], Int)] = [
            ("malformed JSON", Array(#"{"messages": ["#.utf8), 400),
            ("trailing garbage", Array(#"{"messages":[\#(ok)]} xyz"#.utf8), 400),
            ("empty body", [], 400),
            ("array instead of object", Array("[]".utf8), 400),
            ("messages is a string", Array(#"{"messages":"hi"}"#.utf8), 400),
            ("temperature wrong type", Array(#"{"messages":[\#(ok)],"temperature":"hot"}"#.utf8), 400),
            ("temperature out of range", Array(#"{"messages":[\#(ok)],"temperature":7}"#.utf8), 400),
            ("max_tokens zero", Array(#"{"messages":[\#(ok)],"max_tokens":0}"#.utf8), 400),
            ("max_tokens fractional", Array(#"{"messages":[\#(ok)],"max_tokens":2.5}"#.utf8), 400),
            ("unknown field", Array(#"{"messages":[\#(ok)],"frobnicate":true}"#.utf8), 400),
            ("empty messages", Array(#"{"messages":[]}"#.utf8), 400),
            ("message without role", Array(#"{"messages":[{"content":"hi"}]}"#.utf8), 400),
            ("unknown role", Array(#"{"messages":[{"role":"wizard","content":"hi"}]}"#.utf8), 400),
            ("content is a number", Array(#"{"messages":[{"role":"user","content":42}]}"#.utf8), 400),
            ("n = 3", Array(#"{"messages":[\#(ok)],"n":3}"#.utf8), 400),
            ("five stop strings", Array(#"{"messages":[\#(ok)],"stop":["a","b","c","d","e"]}"#.utf8), 400),
            ("duplicate keys", Array(#"{"messages":[\#(ok)],"messages":[\#(ok)]}"#.utf8), 400),
            ("invalid UTF-8", Array(#"{"messages":[{"role":"user","content":""#.utf8) + [0xC3, 0x28, 0xFF] + Array(#""}]}"#.utf8), 400),
            ("binary garbage", (0..<512).map { UInt8(truncatingIfNeeded: $0 &* 7919) }, 400),
            ("JSON nesting bomb", Array(String(repeating: "[", count: 100_000).utf8), 400),
            ("deep but closed nesting", Array((String(repeating: "{\"a\":", count: 5000) + "1" + String(repeating: "}", count: 5000)).utf8), 400),
            ("prompt longer than the context", Array(#"{"messages":[{"role":"user","content":"\#(longPrompt)"}]}"#.utf8), 400),
            ("unknown model", Array(#"{"model":"gpt-17","messages":[\#(ok)]}"#.utf8), 404),
            ("tools of the wrong shape", Array(#"{"messages":[\#(ok)],"tools":[{"type":"function"}]}"#.utf8), 400),
            ("bad response_format", Array(#"{"messages":[\#(ok)],"response_format":{"type":"yaml"}}"#.utf8), 400),
            ("top_logprobs without logprobs", Array(#"{"messages":[\#(ok)],"top_logprobs":3}"#.utf8), 400),
        ]
        for (name, body, want) in cases {
            let r = RawHTTP.request(port: port, "POST", "/v1/chat/completions", body: body, headers: ["Content-Type": "application/json"])
            XCTAssertEqual(r?.status, want, "\(name): \(r?.body.prefix(200) ?? "no response")")
            XCTAssertNotNil(r?.json?["error"]?["message"]?.string, "\(name): OpenAI-style error object")
        }
        let completionCases: [(String, String, Int)] = [
            ("completion token id out of range", #"{"prompt":[1,2,99999999]}"#, 400),
            ("completion prompt of the wrong type", #"{"prompt":{"a":1}}"#, 400),
            ("completion missing prompt", #"{"max_tokens":3}"#, 400),
        ]
        for (name, body, want) in completionCases {
            let r = RawHTTP.post(port: port, "/v1/completions", body)
            XCTAssertEqual(r?.status, want, "\(name): \(r?.body.prefix(200) ?? "no response")")
        }
        XCTAssertEqual(RawHTTP.request(port: port, "GET", "/v1/nothing-here")?.status, 404, "unknown URL")
        XCTAssertEqual(RawHTTP.request(port: port, "GET", "/v1/chat/completions")?.status, 405, "wrong method")
        XCTAssertEqual(RawHTTP.request(port: port, "GET", "/v1/models/gpt-17")?.status, 404, "unknown model id")

        // A 100 MB body: refused with 413 from its Content-Length, before it is read.
        if let fd = RawHTTP.connect(port: port, timeout: 20) {
            let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(100 << 20)\r\n\r\n"
            RawHTTP.send(fd, Array(head.utf8))
            let chunk = [UInt8](repeating: 0x20, count: 1 << 20)
            for _ in 0..<100 where RawHTTP.send(fd, chunk) {}
            let r = RawHTTP.parse(RawHTTP.readAll(fd))
            close(fd)
            XCTAssertEqual(r?.status, 413, "100 MB body")
        } else { XCTFail("connect") }
        // A chunked body over the limit (no Content-Length): 413 once the limit is passed.
        if let fd = RawHTTP.connect(port: port, timeout: 20) {
            let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
            var body = Array(head.utf8)
            let part = [UInt8](repeating: 0x20, count: 256 << 10)
            for _ in 0..<6 { body += Array("40000\r\n".utf8) + part + Array("\r\n".utf8) }
            body += Array("0\r\n\r\n".utf8)
            RawHTTP.send(fd, body)
            let r = RawHTTP.parse(RawHTTP.readAll(fd))
            close(fd)
            XCTAssertEqual(r?.status, 413, "chunked body over the limit")
        }
        // Garbage instead of HTTP, and a header block over the connection's memory limit.
        if let fd = RawHTTP.connect(port: port, timeout: 10) {
            RawHTTP.send(fd, Array("HELLO THERE\r\n\r\n".utf8))
            let r = RawHTTP.parse(RawHTTP.readAll(fd))
            close(fd)
            XCTAssertTrue(r == nil || r!.status >= 400, "garbage request line")
        }
        let bigHeader = ["X-Filler": String(repeating: "a", count: 200_000)]
        let hr = RawHTTP.request(port: port, "GET", "/health", headers: bigHeader)
        XCTAssertTrue(hr == nil || hr!.status >= 400, "oversized headers are refused (\(hr?.status ?? 0))")

        // After all that, a normal request still works.
        let fine = try XCTUnwrap(RawHTTP.post(port: port, "/v1/chat/completions",
                                              #"{"messages":[\#(ok)],"max_tokens":3,"temperature":0}"#))
        XCTAssertEqual(fine.status, 200, fine.body)
    }

    func testHalfSentRequestTimesOut() throws {
        let s = try TestServers.requireShared()
        let fd = try XCTUnwrap(RawHTTP.connect(port: s.port, timeout: 15))
        defer { close(fd) }
        RawHTTP.send(fd, Array("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"mess".utf8))
        let t0 = Date()
        _ = RawHTTP.readAll(fd)  // returns when the server closes the connection
        let waited = Date().timeIntervalSince(t0)
        XCTAssertLessThan(waited, 10, "the idle timeout (3 s) closes a half-sent request")
        XCTAssertEqual(RawHTTP.request(port: s.port, "GET", "/health")?.status, 200)
    }

    func testThousandIdleConnections() throws {
        let s = try TestServers.requireShared()
        TestServers.raiseFileLimit()
        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        for _ in 0..<1000 {
            guard let fd = RawHTTP.connect(port: s.port, timeout: 5) else { break }
            fds.append(fd)
        }
        XCTAssertEqual(fds.count, 1000, "1,000 idle connections are accepted")
        let r = RawHTTP.post(port: s.port, "/v1/chat/completions", #"{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}"#)
        XCTAssertEqual(r?.status, 200, "a normal request succeeds beside 1,000 idle connections")
        fds.forEach { close($0) }
        fds = []
        XCTAssertEqual(RawHTTP.request(port: s.port, "GET", "/health")?.status, 200)
    }

    func testDisconnectMidStreamFreesSlot() throws {
        let s = try TestServers.requireShared()
        let cancelledBefore = TestServers.metric(s, "tiefsee_cancelled_total") ?? 0
        let fd = try XCTUnwrap(RawHTTP.connect(port: s.port, timeout: 30))
        let body = #"{"messages":[{"role":"user","content":"Count from 1 to 500."}],"max_tokens":400,"temperature":0,"stream":true}"#
        RawHTTP.send(fd, Array("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8))
        // Read until some content has streamed. Greedy: this prompt's answer runs to max_tokens
        // (a sampled one may be a short loop in code, finished before the check below).
        var got = ""
        var buf = [UInt8](repeating: 0, count: 4096)
        while !got.contains(#""content":"#) || got.components(separatedBy: "data: ").count < 4 {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 4096, 0) }
            if n <= 0 { break }
            got += String(decoding: buf[0..<n], as: UTF8.self)
        }
        XCTAssertEqual(TestServers.metric(s, "tiefsee_slots_busy"), 1, "the stream occupies a slot")
        let stepsAtClose = TestServers.metric(s, "tiefsee_decode_steps_total") ?? 0
        close(fd)
        var freed = false
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if TestServers.metric(s, "tiefsee_slots_busy") == 0 { freed = true; break }
            usleep(10_000)
        }
        XCTAssertTrue(freed, "the slot is freed after the client disconnects")
        let steps = (TestServers.metric(s, "tiefsee_decode_steps_total") ?? 0) - stepsAtClose
        print("disconnect: slot freed after \(Int(steps)) further decode steps")
        XCTAssertLessThanOrEqual(steps, 2, "freed within about one decode step")
        XCTAssertEqual(TestServers.metric(s, "tiefsee_cancelled_total"), cancelledBefore + 1)
    }

    /// Prompt-lookup drafts are checked while a sequence decodes alone, not while several do
    /// (a draft there would turn the shared decode step into a matrix-kernel step for every
    /// sequence): the same text either way, and far fewer drafted tokens when two run together.
    func testDraftsOnlyWhileDecodingAlone() throws {
        let e = try TestServers.requireEngine()
        var cfg = TestServers.baseConfig
        cfg.parallel = 2
        let server = try OpenAIServer(engine: e, config: cfg)
        defer { server.stop() }
        // A repetitive prompt: the greedy continuation repeats it, so lookup drafts often.
        let body = #"{"prompt":"red green blue, red green blue, red green blue, red green blue,","max_tokens":32,"temperature":0}"#
        @Sendable func text(_ r: RawHTTP.Response?) -> String? { r?.json?["choices"]?[0]?["text"]?.string }
        let drafted = { TestServers.metric(server, "tiefsee_draft_tokens_total") ?? -1 }
        let alone = try XCTUnwrap(text(RawHTTP.post(port: server.port, "/v1/completions", body)))
        let aloneDrafts = drafted()
        XCTAssertGreaterThan(aloneDrafts, 8, "a lone greedy request drafts from its repeated context")
        final class Box: @unchecked Sendable { var r = [String?](repeating: nil, count: 2) }
        let box = Box(), lock = NSLock(), group = DispatchGroup(), start = DispatchSemaphore(value: 0)
        for i in 0..<2 {
            group.enter()
            Thread {
                start.wait()
                let t = text(RawHTTP.post(port: server.port, "/v1/completions", body))
                lock.lock(); box.r[i] = t; lock.unlock()
                group.leave()
            }.start()
        }
        start.signal(); start.signal()
        group.wait()
        let togetherDrafts = drafted() - aloneDrafts
        print("drafted tokens: \(Int(aloneDrafts)) for one request alone, \(Int(togetherDrafts)) for two together")
        XCTAssertEqual(box.r[0], alone)
        XCTAssertEqual(box.r[1], alone)
        // Together, drafts only in the steps where one of them decodes alone (before the other
        // is admitted): fewer than one request's alone, where drafting every step would give two.
        XCTAssertLessThan(togetherDrafts, aloneDrafts)
    }

    func testQueueFullGives503WithRetryAfter() throws {
        let e = try TestServers.requireEngine()
        var cfg = TestServers.baseConfig
        cfg.parallel = 1
        cfg.maxQueue = 0
        let server = try OpenAIServer(engine: e, config: cfg)
        defer { server.stop() }
        let fd = try XCTUnwrap(RawHTTP.connect(port: server.port, timeout: 30))
        let body = #"{"messages":[{"role":"user","content":"Count to 100."}],"max_tokens":200,"temperature":0,"stream":true}"#
        RawHTTP.send(fd, Array("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8))
        var buf = [UInt8](repeating: 0, count: 4096)
        _ = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 4096, 0) }
        let r = try XCTUnwrap(RawHTTP.post(port: server.port, "/v1/chat/completions", #"{"messages":[{"role":"user","content":"hi"}]}"#))
        XCTAssertEqual(r.status, 503, r.body)
        XCTAssertNotNil(r.headers["retry-after"])
        XCTAssertNotNil(r.json?["error"])
        close(fd)
    }

    func testLoopbackBindAndAPIKey() throws {
        let e = try TestServers.requireEngine()
        var cfg = TestServers.baseConfig
        cfg.parallel = 1
        cfg.apiKey = "sekrit-key"
        XCTAssertEqual(ServerConfig().host, "127.0.0.1", "loopback is the default bind address")
        let server = try OpenAIServer(engine: e, config: cfg)
        defer { server.stop() }
        // Bound to 127.0.0.1 only: another loopback address on the same port is refused.
        XCTAssertNil(RawHTTP.connect("127.0.0.2", port: server.port, timeout: 2), "not reachable on 127.0.0.2")
        XCTAssertNotNil(RawHTTP.connect("127.0.0.1", port: server.port, timeout: 2).map { close($0) })
        let body = #"{"messages":[{"role":"user","content":"hi"}],"max_tokens":1}"#
        XCTAssertEqual(RawHTTP.post(port: server.port, "/v1/chat/completions", body)?.status, 401, "no key")
        let wrong = RawHTTP.post(port: server.port, "/v1/chat/completions", body, headers: ["Authorization": "Bearer nope"])
        XCTAssertEqual(wrong?.status, 401, "wrong key")
        XCTAssertEqual(wrong?.json?["error"]?["code"]?.string, "invalid_api_key")
        XCTAssertEqual(RawHTTP.request(port: server.port, "GET", "/v1/models")?.status, 401)
        XCTAssertEqual(RawHTTP.request(port: server.port, "GET", "/v1/models", headers: ["Authorization": "Bearer sekrit-key"])?.status, 200)
        let right = RawHTTP.post(port: server.port, "/v1/chat/completions", body, headers: ["Authorization": "Bearer sekrit-key"])
        XCTAssertEqual(right?.status, 200)
        XCTAssertEqual(RawHTTP.request(port: server.port, "GET", "/health")?.status, 200, "health needs no key")
        XCTAssertTrue(HTTPServer.isLoopback("127.0.0.1") && HTTPServer.isLoopback("::1") && !HTTPServer.isLoopback("0.0.0.0"))
    }
}

/// The reasoning split (DeepSeek API convention) on the deterministic R1-style fixture.
final class ServerReasoningTests: XCTestCase {
    func testReasoningContentSplit() throws {
        let dir = try ReasoningFixture.make()
        let engine = try Engine.load(dir)
        var cfg = TestServers.baseConfig
        cfg.parallel = 2
        cfg.contextSize = 256
        let server = try OpenAIServer(engine: engine, config: cfg)
        defer { server.stop() }
        XCTAssertTrue(server.splitsReasoning)
        let body = #"{"messages":[{"role":"user","content":"What is 2+2?"}],"max_tokens":40}"#
        let r = try XCTUnwrap(RawHTTP.post(port: server.port, "/v1/chat/completions", body))
        XCTAssertEqual(r.status, 200, r.body)
        let msg = try XCTUnwrap(r.json?["choices"]?[0]?["message"])
        XCTAssertEqual(msg["reasoning_content"]?.string, ReasoningFixture.reasoning)
        XCTAssertEqual(msg["content"]?.string, ReasoningFixture.answer)
        XCTAssertEqual(r.json?["choices"]?[0]?["finish_reason"]?.string, "stop")
        let st = try XCTUnwrap(RawHTTP.post(port: server.port, "/v1/chat/completions",
                                            #"{"messages":[{"role":"user","content":"What is 2+2?"}],"max_tokens":40,"stream":true}"#))
        var reasoning = ""
        for line in st.body.components(separatedBy: "\n") where line.hasPrefix("data: {") {
            if let d = try JSONValue.parse(String(line.dropFirst(6)))["choices"]?[0]?["delta"]?["reasoning_content"]?.string { reasoning += d }
        }
        XCTAssertEqual(reasoning, ReasoningFixture.reasoning)
        XCTAssertEqual(RawHTTP.chatStreamText(st.body).content, ReasoningFixture.answer)
    }
}

/// Acceptance 1: the official `openai` Python package against the server
/// (scripts/test_openai_client.py). Skips visibly when python3 or the package is missing.
final class ServerOpenAIClientTests: XCTestCase {
    func testOfficialOpenAIClient() throws {
        let s = try TestServers.requireShared()
        try TestServers.requirePythonOpenAI()
        let engine = try Engine.load(try ReasoningFixture.make())
        var cfg = TestServers.baseConfig
        cfg.parallel = 1
        cfg.contextSize = 256
        let r1 = try OpenAIServer(engine: engine, config: cfg)
        defer { r1.stop() }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", repoRoot + "/scripts/test_openai_client.py",
                       "--base-url", "http://127.0.0.1:\(s.port)/v1", "--model", s.modelID,
                       "--reasoning-base-url", "http://127.0.0.1:\(r1.port)/v1", "--reasoning-model", r1.modelID,
                       "--reasoning", ReasoningFixture.reasoning, "--answer", ReasoningFixture.answer]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        print(out)
        XCTAssertEqual(p.terminationStatus, 0, "openai client tests failed:\n\(out)")
    }
}

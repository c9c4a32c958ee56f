import Foundation
import XCTest
@testable import Tiefsee
@testable import TiefseeServer

/// `/v1/messages` (Anthropic) and `/v1/responses` (OpenAI Responses): the wire format over raw
/// HTTP, then the official `anthropic` and `openai` Python clients, unmodified
/// (scripts/test_messages_responses_clients.py), on the default model and the R1-style fixture.
final class MessagesResponsesTests: XCTestCase {
    func testMessagesStreamEventOrder() throws {
        let s = try TestServers.requireShared()
        let body = #"{"model":"\#(s.modelID)","max_tokens":6,"temperature":0,"stream":true,"messages":[{"role":"user","content":"Hi"}]}"#
        let r = try XCTUnwrap(RawHTTP.post(port: s.port, "/v1/messages", body))
        XCTAssertEqual(r.status, 200, r.body)
        let events = r.body.split(separator: "\n").filter { $0.hasPrefix("event: ") }.map { String($0.dropFirst(7)) }
        XCTAssertEqual(events.first, "message_start")
        XCTAssertEqual(Array(events.suffix(3)), ["content_block_stop", "message_delta", "message_stop"], "\(events)")
        XCTAssertTrue(events.contains("content_block_start") && events.contains("content_block_delta"), "\(events)")
        XCTAssertTrue(r.body.contains(#""stop_reason":"max_tokens""#), r.body)
        // Errors in Anthropic's shape, also from the preflight.
        let bad = try XCTUnwrap(RawHTTP.post(port: s.port, "/v1/messages", #"{"messages":[{"role":"user","content":"Hi"}]}"#))
        XCTAssertEqual(bad.status, 400)
        XCTAssertEqual(bad.json?["type"]?.string, "error")
        XCTAssertEqual(bad.json?["error"]?["type"]?.string, "invalid_request_error")
        XCTAssertTrue(bad.json?["error"]?["message"]?.string?.contains("max_tokens") == true, bad.body)
        let image = #"{"max_tokens":4,"messages":[{"role":"user","content":[{"type":"image","source":{}}]}]}"#
        XCTAssertEqual(RawHTTP.post(port: s.port, "/v1/messages", image)?.status, 400)
    }

    func testResponsesWholeAndIncomplete() throws {
        let s = try TestServers.requireShared()
        let r = try XCTUnwrap(RawHTTP.post(port: s.port, "/v1/responses", #"{"input":"Name a colour.","max_output_tokens":4,"temperature":0}"#))
        XCTAssertEqual(r.status, 200, r.body)
        let j = try XCTUnwrap(r.json)
        XCTAssertEqual(j["object"]?.string, "response")
        XCTAssertEqual(j["status"]?.string, "incomplete")
        XCTAssertEqual(j["incomplete_details"]?["reason"]?.string, "max_output_tokens")
        XCTAssertEqual(j["output"]?[0]?["type"]?.string, "message")
        XCTAssertFalse(j["output"]?[0]?["content"]?[0]?["text"]?.string?.isEmpty ?? true)
        XCTAssertEqual(j["usage"]?["output_tokens"]?.int, 4)
        let st = try XCTUnwrap(RawHTTP.post(port: s.port, "/v1/responses", #"{"input":"Name a colour.","max_output_tokens":4,"temperature":0,"stream":true}"#))
        let types = st.body.split(separator: "\n").filter { $0.hasPrefix("event: ") }.map { String($0.dropFirst(7)) }
        XCTAssertEqual(types.first, "response.created")
        XCTAssertEqual(types.last, "response.incomplete")
        for t in ["response.output_item.added", "response.content_part.added", "response.output_text.delta",
                  "response.output_text.done", "response.output_item.done"] { XCTAssertTrue(types.contains(t), "\(t) missing: \(types)") }
        let unsupported = try XCTUnwrap(RawHTTP.post(port: s.port, "/v1/responses", #"{"input":[{"type":"web_search_call"}]}"#))
        XCTAssertEqual(unsupported.status, 400)
        XCTAssertEqual(unsupported.json?["error"]?["param"]?.string, "input[0]")
    }

    func testOfficialAnthropicAndOpenAIClients() throws {
        let s = try TestServers.requireShared()
        try TestServers.requirePythonOpenAI(["openai", "anthropic"])
        let engine = try Engine.load(try ReasoningFixture.make())
        var cfg = TestServers.baseConfig
        cfg.parallel = 1
        cfg.contextSize = 256
        let r1 = try OpenAIServer(engine: engine, config: cfg)
        defer { r1.stop() }
        let out = try runProcess("/usr/bin/env", ["python3", repoRoot + "/scripts/test_messages_responses_clients.py",
                                                  "--base-url", "http://127.0.0.1:\(s.port)/v1", "--model", s.modelID,
                                                  "--reasoning-base-url", "http://127.0.0.1:\(r1.port)/v1", "--reasoning-model", r1.modelID,
                                                  "--reasoning", ReasoningFixture.reasoning, "--answer", ReasoningFixture.answer])
        print(out.stdout + out.stderr)
        XCTAssertEqual(out.status, 0, "client checks failed:\n\(out.stdout)\(out.stderr)")
        XCTAssertTrue(out.stdout.contains("0 failures"), out.stdout)
    }
}

import XCTest
@testable import Tiefsee
@testable import TiefseeServer

/// The server's pure parts: the json_object grammar, tool-call parsing, request reading.
final class ServerUnitTests: XCTestCase {
    static let anyObject = try! Grammar(gbnf: JSONSchemaGrammar.anyObjectGBNF)

    func accepts(_ s: String) -> (ok: Bool, complete: Bool) {
        let m = GrammarMatcher(ServerUnitTests.anyObject)
        guard m.accept(bytes: Array(s.utf8)) else { return (false, false) }
        return (true, m.canEnd)
    }

    /// response_format json_object: the any-object grammar takes objects and their prefixes only.
    func testJSONObjectGrammar() {
        for good in [#"{}"#, #"{"a":1}"#, #"{"a":[1,2.5,-3e+2,true,false,null,"x\"y\u00e9"],"b":{"c":{}}}"#,
                     "{\n  \"name\": \"Buddy\",\n  \"age\": 3\n}", #"{"k":"ü 日本"}"#, #"{"a":0.5,"b":-0}"#] {
            XCTAssertEqual(accepts(good).ok, true, good)
            XCTAssertEqual(accepts(good).complete, true, good)
        }
        for prefix in [#"{"a":"#, #"{"a":[1,"#, #"{"a":tr"#, #"{"a":-"#, "{\"a\":\"x\\u00"] {
            XCTAssertEqual(accepts(prefix).ok, true, prefix)
            XCTAssertEqual(accepts(prefix).complete, false, prefix)
        }
        for bad in [#"[1]"#, #"{a:1}"#, #"{"a":01}"#, #"{"a":1,}"#, #"{"a" 1}"#, #"{"a":tru3}"#, #"{"a":"\x"}"#,
                    "{\"a\":\"line\nbreak\"}", #"{"a":1}}"#, #"{"a":1} x"#, #"{"a":.5}"#, #"{"a":1.}"#, #"{"a":[1 2]}"#] {
            XCTAssertFalse(accepts(bad).ok, bad)
        }
        XCTAssertFalse(accepts("{" + String(repeating: " ", count: 100)).ok, "whitespace runs are capped")
    }

    func testToolCallParsing() {
        let text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"
        let (calls, rest) = ToolCallParser.parse(text)
        XCTAssertEqual(calls, [ParsedToolCall(name: "get_weather", arguments: #"{"city":"Paris"}"#)])
        XCTAssertEqual(rest.trimmingCharacters(in: .whitespacesAndNewlines), "Let me check.")
        // Streaming: content passes, the block is held and parsed at the end.
        var p = ToolCallParser(toolNames: ["get_weather"])
        var out = ""
        for ch in text { out += p.feed(String(ch)) }
        out += p.finish()
        XCTAssertEqual(out.trimmingCharacters(in: .whitespacesAndNewlines), "Let me check.")
        XCTAssertEqual(p.calls.map(\.name), ["get_weather"])
        // A bare or fenced JSON call naming a known tool.
        let fenced = "```json\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n```"
        XCTAssertEqual(ToolCallParser.parse(fenced, toolNames: ["get_weather"]).0.first?.arguments, #"{"city":"Oslo"}"#)
        XCTAssertTrue(ToolCallParser.parse(fenced, toolNames: ["other"]).0.isEmpty, "unknown names stay content")
        var q = ToolCallParser(toolNames: ["get_weather"])
        XCTAssertEqual(q.feed("Hello"), "Hello")
        XCTAssertEqual(q.feed(" world"), " world")
        XCTAssertEqual(q.finish(), "")
        XCTAssertTrue(q.calls.isEmpty)
    }

    func testRequestReaderErrors() {
        func status(_ body: String) -> Int? {
            do { _ = try RequestReader(Array(body.utf8), allowed: ["a"]); return nil } catch let e as OpenAIError { return e.status } catch { return -1 }
        }
        XCTAssertEqual(status("{\"b\":1}"), 400)
        XCTAssertEqual(status("nope"), 400)
        XCTAssertNil(status("{\"a\":1}"))
        XCTAssertEqual(OpenAIError(503, "busy").response.headers.first { $0.0 == "Retry-After" }?.1, "1")
    }
}

import Foundation
import XCTest
@testable import Tiefsee

/// response_format json_schema, the `grammar` field and forced tool calls through the server
/// with the default model: the outputs follow the schema (checked by SchemaValidator), whole
/// and streamed, and bad schemas / grammars are 400s that name the field.
final class StructuredOutputServerTests: XCTestCase {
    func post(_ port: Int, _ body: String) -> RawHTTP.Response? { RawHTTP.post(port: port, "/v1/chat/completions", body) }

    func testJSONSchemaWholeAndStreamed() throws {
        let s = try TestServers.requireShared()
        let schema = #"{"type":"object","properties":{"city":{"type":"string","maxLength":20},"population":{"type":"integer","minimum":0},"capital":{"type":"boolean"}},"required":["city","population","capital"],"additionalProperties":false}"#
        let body = #"{"messages":[{"role":"user","content":"Tell me about Paris."}],"temperature":0,"max_tokens":80,"response_format":{"type":"json_schema","json_schema":{"name":"city","strict":true,"schema":\#(schema)}}}"#
        let r = try XCTUnwrap(post(s.port, body))
        XCTAssertEqual(r.status, 200, r.body)
        let content = try XCTUnwrap(r.json?["choices"]?[0]?["message"]?["content"]?.string)
        XCTAssertEqual(r.json?["choices"]?[0]?["finish_reason"]?.string, "stop", content)
        XCTAssertNil(SchemaValidator(root: try JSONValue.parse(schema)).violation(try JSONValue.parse(content)), content)
        let st = try XCTUnwrap(post(s.port, String(body.dropLast()) + #","stream":true}"#))
        XCTAssertEqual(RawHTTP.chatStreamText(st.body).content, content, "streamed = whole (greedy)")
        // With sampling, several seeds: all validate.
        for seed in 1...3 {
            let b = body.replacingOccurrences(of: #""temperature":0"#, with: #""temperature":1.0,"seed":\#(seed)"#)
            let rr = try XCTUnwrap(post(s.port, b))
            let c = try XCTUnwrap(rr.json?["choices"]?[0]?["message"]?["content"]?.string, rr.body)
            XCTAssertNil(SchemaValidator(root: try JSONValue.parse(schema)).violation(try JSONValue.parse(c)), c)
        }
    }

    func testGBNFGrammarField() throws {
        let s = try TestServers.requireShared()
        let g = JSONValue.string("root ::= answer \".\"\nanswer ::= \"yes\" | \"no\"\n").serialized()
        let r = try XCTUnwrap(post(s.port, #"{"messages":[{"role":"user","content":"Is the sky blue?"}],"temperature":0,"max_tokens":10,"grammar":\#(g)}"#))
        XCTAssertEqual(r.status, 200, r.body)
        let content = r.json?["choices"]?[0]?["message"]?["content"]?.string
        XCTAssertTrue(["yes.", "no."].contains(content ?? ""), content ?? r.body)
        let c = try XCTUnwrap(RawHTTP.post(port: s.port, "/v1/completions", #"{"prompt":"The year the Berlin wall fell:","max_tokens":8,"temperature":0,"grammar":"root ::= \" \" [12] [0-9]{3}"}"#))
        let text = try XCTUnwrap(c.json?["choices"]?[0]?["text"]?.string, c.body)
        XCTAssertNotNil(text.range(of: #"^ [12][0-9]{3}$"#, options: .regularExpression), text)
    }

    func testForcedToolCallFollowsParameters() throws {
        let s = try TestServers.requireShared()
        let params = #"{"type":"object","properties":{"city":{"type":"string","maxLength":30},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city","unit"],"additionalProperties":false}"#
        let body = #"{"messages":[{"role":"user","content":"How warm is it in Oslo?"}],"temperature":0,"max_tokens":60,"tools":[{"type":"function","function":{"name":"get_weather","parameters":\#(params)}}],"tool_choice":{"type":"function","function":{"name":"get_weather"}}}"#
        for stream in [false, true] {
            let r = try XCTUnwrap(post(s.port, stream ? String(body.dropLast()) + #","stream":true}"# : body))
            XCTAssertEqual(r.status, 200, r.body)
            var name: String?, args: String?
            if stream {
                var a = ""
                for line in r.body.split(separator: "\n") where line.hasPrefix("data: {") {
                    let j = try JSONValue.parse(String(line.dropFirst(6)))
                    if let tc = j["choices"]?[0]?["delta"]?["tool_calls"]?[0] {
                        if let n = tc["function"]?["name"]?.string { name = n }
                        a += tc["function"]?["arguments"]?.string ?? ""
                    }
                }
                args = a
            } else {
                let tc = r.json?["choices"]?[0]?["message"]?["tool_calls"]?[0]
                name = tc?["function"]?["name"]?.string
                args = tc?["function"]?["arguments"]?.string
                XCTAssertEqual(r.json?["choices"]?[0]?["finish_reason"]?.string, "tool_calls", r.body)
            }
            XCTAssertEqual(name, "get_weather", r.body)
            let parsed = try JSONValue.parse(try XCTUnwrap(args, r.body))
            XCTAssertNil(SchemaValidator(root: try JSONValue.parse(params)).violation(parsed), args ?? "")
        }
    }

    func testBadSchemasAndGrammarsAre400() throws {
        let s = try TestServers.requireShared()
        let msg = #""messages":[{"role":"user","content":"hi"}]"#
        for (extra, param) in [(#""response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"not":{}}}}"#, "response_format"),
                               (#""response_format":{"type":"json_schema","json_schema":{"name":"x"}}"#, "response_format"),
                               (#""grammar":"root ::= undefined_rule""#, "grammar"),
                               (#""grammar":"root ::= root \"x\"""#, "grammar"),
                               (#""grammar":7"#, "grammar"),
                               (#""grammar":"root ::= \"a\"","response_format":{"type":"json_object"}"#, "grammar")] {
            let r = try XCTUnwrap(post(s.port, "{\(msg),\(extra)}"))
            XCTAssertEqual(r.status, 400, "\(extra): \(r.body)")
            XCTAssertEqual(r.json?["error"]?["param"]?.string, param, r.body)
        }
    }
}

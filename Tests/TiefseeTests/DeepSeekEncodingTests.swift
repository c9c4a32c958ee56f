import Foundation
import XCTest
@testable import Tiefsee
@testable import TiefseeServer

/// The Swift V3.2 / V4 encoders against DeepSeek's Python encoders (fixtures rendered by
/// scripts/gen_deepseek_encoding_fixtures.py).
final class DeepSeekEncodingTests: XCTestCase {
    func testEncodersMatchPythonReferenceByteForByte() throws {
        let doc = try JSONValue.parse(contentsOf: fixturePath("templates/deepseek_encodings.json"))
        let cases = try XCTUnwrap(doc["cases"]?.array)
        var matched: [String: Int] = [:], raised: [String: Int] = [:]
        for c in cases {
            let which = try XCTUnwrap(c["encoder"]?.string)
            let label = "\(which)/\(c["case"]?.string ?? "?") \(c["options"].map { $0.serialized() } ?? "")"
            let encoding: DeepSeekEncoding = which == "v32" ? .v32 : .v4
            var kwargs: [String: JSONValue] = [:]
            for (k, v) in c["options"]?.object ?? [] where k != "reasoning_effort" { kwargs[k] = v }
            var options = DeepSeekEncodingOptions(kwargs: kwargs)
            options.reasoningEffort = c["options"]?["reasoning_effort"]?.string
            let tools = c["tools"].flatMap { $0.isNull ? nil : $0.array }
            do {
                let got = try encoding.render(messages: try XCTUnwrap(c["messages"]?.array), tools: tools, options: options)
                if c["error"]?.bool == true {
                    XCTFail("\(label): Python raised \(c["error_message"]?.string ?? "") but we rendered \(got.debugDescription)")
                } else {
                    let want = try XCTUnwrap(c["expected"]?.string)
                    XCTAssertEqual(Array(got.utf8), Array(want.utf8), "\(label):\n got: \(got.debugDescription)\nwant: \(want.debugDescription)")
                    if Array(got.utf8) == Array(want.utf8) { matched[which, default: 0] += 1 }
                }
            } catch let e as DeepSeekEncodingError {
                if c["error"]?.bool != true { XCTFail("\(label): unexpected error \(e)") } else { raised[which, default: 0] += 1 }
            }
        }
        print("DeepSeek encoders: byte-identical renders \(matched), raised like Python \(raised), of \(cases.count) cases")
        // ≥ 20 conversations each, in several thinking settings.
        XCTAssertGreaterThanOrEqual(matched["v32"] ?? 0, 80, "\(matched)")
        XCTAssertGreaterThanOrEqual(matched["v4"] ?? 0, 100, "\(matched)")
        XCTAssertGreaterThan((raised["v32"] ?? 0) + (raised["v4"] ?? 0), 5)
    }

    func testArchitectureSelectsEncoder() {
        XCTAssertEqual(DeepSeekEncoding.forArchitecture("deepseek32"), .v32)
        XCTAssertEqual(DeepSeekEncoding.forArchitecture("DeepseekV32ForCausalLM"), .v32)
        XCTAssertEqual(DeepSeekEncoding.forArchitecture("deepseek_v4"), .v4)
        XCTAssertEqual(DeepSeekEncoding.forArchitecture("deepseek4"), .v4)
        XCTAssertNil(DeepSeekEncoding.forArchitecture("deepseek2"))
        XCTAssertNil(DeepSeekEncoding.forArchitecture("qwen2"))
        XCTAssertEqual(ToolCallFormat.detect(templateSource: nil, encoding: .v4), .dsml)
        XCTAssertEqual(ToolCallFormat.detect(templateSource: "{{ '<tool_call>' }}", encoding: nil), .hermes)
        XCTAssertEqual(ToolCallFormat.detect(templateSource: "{{'<｜tool▁calls▁begin｜>'}}", encoding: nil), .deepseek)
    }

    func testRequestOptions() {
        XCTAssertEqual(DeepSeekEncodingOptions(kwargs: [:]), DeepSeekEncodingOptions(thinking: false))
        XCTAssertTrue(DeepSeekEncodingOptions(kwargs: ["thinking": .bool(true)]).thinking)
        XCTAssertTrue(DeepSeekEncodingOptions(kwargs: ["enable_thinking": .bool(true)]).thinking)
        XCTAssertFalse(DeepSeekEncodingOptions(kwargs: ["drop_thinking": .bool(false)]).dropThinking)
        XCTAssertEqual(DeepSeekEncodingOptions(kwargs: ["thinking": .bool(true)], reasoningEffort: "xhigh").reasoningEffort, "max")
        XCTAssertEqual(DeepSeekEncodingOptions(kwargs: ["thinking": .bool(true)], reasoningEffort: "low").reasoningEffort, "high")
        XCTAssertFalse(DeepSeekEncodingOptions(kwargs: ["thinking": .bool(true)], reasoningEffort: "none").thinking)
    }

    /// The reasoning a client sends back lands where the model expects it: V4 keeps it for the
    /// turn being continued (after the last user message) and drops it for earlier turns.
    func testReasoningContentPlacement() throws {
        func msg(_ role: String, _ content: String, reasoning: String? = nil) -> JSONValue {
            var o: [(String, JSONValue)] = [("role", .string(role)), ("content", .string(content))]
            if let reasoning { o.append(("reasoning_content", .string(reasoning))) }
            return .object(o)
        }
        let conv = [msg("user", "a"), msg("assistant", "b", reasoning: "old"), msg("user", "c"), msg("assistant", "d", reasoning: "new")]
        let on = try DeepSeekEncoding.v4.render(messages: conv, options: DeepSeekEncodingOptions(thinking: true))
        XCTAssertEqual(on, "<｜begin▁of▁sentence｜><｜User｜>a<｜Assistant｜></think>b<｜end▁of▁sentence｜><｜User｜>c<｜Assistant｜><think>new</think>d<｜end▁of▁sentence｜>")
        let keep = try DeepSeekEncoding.v4.render(messages: conv, options: DeepSeekEncodingOptions(thinking: true, dropThinking: false))
        XCTAssertTrue(keep.contains("<think>old</think>b"), keep)
        let chat = try DeepSeekEncoding.v32.render(messages: Array(conv.prefix(3)), options: DeepSeekEncodingOptions(thinking: false))
        XCTAssertEqual(chat, "<｜begin▁of▁sentence｜><｜User｜>a<｜Assistant｜></think>b<｜end▁of▁sentence｜><｜User｜>c<｜Assistant｜></think>")
    }
}

final class DeepSeekToolCallTests: XCTestCase {
    let v31 = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Zürich\"}<｜tool▁call▁end｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{\"tz\": \"Europe/Paris\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
    let v3 = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Zürich\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{\"tz\": \"UTC\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
    let dsml = "Let me look.\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"search\">\n<｜DSML｜parameter name=\"query\" string=\"true\">Zürich \"weather\"</｜DSML｜parameter>\n<｜DSML｜parameter name=\"num_results\" string=\"false\">3</｜DSML｜parameter>\n<｜DSML｜parameter name=\"filters\" string=\"false\">{\"lang\": [\"de\"]}</｜DSML｜parameter>\n</｜DSML｜invoke>\n<｜DSML｜invoke name=\"get_time\">\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>"

    func testV31AndV3Formats() {
        let (calls, content) = ToolCallParser.parse("I'll check." + v31, format: .deepseek)
        XCTAssertEqual(calls, [ParsedToolCall(name: "get_weather", arguments: "{\"city\": \"Zürich\"}"),
                               ParsedToolCall(name: "get_time", arguments: "{\"tz\": \"Europe/Paris\"}")])
        XCTAssertEqual(content, "I'll check.")
        let (calls3, content3) = ToolCallParser.parse(v3, format: .deepseek)
        XCTAssertEqual(calls3.map(\.name), ["get_weather", "get_time"])
        XCTAssertEqual(calls3[1].arguments, "{\"tz\": \"UTC\"}")
        XCTAssertEqual(content3, "")
    }

    func testDSMLFormat() throws {
        let (calls, content) = ToolCallParser.parse(dsml, format: .dsml)
        XCTAssertEqual(content, "Let me look.")
        XCTAssertEqual(calls.count, 2)
        XCTAssertEqual(calls[0].name, "search")
        XCTAssertEqual(calls[0].arguments, "{\"query\": \"Zürich \\\"weather\\\"\", \"num_results\": 3, \"filters\": {\"lang\": [\"de\"]}}")
        XCTAssertEqual(try JSONValue.parse(calls[0].arguments)["num_results"]?.int, 3)
        XCTAssertEqual(calls[1], ParsedToolCall(name: "get_time", arguments: "{}"))
        // V3.2 writes the same elements inside <｜DSML｜function_calls>.
        let v32 = dsml.replacingOccurrences(of: "tool_calls>", with: "function_calls>")
        XCTAssertEqual(ToolCallParser.parse(v32, format: .dsml).0, calls)
    }

    /// What the encoder writes for a call is what the parser reads back.
    func testDSMLRoundTripThroughEncoder() throws {
        let call: JSONValue = .object([("type", .string("function")), ("function", .object([
            ("name", .string("get_weather")), ("arguments", .string("{\"city\": \"Zürich\", \"days\": 2, \"alerts\": true}"))]))])
        let msgs: [JSONValue] = [.object([("role", .string("user")), ("content", .string("w?"))]),
                                 .object([("role", .string("assistant")), ("content", .string("")), ("tool_calls", .array([call]))])]
        for enc in DeepSeekEncoding.allCases {
            let prompt = try enc.render(messages: msgs, options: DeepSeekEncodingOptions())
            let reply = String(prompt[prompt.range(of: "</think>")!.upperBound...]).replacingOccurrences(of: "<｜end▁of▁sentence｜>", with: "")
            let (calls, content) = ToolCallParser.parse(reply, format: .dsml)
            XCTAssertEqual(content, "", "\(enc)")
            XCTAssertEqual(calls, [ParsedToolCall(name: "get_weather", arguments: "{\"city\": \"Zürich\", \"days\": 2, \"alerts\": true}")], "\(enc)")
        }
    }

    func testStreamingMatchesWholeParse() {
        for (text, format) in [("I'll check." + v31, ToolCallFormat.deepseek), (v3, .deepseek), (dsml, .dsml), ("no calls here\n\n", .dsml)] {
            let whole = ToolCallParser.parse(text, format: format)
            for step in [1, 3, 7, 1000] {
                var p = ToolCallParser(format: format)
                var out = ""
                var i = text.startIndex
                while i < text.endIndex {
                    let j = text.index(i, offsetBy: step, limitedBy: text.endIndex) ?? text.endIndex
                    out += p.feed(String(text[i..<j]))
                    i = j
                }
                out += p.finish()
                XCTAssertEqual(p.calls, whole.0, "step \(step): \(text.debugDescription)")
                if whole.0.isEmpty { XCTAssertEqual(out, text) } else { XCTAssertEqual(out, whole.1, "step \(step)") }
            }
        }
    }

    /// Truncated or garbled call blocks come back as plain content: no calls, no crash, no
    /// text lost.
    func testMalformedOutputIsPlainContent() {
        var broken: [(String, ToolCallFormat)] = []
        // Every cut except those that end right after a complete call (kept: see below).
        for cut in stride(from: 1, to: v31.count, by: 3) where !String(v31.prefix(cut)).hasSuffix("<｜tool▁call▁end｜>") {
            broken.append((String(v31.prefix(cut)), .deepseek))
        }
        for cut in stride(from: 1, to: dsml.count, by: 4) where !String(dsml.prefix(cut)).trimmingTrailingWhitespace().hasSuffix("</｜DSML｜invoke>") {
            broken.append((String(dsml.prefix(cut)), .dsml))
        }
        broken += [
            ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{city: Zürich}<｜tool▁call▁end｜><｜tool▁calls▁end｜>", .deepseek),
            ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜><｜tool▁sep｜>{}<｜tool▁call▁end｜>", .deepseek),
            ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather{\"a\": 1}<｜tool▁call▁end｜>", .deepseek),
            ("<｜tool▁calls▁begin｜>garbage<｜tool▁calls▁end｜>", .deepseek),
            ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{\"a\": 1}\n<｜tool▁call▁end｜>", .deepseek),
            ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>[1, 2]<｜tool▁call▁end｜>", .deepseek),
            ("<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"a\" string=\"maybe\">1</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>", .dsml),
            ("<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"a\" string=\"true\">1</｜DSML｜parameter>\n<｜DSML｜parameter name=\"a\" string=\"true\">2</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>", .dsml),
            ("<｜DSML｜tool_calls>\n</｜DSML｜tool_calls>", .dsml),
            ("<｜DSML｜invoke name=\"f\">\n</｜DSML｜invoke>", .dsml),
            ("<｜DSML｜tool_calls><｜DSML｜tool_calls><｜DSML｜tool_calls>", .dsml),
            ("text <｜DSML｜", .dsml), ("<｜tool▁call", .deepseek), ("<｜tool▁calls▁begin｜>", .deepseek),
        ]
        for (text, format) in broken {
            let (calls, content) = ToolCallParser.parse(text, format: format)
            XCTAssertEqual(calls, [], text.debugDescription)
            XCTAssertEqual(content, text, text.debugDescription)
            var p = ToolCallParser(format: format)
            let streamed = text.map { p.feed(String($0)) }.joined() + p.finish()
            XCTAssertEqual(p.calls, [], text.debugDescription)
            XCTAssertEqual(streamed, text, text.debugDescription)
        }
    }

    func testCompleteCallsWithoutClosingMarkerAreKept() {
        let noEnd = String(v31.dropLast("<｜tool▁calls▁end｜>".count))
        XCTAssertEqual(ToolCallParser.parse(noEnd, format: .deepseek).0.count, 2)
        let dsmlNoEnd = String(dsml.dropLast("</｜DSML｜tool_calls>".count))
        XCTAssertEqual(ToolCallParser.parse(dsmlNoEnd, format: .dsml).0.count, 2)
    }
}

import Foundation
import XCTest
@testable import Tiefsee
@testable import TiefseeServer

/// Deterministic models that answer every request with a DeepSeek tool call: the successor
/// model of ReasoningFixture, wired so that `<think>` → reasoning → `</think>` → call → EOS.
/// A prompt in chat mode ends in `</think>` (a call, no reasoning); in thinking mode it ends in
/// `<think>` (reasoning, then the call). The test tokenizer gets the call markup as added
/// tokens so that every token of the chain is distinct.
enum DeepSeekToolFixture {
    static let reasoning = "Ask the tool."
    static let arguments = #"{"q":7}"#  // tokens distinct under the test tokenizer
    /// DeepSeek-V3.1's format, with its official template.
    static var v31Call: String {
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>\(arguments)<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
    }
    /// DeepSeek-V4's DSML, as its encoder writes calls.
    static let dsmlPieces = ["\n\n<｜DSML｜tool_calls>\n", "<｜DSML｜invoke name=\"", "\">\n", "<｜DSML｜parameter name=\"",
                             "\" string=\"false\">", "</｜DSML｜parameter>\n", "</｜DSML｜invoke>\n", "</｜DSML｜tool_calls>"]
    static var dsmlCall: String {
        let p = dsmlPieces
        return p[0] + p[1] + "get_weather" + p[2] + p[3] + "q" + p[4] + "7" + p[5] + p[6] + p[7]
    }

    static func make(_ name: String, template: String?, addedTokens: [String], call: String) throws -> String {
        let dir = NSTemporaryDirectory() + "tiefsee-\(name)-fixture-\(getpid())"
        if FileManager.default.fileExists(atPath: dir + "/model.safetensors") { return dir }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tokJSON = try JSONValue.parse(contentsOf: fixturePath("tokenizer/deepseek-v3-style/tokenizer.json"))
        var added = tokJSON["added_tokens"]?.array ?? []
        for (i, t) in addedTokens.enumerated() {
            added.append(.object([("id", .int(4009 + i)), ("content", .string(t)), ("single_word", .bool(false)), ("lstrip", .bool(false)),
                                  ("rstrip", .bool(false)), ("normalized", .bool(false)), ("special", .bool(false))]))
        }
        try Py.setting(tokJSON, "added_tokens", .array(added)).serialized().write(toFile: dir + "/tokenizer.json", atomically: true, encoding: .utf8)
        var tc: [(String, JSONValue)] = [("bos_token", .string("<｜begin▁of▁sentence｜>")), ("eos_token", .string("<｜end▁of▁sentence｜>")),
                                         ("add_bos_token", .bool(false))]
        if let template { tc.append(("chat_template", .string(template))) }
        try JSONValue.object(tc).serialized().write(toFile: dir + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        let tok = try Tokenizer.load(modelFolder: dir)
        let chain = [tok.id(of: "<think>")!] + tok.encode(reasoning + "</think>" + call, parseSpecial: true) + [tok.id(of: "<｜end▁of▁sentence｜>")!]
        try ReasoningFixture.writeSuccessorModel(dir: dir, tokenizer: tok, chain: chain)
        return dir
    }

    static func v31() throws -> String {
        try make("ds31", template: try String(contentsOfFile: fixturePath("templates/deepseek-v3.1.jinja"), encoding: .utf8),
                 addedTokens: ["<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁calls▁end｜>"], call: v31Call)
    }

    static func v4() throws -> String { try make("ds4", template: nil, addedTokens: dsmlPieces, call: dsmlCall) }
}

final class DeepSeekServerTests: XCTestCase {
    static let tools = #"[{"type":"function","function":{"name":"get_weather","description":"Weather in a city","parameters":{"type":"object","properties":{"q":{"type":"integer"}},"required":["q"]}}}]"#

    func startServer(v4: Bool = false) throws -> OpenAIServer {
        let engine = v4 ? try Engine.load(try DeepSeekToolFixture.v4(), options: EngineOptions(chatEncoding: .v4))
                        : try Engine.load(try DeepSeekToolFixture.v31())
        var cfg = TestServers.baseConfig
        cfg.parallel = 2
        cfg.contextSize = 1024
        return try OpenAIServer(engine: engine, config: cfg)
    }

    func testV31ToolCallsWholeAndStreamed() throws {
        let server = try startServer()
        defer { server.stop() }
        XCTAssertEqual(server.toolCallFormat, .deepseek)
        XCTAssertTrue(server.supportsTools, "V3.1's template does not read `tools`; the server describes them in the system prompt")
        try checkToolCalls(server, plainText: DeepSeekToolFixture.v31Call)
    }

    /// V4 (encoder forced on the fixture): DSML calls, thinking via chat_template_kwargs.
    func testV4EncoderAndDSMLToolCalls() throws {
        let server = try startServer(v4: true)
        defer { server.stop() }
        XCTAssertEqual(server.toolCallFormat, .dsml)
        XCTAssertTrue(server.splitsReasoning && server.supportsTools)
        try checkToolCalls(server, plainText: DeepSeekToolFixture.dsmlCall, arguments: #"{"q": 7}"#)
    }

    func checkToolCalls(_ server: OpenAIServer, plainText: String, arguments: String = DeepSeekToolFixture.arguments) throws {
        for thinking in [false, true] {
            let kwargs = thinking ? #","chat_template_kwargs":{"thinking":true}"# : ""
            let body = #"{"messages":[{"role":"user","content":"Weather in 7 days?"}],"max_tokens":60,"tools":\#(Self.tools)\#(kwargs)}"#
            let r = try XCTUnwrap(RawHTTP.post(port: server.port, "/v1/chat/completions", body))
            XCTAssertEqual(r.status, 200, r.body)
            let choice = try XCTUnwrap(r.json?["choices"]?[0])
            XCTAssertEqual(choice["finish_reason"]?.string, "tool_calls", r.body)
            let msg = try XCTUnwrap(choice["message"])
            XCTAssertEqual(msg["content"], .null, r.body)
            XCTAssertEqual(msg["tool_calls"]?[0]?["function"]?["name"]?.string, "get_weather")
            XCTAssertEqual(msg["tool_calls"]?[0]?["function"]?["arguments"]?.string, arguments)
            XCTAssertEqual(msg["reasoning_content"]?.string, thinking ? DeepSeekToolFixture.reasoning : "", r.body)

            let st = try XCTUnwrap(RawHTTP.post(port: server.port, "/v1/chat/completions", String(body.dropLast()) + #","stream":true}"#))
            XCTAssertEqual(st.status, 200)
            var calls: [JSONValue] = []
            var reasoning = ""
            for line in st.body.components(separatedBy: "\n") where line.hasPrefix("data: {") {
                let delta = try JSONValue.parse(String(line.dropFirst(6)))["choices"]?[0]?["delta"]
                calls += delta?["tool_calls"]?.array ?? []
                reasoning += delta?["reasoning_content"]?.string ?? ""
            }
            let text = RawHTTP.chatStreamText(st.body)
            XCTAssertEqual(text.content, "", "no tool-call markup leaks into streamed content")
            XCTAssertEqual(text.finish, "tool_calls")
            XCTAssertEqual(reasoning, thinking ? DeepSeekToolFixture.reasoning : "")
            XCTAssertEqual(calls.count, 1)
            XCTAssertEqual(calls.first?["function"]?["arguments"]?.string, arguments)
        }
        // tool_choice naming the function: the call's start is put after the prompt.
        let forced = #"{"messages":[{"role":"user","content":"Weather in 7 days?"}],"max_tokens":60,"tools":\#(Self.tools),"tool_choice":{"type":"function","function":{"name":"get_weather"}}}"#
        let f = try XCTUnwrap(RawHTTP.post(port: server.port, "/v1/chat/completions", forced))
        XCTAssertEqual(f.json?["choices"]?[0]?["message"]?["tool_calls"]?[0]?["function"]?["arguments"]?.string, arguments, f.body)
        XCTAssertLessThan(f.json?["usage"]?["completion_tokens"]?.int ?? 99, 10, "the forced prefix is not generated again")
        // Without tools in the request the same text is plain content.
        let plain = try XCTUnwrap(RawHTTP.post(port: server.port, "/v1/chat/completions",
                                               #"{"messages":[{"role":"user","content":"hi"}],"max_tokens":60}"#))
        XCTAssertEqual(plain.json?["choices"]?[0]?["message"]?["content"]?.string, plainText)
    }

    /// The official `openai` package reads the calls (whole and streamed) and the reasoning.
    func testOpenAIClientReadsDeepSeekToolCalls() throws {
        try TestServers.requirePythonOpenAI()
        for v4 in [false, true] {
            let server = try startServer(v4: v4)
            defer { server.stop() }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["python3", repoRoot + "/scripts/test_openai_deepseek_tools.py", "--base-url", "http://127.0.0.1:\(server.port)/v1",
                           "--model", server.modelID, "--reasoning", DeepSeekToolFixture.reasoning]
            let pipe = Pipe()
            p.standardOutput = pipe
            p.standardError = pipe
            try p.run()
            let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            print(out)
            XCTAssertEqual(p.terminationStatus, 0, "openai client checks failed (\(v4 ? "V4" : "V3.1")):\n\(out)")
        }
    }

    /// `/v1/messages` (Anthropic) shares the plan: DeepSeek calls come back as tool_use blocks,
    /// the reasoning as a thinking block, and a tool_use/tool_result history renders.
    func testAnthropicMessagesWithDeepSeekFormats() throws {
        for v4 in [false, true] {
            let server = try startServer(v4: v4)
            defer { server.stop() }
            let tools = #"[{"name":"get_weather","description":"Weather in a city","input_schema":{"type":"object","properties":{"q":{"type":"integer"}}}}]"#
            let body = #"{"max_tokens":60,"thinking":{"type":"enabled","budget_tokens":1024},"tools":\#(tools),"messages":[{"role":"user","content":"Weather in 7 days?"}]}"#
            let r = try XCTUnwrap(RawHTTP.post(port: server.port, "/v1/messages", body))
            XCTAssertEqual(r.status, 200, r.body)
            let blocks = r.json?["content"]?.array ?? []
            XCTAssertEqual(r.json?["stop_reason"]?.string, "tool_use", r.body)
            XCTAssertEqual(blocks.first { $0["type"]?.string == "thinking" }?["thinking"]?.string, DeepSeekToolFixture.reasoning, r.body)
            let use = blocks.first { $0["type"]?.string == "tool_use" }
            XCTAssertEqual(use?["name"]?.string, "get_weather")
            XCTAssertEqual(use?["input"]?["q"]?.int, 7, r.body)
            let history = #"[{"role":"user","content":"Weather in 7 days?"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"q":7}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"}]}]"#
            let back = try XCTUnwrap(RawHTTP.post(port: server.port, "/v1/messages", #"{"max_tokens":1,"tools":\#(tools),"messages":\#(history)}"#))
            XCTAssertEqual(back.status, 200, back.body)
        }
    }

    /// A client sends the call back (OpenAI shape: content null, arguments as JSON text) with
    /// the tool's result: V3.1's template concatenates the arguments, so they stay text.
    func testToolRoundTripRequestRenders() throws {
        let server = try startServer()
        defer { server.stop() }
        let history = #"[{"role":"user","content":"Weather in 7 days?"},{"role":"assistant","content":null,"reasoning_content":"Look up Paris.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"18C"}]"#
        let r = try XCTUnwrap(RawHTTP.post(port: server.port, "/v1/chat/completions",
                                           #"{"messages":\#(history),"max_tokens":1,"tools":\#(Self.tools)}"#))
        XCTAssertEqual(r.status, 200, r.body)
        let bad = try XCTUnwrap(RawHTTP.post(port: server.port, "/v1/chat/completions",
                                             #"{"messages":[{"role":"user","content":"x"}],"chat_template_kwargs":[1]}"#))
        XCTAssertEqual(bad.status, 400)
        let effort = try XCTUnwrap(RawHTTP.post(port: server.port, "/v1/chat/completions",
                                                #"{"messages":[{"role":"user","content":"x"}],"reasoning_effort":"extreme"}"#))
        XCTAssertEqual(effort.status, 400)
    }

    func testServerHelpers() throws {
        let v31 = try String(contentsOfFile: fixturePath("templates/deepseek-v3.1.jinja"), encoding: .utf8)
        let r1 = try String(contentsOfFile: fixturePath("templates/deepseek-r1.jinja"), encoding: .utf8)
        let qwen = try String(contentsOfFile: fixturePath("templates/qwen2.5.jinja"), encoding: .utf8)
        XCTAssertTrue(ChatTemplate.wantsArgumentText(v31))
        XCTAssertTrue(ChatTemplate.wantsArgumentText(r1))
        XCTAssertFalse(ChatTemplate.wantsArgumentText(qwen))
        XCTAssertTrue(DeepSeekToolPrompt.needed(templateSource: v31))
        XCTAssertFalse(DeepSeekToolPrompt.needed(templateSource: qwen))
        XCTAssertTrue(DeepSeekToolPrompt.isV31(v31))
        XCTAssertFalse(DeepSeekToolPrompt.isV31(r1))
        let tools = try XCTUnwrap(JSONValue.parse(Self.tools).array)
        let msgs = DeepSeekToolPrompt.inject(tools, into: [.object([("role", .string("system")), ("content", .string("Be brief."))])], templateSource: v31)
        let sys = try XCTUnwrap(msgs[0]["content"]?.string)
        XCTAssertTrue(sys.hasPrefix("Be brief.\n\n## Tools\nYou have access to the following tools:\n\n### get_weather\nDescription: Weather in a city\n\nParameters: {\"type\": \"object\""), sys)
        XCTAssertTrue(sys.contains("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>tool_call_name<｜tool▁sep｜>tool_call_arguments<｜tool▁call▁end｜>{{additional_tool_calls}}<｜tool▁calls▁end｜>"))
        let t = try ChatTemplate(source: v31)
        // With the null content filled, the official template renders the OpenAI-shaped call.
        let call: JSONValue = .object([("role", .string("assistant")), ("content", .null), ("tool_calls", .array([.object([
            ("type", .string("function")), ("function", .object([("name", .string("f")), ("arguments", .string("{\"a\": 1}"))]))])]))])
        let user: JSONValue = .object([("role", .string("user")), ("content", .string("u"))])
        XCTAssertThrowsError(try t.render(messages: [user, call], addGenerationPrompt: false))
        XCTAssertEqual(try t.render(messages: DeepSeekToolPrompt.preparingCalls([user, call], argumentText: true), addGenerationPrompt: false),
                       "<｜User｜>u<｜Assistant｜></think><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{\"a\": 1}<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>")
    }
}

/// Runs the `tiefsee` executable built next to the tests.
func runTiefsee(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
    let r = try runTiefseeCLI(args)
    return (r.status, r.stdout, r.stderr)
}

/// `tiefsee run --think on|off` reaches the template's `thinking` switch.
final class DeepSeekThinkCLITests: XCTestCase {
    func tiefsee(_ args: [String]) throws -> (status: Int32, out: String, err: String) { try runTiefsee(args) }

    func testThinkSwitch() throws {
        let dir = try DeepSeekToolFixture.v31()
        let base = ["run", dir, "-p", "Weather?", "--temp", "0", "-n", "40", "--no-color"]
        let on = try tiefsee(base + ["--think", "on"])
        XCTAssertEqual(on.status, 0, on.err)
        XCTAssertTrue(on.out.contains(DeepSeekToolFixture.reasoning) && on.out.contains(DeepSeekToolFixture.v31Call), on.out)
        let hidden = try tiefsee(base + ["--think", "on", "--hide-thinking"])
        XCTAssertFalse(hidden.out.contains(DeepSeekToolFixture.reasoning), hidden.out)
        XCTAssertTrue(hidden.out.contains(DeepSeekToolFixture.v31Call), hidden.out)
        for off in [try tiefsee(base + ["--think", "off"]), try tiefsee(base)] {  // V3.1's default is off
            XCTAssertEqual(off.status, 0, off.err)
            XCTAssertFalse(off.out.contains(DeepSeekToolFixture.reasoning), off.out)
            XCTAssertTrue(off.out.contains(DeepSeekToolFixture.v31Call), off.out)
        }
        let bad = try tiefsee(base + ["--think", "maybe"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("--think expects one of on, off"), bad.err)
    }
}

/// The encoder is chosen from a GGUF's architecture, over any template it carries.
final class DeepSeekEncoderSelectionTests: XCTestCase {
    func testGGUFArchitectureSelectsEncoder() throws {
        let dir = NSTemporaryDirectory() + "tiefsee-ds-arch-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let messages = dir + "/m.json"
        try #"[{"role":"system","content":"S"},{"role":"user","content":"hi"}]"#.write(toFile: messages, atomically: true, encoding: .utf8)
        for (arch, want) in [("deepseek32", DeepSeekEncoding.v32), ("deepseek4", .v4)] {
            var w = GGUFWriter()
            w.set("general.architecture", .string(arch))
            w.set("tokenizer.chat_template", .string("{{ 'a Jinja template, not used' }}"))
            w.add("dummy", shape: [1], f32: [0])
            let path = dir + "/\(arch).gguf"
            try w.write(to: path)
            let files = try ModelFiles.open(.gguf(path))
            XCTAssertEqual(DeepSeekEncoding.forArchitecture(files.architectureName), want)
            let r = try runTiefsee(["template", path, "--messages", messages, "--var", "thinking=true"])
            XCTAssertEqual(r.status, 0, r.err)
            XCTAssertEqual(r.out, "<｜begin▁of▁sentence｜>S<｜User｜>hi<｜Assistant｜><think>")
        }
    }
}

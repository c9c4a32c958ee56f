import Foundation
import XCTest
@testable import Tiefsee

final class TemplateTests: XCTestCase {
    // MARK: parity with transformers' apply_chat_template

    func testChatTemplateParityWithTransformers() throws {
        let doc = try JSONValue.parse(contentsOf: fixturePath("templates/expected.json"))
        let cases = try XCTUnwrap(doc["cases"]?.array)
        XCTAssertGreaterThanOrEqual(cases.count, 30)
        var templates: [String: ChatTemplate] = [:]
        var perTemplate: [String: Int] = [:]
        for c in cases {
            let name = try XCTUnwrap(c["template"]?.string)
            let label = "\(name)/\(c["case"]?.string ?? "?")"
            if templates[name] == nil {
                let src = try String(contentsOfFile: fixturePath("templates/\(name).jinja"), encoding: .utf8)
                templates[name] = try ChatTemplate(source: src)
            }
            let tpl = templates[name]!
            var extra: [String: JSONValue] = [:]
            for (k, v) in c["extra"]?.object ?? [] { extra[k] = v }
            let tools = c["tools"].flatMap { $0.isNull ? nil : $0.array }
            do {
                let got = try tpl.render(
                    messages: try XCTUnwrap(c["messages"]?.array), tools: tools,
                    addGenerationPrompt: c["add_generation_prompt"]?.bool ?? false,
                    bosToken: c["bos_token"]?.string ?? "", eosToken: c["eos_token"]?.string ?? "", extra: extra)
                if c["error"]?.bool == true {
                    XCTFail("\(label): transformers raised \(c["error_message"]?.string ?? "") but we rendered \(got.debugDescription)")
                } else {
                    let want = try XCTUnwrap(c["expected"]?.string)
                    XCTAssertEqual(Array(got.utf8), Array(want.utf8), "\(label):\n got: \(got.debugDescription)\nwant: \(want.debugDescription)")
                    perTemplate[name, default: 0] += 1
                }
            } catch let e as TemplateError {
                if c["error"]?.bool != true { XCTFail("\(label): unexpected error \(e)") }
                if case .raised = e.kind, let m = c["error_message"]?.string {
                    XCTAssertTrue(m.hasSuffix(e.message), "\(label): \(e.message) vs \(m)")
                }
            }
        }
        for t in ["qwen2.5", "qwen3", "deepseek-r1", "deepseek-v3", "deepseek-v3.1", "llama3.1", "mixtral"] {
            XCTAssertGreaterThanOrEqual(perTemplate[t] ?? 0, 5, "\(t) has too few byte-identical renders")
        }
    }

    func testQwenTemplateFromGGUFMatchesFixture() throws {
        let path = try requireDefaultModel()
        let gguf = try GGUFFile(path: path)
        let src = try XCTUnwrap(gguf["tokenizer.chat_template"]?.string)
        let fixture = try String(contentsOfFile: fixturePath("templates/qwen2.5.jinja"), encoding: .utf8)
        XCTAssertEqual(src, fixture)
        let t = try XCTUnwrap(try ChatTemplate(gguf: gguf))
        let special = ChatTemplate.specialTokens(gguf: gguf)
        XCTAssertEqual(special.bos, "<|endoftext|>")
        XCTAssertEqual(special.eos, "<|im_end|>")
        let out = try t.render(messages: [.object([("role", .string("user")), ("content", .string("hi"))])], addGenerationPrompt: true,
                               bosToken: special.bos, eosToken: special.eos)
        XCTAssertEqual(out, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    }

    func testRendersBOS() throws {
        let bos = "<｜begin▁of▁sentence｜>"
        let src = try String(contentsOfFile: fixturePath("templates/deepseek-r1.jinja"), encoding: .utf8)
        let t = try ChatTemplate(source: src)
        let p = try t.render(messages: [.object([("role", .string("user")), ("content", .string("x"))])], addGenerationPrompt: true, bosToken: bos)
        XCTAssertTrue(ChatTemplate.rendersBOS(p, bosToken: bos))
        XCTAssertTrue(t.mentionsBOSToken)
        XCTAssertFalse(ChatTemplate.rendersBOS("<|im_start|>user", bosToken: "<|endoftext|>"))
        XCTAssertFalse(ChatTemplate.rendersBOS("abc", bosToken: ""))
    }

    // MARK: interpreter unit tests

    private func r(_ src: String, _ vars: [String: JSONValue] = [:]) throws -> String {
        try JinjaTemplate(source: src).render(vars)
    }

    private func assertError(_ src: String, _ vars: [String: JSONValue] = [:], line: Int, contains: String,
                             file: StaticString = #filePath, lineNo: UInt = #line) {
        do {
            let out = try r(src, vars)
            XCTFail("expected an error, rendered \(out.debugDescription)", file: file, line: lineNo)
        } catch let e as TemplateError {
            XCTAssertEqual(e.line, line, "\(e)", file: file, line: lineNo)
            XCTAssertTrue(e.description.contains("line \(line)"), e.description, file: file, line: lineNo)
            XCTAssertTrue(e.description.contains(contains), e.description, file: file, line: lineNo)
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: lineNo)
        }
    }

    func testWhitespaceControl() throws {
        // trim_blocks: newline after a block tag is dropped; lstrip_blocks: indentation before it.
        XCTAssertEqual(try r("{% if true %}\n  yes\n{% endif %}\nafter"), "  yes\nafter")
        XCTAssertEqual(try r("a\n    {% if true %}\nb\n    {% endif %}\nc"), "a\nb\nc")
        XCTAssertEqual(try r("a  {{- 'x' -}}  \n b"), "axb")
        XCTAssertEqual(try r("a\n{%- if true -%}\n  b  \n{%- endif %}"), "ab")
        XCTAssertEqual(try r("x {% if true %}y{% endif %}"), "x y")  // not at line start: kept
        XCTAssertEqual(try r("{{ 'a' }}\n{{ 'b' }}"), "a\nb")  // trim_blocks does not apply to {{ }}
        XCTAssertEqual(try r("a\n  {#- c -#}\n  b"), "ab")
        XCTAssertEqual(try r("a\n  {# c #}\nb"), "a\nb")
        XCTAssertEqual(try r("  {%+ if true %}x{% endif %}"), "  x")
        XCTAssertEqual(try r("{% if true +%}\nx{% endif %}"), "\nx")
        XCTAssertEqual(try r("line\n"), "line")  // keep_trailing_newline=False
        XCTAssertEqual(try r("a\r\nb"), "a\nb")
        XCTAssertEqual(try r("{% raw %}{{ not evaluated }}{% endraw %}"), "{{ not evaluated }}")
    }

    func testLoops() throws {
        let src = "{% for x in xs %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.length }}:{{ x }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %};{% endfor %}"
        XCTAssertEqual(try r(src, ["xs": .array([.string("a"), .string("b"), .string("c")])]), "1/0/3/3:aF;2/1/2/3:b;3/2/1/3:cL;")
        XCTAssertEqual(try r("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty")
        XCTAssertEqual(try r("{% for x in [1,2,3,4,5,6] if x is even %}{{ x }}{{ loop.length }} {% endfor %}"), "23 43 63 ")
        XCTAssertEqual(try r("{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}", ["d": .object([("b", .int(1)), ("a", .int(2))])]), "b=1,a=2,")
        XCTAssertEqual(try r("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"), "0134")
        XCTAssertEqual(try r("{% for x in 'ab' %}[{{ loop.previtem }}|{{ loop.nextitem }}]{% endfor %}"), "[|b][a|]")
        XCTAssertEqual(try r("{% for x in [1,2,3] %}{{ loop.cycle('o', 'e') }}{% endfor %}"), "oeo")
        // Assignments inside a loop do not leak out; namespaces do.
        XCTAssertEqual(try r("{% set y = 5 %}{% for x in [1,2] %}{% set y = x %}{% endfor %}{{ y }}"), "5")
        XCTAssertEqual(try r("{% set ns = namespace(n=0) %}{% for x in [1,2,3] %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}"), "6")
        XCTAssertEqual(try r("{% for a in [[1,2],[3]] %}{% for b in a %}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}"), "121;11;2;".replacingOccurrences(of: "11;2;", with: "12;"))
    }

    func testSetAndMacros() throws {
        XCTAssertEqual(try r("{% set x %}  block {{ 1 + 1 }}{% endset %}[{{ x }}]"), "[  block 2]")
        XCTAssertEqual(try r("{% set x | trim | upper %}  hi  {% endset %}[{{ x }}]"), "[HI]")
        XCTAssertEqual(try r("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12")
        XCTAssertEqual(try r("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }}"), "Hi Bob! Hi Al?")
        XCTAssertEqual(try r("{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inner{% endcall %}"), "<inner>")
        XCTAssertEqual(try r("{% filter upper %}abc{% endfilter %}"), "ABC")
        XCTAssertEqual(try r("{% generation %}gen{% endgeneration %}"), "gen")
        XCTAssertEqual(try r("{% with a = 3 %}{{ a }}{% endwith %}{{ a is defined }}"), "3False")
        XCTAssertEqual(try r("{% set l = [] %}{% set _ = l.append(1) %}{{ l }}"), "[1]")
    }

    func testExpressions() throws {
        XCTAssertEqual(try r("{{ 1/2 }} {{ 7//2 }} {{ -7//2 }} {{ -7%3 }} {{ 2**10 }} {{ 1e20 }} {{ 0.1+0.2 }} {{ 3.0 }}"),
                       "0.5 3 -4 2 1024 1e+20 0.30000000000000004 3.0")
        XCTAssertEqual(try r("{{ 'abc'[::-1] }} {{ 'abc'[1:] }} {{ [1,2,3][-1] }} {{ [1,2,3,4][1:3] }}"), "cba bc 3 [2, 3]")
        XCTAssertEqual(try r("{{ [1,'a',none,true,1.5,{'k':\"v'\"}] }}"), "[1, 'a', None, True, 1.5, {'k': \"v'\"}]")
        XCTAssertEqual(try r("{{ 'a' ~ 1 ~ none ~ undefined_var }}"), "a1None")
        XCTAssertEqual(try r("{{ 'yes' if x else 'no' }} {{ 'b' in 'abc' }} {{ 3 not in [1,2] }} {{ 1 < 2 < 3 }}"), "no True True True")
        XCTAssertEqual(try r("{{ x is defined }} {{ x is none }} {{ none is none }} {{ 1 is number }} {{ 'a' is string }} {{ {} is mapping }} {{ 'a' is iterable }} {{ 2 is not none }}"),
                       "False False True True True True True True")
        XCTAssertEqual(try r("{{ true and 'x' }} {{ false or 0 or 'z' }} {{ not none }}"), "x z True")
        XCTAssertEqual(try r("{{ d.a }} {{ d['b'] }} {{ d.missing }}|{{ d.get('b') }} {{ d.get('q', 7) }}", ["d": .object([("a", .int(1)), ("b", .string("two"))])]), "1 two |two 7")
        XCTAssertEqual(try r("{{ '\\n'|length }} {{ 'é\\u00e9\\x41\\t' }}"), "1 ééA\t")
        XCTAssertEqual(try r("{{ ('a', 'b') }} {{ (1,) }} {{ 'x' * 3 }} {{ [0] * 2 }}"), "('a', 'b') (1,) xxx [0, 0]")
        XCTAssertEqual(try r("{{ 'a-b-c'.split('-') }} {{ ' a  b '.split() }} {{ 'a b c'.rsplit(' ', 1) }} {{ '<b>'.startswith(('<', 'x')) }}"),
                       "['a', 'b', 'c'] ['a', 'b'] ['a b', 'c'] True")
        XCTAssertEqual(try r("{{ '  x '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ 'Hello'.replace('l', 'L') }}|{{ 'ab'.upper() }}|{{ 'hello world'.title() }}|{{ 'abc'.find('c') }}"),
                       "x|hi|HeLLo|AB|Hello World|2")
        XCTAssertEqual(try r("{{ '{} and {name}'.format(1, name='n') }} {{ '%s=%d' % ('a', 3) }}"), "1 and n a=3")
        XCTAssertEqual(try r("{{ strftime_now('%Y') | length }}"), "4")
    }

    func testFilters() throws {
        XCTAssertEqual(try r("{{ '  x  ' | trim }}|{{ 3.7 | int }}|{{ '4.5' | int }}|{{ 2.5 | round }}|{{ 3.14159 | round(2) }}|{{ -3 | abs }}|{{ '1.5' | float }}"), "x|3|4|2.0|3.14|3|1.5")
        XCTAssertEqual(try r("{{ [3,1,2] | sort | list }} {{ {'b':1,'a':2} | dictsort }} {{ {'b':1} | items | list }} {{ [1,2] | reverse | list }}"),
                       "[1, 2, 3] [('a', 2), ('b', 1)] [('b', 1)] [2, 1]")
        XCTAssertEqual(try r("{{ ['a','b'] | join(', ') }} {{ 'hello world' | title }} {{ 'hELLO' | capitalize }} {{ 'Ab' | upper }}{{ 'Ab' | lower }}"), "a, b Hello World Hello ABab")
        XCTAssertEqual(try r("{{ x | default('dflt') }} {{ '' | default('e', true) }} {{ x | d('d') }} {{ [1,2,3] | first }}{{ [1,2,3] | last }} {{ 'abc' | length }} {{ [1,2] | count }}"), "dflt e d 13 3 2")
        let users: JSONValue = .array([.object([("name", .string("b")), ("on", .bool(true))]), .object([("name", .string("a")), ("on", .bool(false))])])
        XCTAssertEqual(try r("{{ users | map(attribute='name') | join }} {{ users | selectattr('on') | map(attribute='name') | list }} {{ users | rejectattr('on') | list | length }} {{ users | sort(attribute='name') | map(attribute='name') | join }}", ["users": users]), "ba ['b'] 1 ab")
        XCTAssertEqual(try r("{{ [1,2,3,4] | select('odd') | list }} {{ [1,2,3,4] | reject('odd') | list }} {{ ['a','A','b'] | unique | list }} {{ ['x','y'] | map('upper') | list }}"), "[1, 3] [2, 4] ['a', 'b'] ['X', 'Y']")
        XCTAssertEqual(try r("{{ 'a\\nb' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}"), "a\n  b|  a\n  b")
        XCTAssertEqual(try r("{{ 5 | string }}{{ 'x' | safe }} {{ 'one two three' | wordcount }} {{ [1,2,3] | batch(2) | list }} {{ [1,2,3] | sum }}"), "5x 3 [[1, 2], [3]] 6")
    }

    func testToJSONMatchesPythonJSONDumps() throws {
        let v: JSONValue = .object([("name", .string("Zürich \"q\"")), ("n", .array([.int(1), .double(2.5), .null, .bool(true)])), ("e", .object([]))])
        XCTAssertEqual(try r("{{ v | tojson }}", ["v": v]), "{\"name\": \"Zürich \\\"q\\\"\", \"n\": [1, 2.5, null, true], \"e\": {}}")
        XCTAssertEqual(try r("{{ v | tojson(indent=2) }}", ["v": .object([("a", .array([.int(1)]))])]), "{\n  \"a\": [\n    1\n  ]\n}")
        XCTAssertEqual(try r("{{ v | tojson(ensure_ascii=true) }}", ["v": .string("é😀")]), "\"\\u00e9\\ud83d\\ude00\"")
        XCTAssertEqual(try r("{{ v | tojson(separators=(',', ':'), sort_keys=true) }}", ["v": .object([("b", .int(1)), ("a", .int(2))])]), "{\"a\":2,\"b\":1}")
        XCTAssertEqual(try r("{{ 'x<y>&' | tojson }}"), "\"x<y>&\"")  // no HTML escaping (transformers overrides tojson)
    }

    func testErrorsNameTheLine() throws {
        assertError("line one\n{% if x %}\nunterminated", line: 3, contains: "unexpected end of template")
        assertError("a\nb\n{{ 1 + }}", line: 3, contains: "unexpected")
        assertError("{% for x in y %}\n{% endif %}", line: 2, contains: "endif")
        assertError("ok\n{% frobnicate %}", line: 2, contains: "unknown tag 'frobnicate'")
        assertError("{{ 'unterminated }}", line: 1, contains: "unterminated string")
        assertError("x\n\n{{ 'a' + 1 }}", line: 3, contains: "can only concatenate str")
        assertError("x\n{{ foo.bar }}", line: 2, contains: "'foo' is undefined")
        assertError("{% for m in ms %}\n  {{ m.content + '!' }}\n{% endfor %}", ["ms": .array([.object([("role", .string("u"))])])], line: 2, contains: "has no attribute 'content'")
        assertError("{{ x | nosuchfilter }}", line: 1, contains: "no filter named 'nosuchfilter'")
        assertError("{% break %}", line: 1, contains: "outside of a loop")
        assertError("{{ none.x.y }}", line: 1, contains: "no attribute 'x'")
    }

    func testRaiseException() throws {
        do {
            _ = try r("first\n{% if true %}\n  {{ raise_exception('Roles must alternate!') }}\n{% endif %}")
            XCTFail("expected raise_exception to throw")
        } catch let e as TemplateError {
            XCTAssertEqual(e.kind, .raised)
            XCTAssertEqual(e.message, "Roles must alternate!")
            XCTAssertEqual(e.line, 3)
            XCTAssertTrue(e.description.contains("Roles must alternate!"))
        }
    }

    func testChatContextMirrorsTransformers() throws {
        // None-valued message keys are dropped; tools is none (defined) when nil.
        let t = try ChatTemplate(source: "{{ messages[0] | tojson }}|{{ tools is defined }}{{ tools is none }}|{{ add_generation_prompt }}|{{ enable_thinking }}")
        let out = try t.render(messages: [.object([("role", .string("assistant")), ("content", .null), ("tool_calls", .array([]))])],
                               addGenerationPrompt: false, extra: ["enable_thinking": .bool(false)])
        XCTAssertEqual(out, "{\"role\": \"assistant\", \"tool_calls\": []}|TrueTrue|False|False")
        let t2 = try ChatTemplate(source: "{{ messages[0] | tojson }}")
        let out2 = try t2.render(messages: [.object([("role", .string("assistant")), ("content", .string("a")), ("reasoning_content", .string("r"))])], addGenerationPrompt: false)
        XCTAssertEqual(out2, "{\"thinking\": \"r\", \"role\": \"assistant\", \"content\": \"a\", \"reasoning_content\": \"r\"}")
    }
}

final class TemplateSnippetTests: XCTestCase {
    /// Small templates rendered by transformers' own Jinja environment (see
    /// scripts/gen_template_fixtures.py); each must render byte-identically or fail likewise.
    func testSnippetsMatchTransformersJinjaEnvironment() throws {
        let doc = try JSONValue.parse(contentsOf: fixturePath("templates/expected.json"))
        let snippets = try XCTUnwrap(doc["snippets"]?.array)
        XCTAssertGreaterThan(snippets.count, 50)
        for s in snippets {
            let src = try XCTUnwrap(s["source"]?.string)
            var ctx: [String: JSONValue] = [:]
            for (k, v) in s["context"]?.object ?? [] { ctx[k] = v }
            do {
                let got = try JinjaTemplate(source: src).render(ctx)
                if s["error"]?.bool == true {
                    XCTFail("\(src.debugDescription): transformers raised \(s["error_message"]?.string ?? "") but we rendered \(got.debugDescription)")
                } else {
                    let want = try XCTUnwrap(s["expected"]?.string)
                    XCTAssertEqual(got, want, "\(src.debugDescription)")
                }
            } catch let e as TemplateError {
                if s["error"]?.bool != true { XCTFail("\(src.debugDescription): unexpected error \(e)") }
            }
        }
    }
}

final class TemplateLimitTests: XCTestCase {
    func testHostileTemplatesFailCleanly() throws {
        let deepParens = "{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}"
        XCTAssertThrowsError(try JinjaTemplate(source: deepParens))
        let deepIfs = String(repeating: "{% if true %}", count: 5000) + String(repeating: "{% endif %}", count: 5000)
        XCTAssertThrowsError(try JinjaTemplate(source: deepIfs))
        XCTAssertThrowsError(try JinjaTemplate(source: "{{ " + String(repeating: "not ", count: 5000) + "x }}"))
        XCTAssertThrowsError(try JinjaTemplate(source: "{{ " + String(repeating: "-", count: 5000) + "1 }}"))
        let recursive = try JinjaTemplate(source: "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
        XCTAssertThrowsError(try recursive.render([:])) { e in
            XCTAssertTrue("\(e)".contains("recursion"), "\(e)")
        }
        XCTAssertThrowsError(try JinjaTemplate(source: "{{ range(10000000) | length }}").render([:]))
        // Moderate nesting still works.
        let ok = "{{ " + String(repeating: "(", count: 30) + "1" + String(repeating: ")", count: 30) + " }}"
        XCTAssertEqual(try JinjaTemplate(source: ok).render([:]), "1")
    }

    /// Rendering runs on its own large-stack thread, so deep (but allowed) nesting works even
    /// when the caller's thread has a small stack.
    func testDeepNestingFromSmallStackThread() throws {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result = ""
        let th = Thread {
            do {
                let t = try JinjaTemplate(source: "{% macro f(n) %}{% if n < 63 %}{{ f(n + 1) }}{% else %}deep{% endif %}{% endmacro %}{{ f(0) }}")
                result = try t.render([:])
                let nested = "{{ " + String(repeating: "(", count: 45) + "1" + String(repeating: ")", count: 45) + " }}"
                result += try JinjaTemplate(source: nested).render([:])
                let ifs = String(repeating: "{% if true %}", count: 90) + "x" + String(repeating: "{% endif %}", count: 90)
                result += try JinjaTemplate(source: ifs).render([:])
            } catch { result = "\(error)" }
            done.signal()
        }
        th.stackSize = 256 * 1024
        th.start()
        done.wait()
        XCTAssertEqual(result, "deep1x")
    }
}

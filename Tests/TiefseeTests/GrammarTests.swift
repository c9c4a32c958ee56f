import Foundation
import XCTest
@testable import Tiefsee

/// GBNF grammars, the byte-level matcher, token masks, and JSON Schema → grammar: every output
/// sampled under a schema's grammar (random logits over a small byte-level vocabulary, and the
/// default model) must validate against the schema (checked by SchemaValidator, a separate
/// implementation).
final class GrammarTests: XCTestCase {
    func matcher(_ gbnf: String) throws -> GrammarMatcher { GrammarMatcher(try Grammar(gbnf: gbnf)) }

    /// (accepted as a prefix, complete)
    func run(_ m: GrammarMatcher, _ text: String) -> (Bool, Bool) {
        let fresh = GrammarMatcher(m.grammar)
        guard fresh.accept(bytes: Array(text.utf8)) else { return (false, false) }
        return (true, fresh.canEnd)
    }

    func testArithmeticGrammar() throws {
        let m = try matcher("""
        # sums of products
        root ::= expr
        expr ::= term ( [-+] term )*
        term ::= num | "(" expr ")"
        num  ::= [0-9]+
        """)
        XCTAssertTrue(run(m, "1+(2-3)").1)
        XCTAssertTrue(run(m, "12").1)
        XCTAssertEqual(run(m, "1+").0, true); XCTAssertEqual(run(m, "1+").1, false)
        XCTAssertEqual(run(m, "(1").1, false)
        XCTAssertFalse(run(m, "1++").0)
        XCTAssertFalse(run(m, ")").0)
        XCTAssertFalse(run(m, "1+(2))").0)
    }

    func testRepetitionsAndContinuationLines() throws {
        let m = try matcher("root ::= \"a\"{2,4} \"b\"? [x-z]{,2}\n")
        for ok in ["aa", "aaa", "aaaa", "aab", "aaaabzz", "aaz"] { XCTAssertTrue(run(m, ok).1, ok) }
        XCTAssertEqual(run(m, "a").1, false)
        for bad in ["aaaaa", "aabb", "aazzz", "b"] { XCTAssertFalse(run(m, bad).0 && run(m, bad).1, bad) }
        let alt = try matcher("root ::= \"x\"\n     | \"y\" (\n  \"1\" |\n  \"2\"\n)\n")
        XCTAssertTrue(run(alt, "x").1)
        XCTAssertTrue(run(alt, "y2").1)
        XCTAssertFalse(run(alt, "y3").0)
        let exact = try matcher(#"root ::= [0-9]{3} "\x41" "\u00e9""#)
        XCTAssertTrue(run(exact, "123Aé").1)
        XCTAssertFalse(run(exact, "12A").0)
    }

    func testUTF8SplitAcrossTokens() throws {
        let m = try matcher("root ::= [à-ÿ]+ \"日\" [^a]\n")
        let bytes = Array("éü日😀".utf8)
        for b in bytes { XCTAssertTrue(m.accept(bytes: [b]), "byte \(b)") }   // one byte at a time
        XCTAssertTrue(m.canEnd)
        XCTAssertTrue(m.mustEnd)
        let m2 = try matcher("root ::= [à-ÿ]+\n")
        XCTAssertTrue(m2.allows(bytes: [0xC3]))          // lead byte of U+00C0…U+00FF
        XCTAssertFalse(m2.allows(bytes: [0xC4]))         // U+0100…: outside the class
        XCTAssertFalse(m2.allows(bytes: [0xC3, 0x41]))   // not a continuation byte
        XCTAssertFalse(m2.allows(bytes: [0xC0, 0xA9]))   // overlong encoding
        XCTAssertFalse(m2.allows(bytes: [0xA9]))         // continuation without a lead
    }

    func testGrammarErrors() {
        let cases: [(String, String)] = [
            ("root ::= a\n", "never defined"),
            ("root ::= root \"x\" | \"y\"\n", "left-recursive"),
            ("root ::= a\na ::= b? a \"x\"\nb ::= \"b\"\n", "left-recursive"),
            ("root = \"x\"\n", "::="),
            ("root ::= \"x\n", "unterminated"),
            ("root ::= [ab\n", "unterminated"),
            ("root ::= \"x\"{3,1}\n", "max below min"),
            ("root ::= \"x\"\nroot ::= \"y\"\n", "defined twice"),
            ("start ::= \"x\"\n", "no rule named root"),
            ("root ::= ( \"x\"\n", "expected )"),
        ]
        for (text, want) in cases {
            XCTAssertThrowsError(try Grammar(gbnf: text), text) { e in
                XCTAssertTrue("\(e)".contains(want), "\(text): \(e)")
            }
        }
    }

    // MARK: - A small byte-level vocabulary

    /// Every byte as a token (as byte-level BPE has), common JSON pieces, multi-byte characters
    /// whole, and an end token (the last id).
    static let vocab: [[UInt8]] = {
        var v: [[UInt8]] = (0..<256).map { [UInt8($0)] }
        let pieces = ["{\"", "\"}", "\":", "\": ", "\", \"", ",\"", ", ", "true", "false", "null", "12", "345", "-", "0.", ".5",
                      "\n  \"", "\n}", "\"name\"", "abc", "Hello", " world", "2024-", "01", "-12", "T12:", ":00", "Z\"", "}}",
                      "]}", "[{\"", "[\"", "\"]", "\\n", "\\u00e9", "\\\"", "é", "ü", "日本", "😀", "café", "[1", ", 2", "],",
                      "\"value\"", "\"children\"", "\": [", "\": {", "AB-", "123", "foo", "bar", "baz", "@example", ".com",
                      "192.168.", "1.1", "e5", "E-3", "  ", "\t", "\"steps\"", "\"explanation\"", "\"output\"", "\"final_answer\""]
        v += pieces.map { Array($0.utf8) }
        v.append([])   // end of generation
        return v
    }()
    static let eos = vocab.count - 1
    static let trie = TokenTrie(bytes: vocab, eog: [eos])

    func testTrieMaskEqualsOneCheckPerToken() throws {
        let g = try JSONSchemaGrammar.grammar(for: try JSONValue.parse(#"{"type":"object","properties":{"a":{"type":"string","pattern":"^[a-c]+é?$"},"b":{"type":"array","items":{"type":"integer"}}},"required":["a"]}"#))
        let c = GrammarConstraint(grammar: g, trie: GrammarTests.trie)
        // Walk one valid text, comparing the mask with per-token checks at every point.
        let text = Array(#"{"a": "abcé", "b": [1, -23]}"#.utf8)
        var checked = 0
        for (i, b) in text.enumerated() {
            let mask = c.allowedMask()
            for t in 0..<GrammarTests.vocab.count {
                let inMask = mask[t >> 6] & (1 << UInt64(t & 63)) != 0
                XCTAssertEqual(inMask, c.allows(t), "token \(t) after \(i) bytes")
                checked += 1
            }
            XCTAssertTrue(c.matcher.accept(bytes: [b]))
        }
        XCTAssertTrue(c.mustEnd)
        XCTAssertTrue(c.allows(GrammarTests.eos))
        XCTAssertGreaterThan(checked, 5000)
    }

    // MARK: - JSON Schema

    static let schemas: [String] = [
        #"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"],"additionalProperties":false}"#,
        #"{"type":"object","properties":{"person":{"type":"object","properties":{"name":{"type":"string","maxLength":12},"address":{"type":"object","properties":{"street":{"type":"string"},"zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["zip"],"additionalProperties":false}},"required":["name","address"],"additionalProperties":false}},"required":["person"],"additionalProperties":false}"#,
        #"{"type":"array","items":{"type":"string","maxLength":6},"minItems":2,"maxItems":4}"#,
        #"{"type":"string","enum":["red","green","blue"]}"#,
        #"{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"boolean"},"c":{"type":"null"}},"required":["b"],"additionalProperties":false}"#,
        #"{"type":"object","properties":{"x":{"type":"number"},"y":{"type":"number"}},"additionalProperties":false}"#,
        #"{"anyOf":[{"type":"integer"},{"type":"string","maxLength":5}]}"#,
        #"{"type":"string","format":"date"}"#,
        #"{"type":"string","format":"time"}"#,
        #"{"type":"string","format":"date-time"}"#,
        #"{"type":"string","format":"uuid"}"#,
        #"{"type":"string","format":"email"}"#,
        #"{"type":"string","format":"ipv4"}"#,
        #"{"type":"string","pattern":"^[A-Z]{2}-[0-9]{3,4}$"}"#,
        #"{"type":"string","pattern":"^(foo|bar)+baz?$"}"#,
        #"{"type":"integer","minimum":1,"maximum":100}"#,
        #"{"type":"integer","minimum":-50,"maximum":50}"#,
        #"{"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":1000}"#,
        #"{"type":"number","minimum":0,"maximum":10}"#,
        #"{"type":"number","minimum":-5,"maximum":5}"#,
        #"{"type":"array","items":{"type":"object","properties":{"id":{"type":"integer","minimum":0},"tags":{"type":"array","items":{"type":"string","enum":["a","b"]},"maxItems":2}},"required":["id","tags"],"additionalProperties":false},"maxItems":3}"#,
        #"{"type":"array","prefixItems":[{"type":"string"},{"type":"integer"},{"type":"boolean"}],"items":false}"#,
        ##"{"$defs":{"node":{"type":"object","properties":{"value":{"type":"integer"},"children":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":2}},"required":["value","children"],"additionalProperties":false}},"$ref":"#/$defs/node"}"##,
        #"{"allOf":[{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]},{"properties":{"b":{"type":"integer"}},"required":["b"]}]}"#,
        #"{"oneOf":[{"type":"string","maxLength":4},{"type":"integer"},{"type":"boolean"}]}"#,
        #"{"type":["string","null"],"maxLength":3}"#,
        #"{"const":{"a":[1,2],"b":"c"}}"#,
        #"{"type":"object","additionalProperties":{"type":"integer","minimum":0,"maximum":9}}"#,
        #"{"type":"string","minLength":3,"maxLength":8}"#,
        #"{"type":"boolean"}"#,
        #"{"type":"array","items":{"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3},"minItems":1,"maxItems":3}"#,
        #"{"enum":["café","日本","a\"b",3,null]}"#,
        #"{"type":"object","properties":{"we\"ird key":{"type":"string","maxLength":4},"ü":{"type":"integer"}},"required":["we\"ird key","ü"],"additionalProperties":false}"#,
        #"{}"#,
        #"{"type":"object","properties":{"steps":{"type":"array","items":{"type":"object","properties":{"explanation":{"type":"string","maxLength":20},"output":{"type":"string","maxLength":10}},"required":["explanation","output"],"additionalProperties":false},"maxItems":3},"final_answer":{"type":"string","maxLength":20}},"required":["steps","final_answer"],"additionalProperties":false}"#,
        ##"{"$defs":{"pt":{"type":"object","properties":{"x":{"type":"integer"},"y":{"type":"integer"}},"required":["x","y"],"additionalProperties":false}},"type":"object","properties":{"from":{"$ref":"#/$defs/pt"},"to":{"anyOf":[{"$ref":"#/$defs/pt"},{"type":"null"}]}},"required":["from","to"],"additionalProperties":false}"##,
        #"{"type":"object","properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":true}"#,
        #"{"type":"string","pattern":"^\\d{3}[.-]?[^a-z\\s]{2}\\w$"}"#,
    ]

    func testSchemasAcceptValidAndRejectInvalidTexts() throws {
        let cases: [(Int, [String], [String])] = [
            (0, [#"{"name": "Al", "age": 3}"#, "{\n  \"name\": \"x\",\n  \"age\": -0\n}"], [#"{"age": 3, "name": "Al"}"#, #"{"name": "Al"}"#, #"{"name": "Al", "age": 3.5}"#, #"{"name": "Al", "age": 3, "x": 1}"#]),
            (3, [#""red""#, #""blue""#], [#""pink""#, "red"]),
            (4, [#"{"b": true}"#, #"{"a": 1, "b": false, "c": null}"#, #"{"b": true, "c": null}"#], [#"{}"#, #"{"a": 1}"#, #"{"b": true, "a": 1}"#]),
            (5, [#"{}"#, #"{"y": 1e5}"#, #"{"x": -0.5, "y": 2}"#], [#"{"y": 1, "x": 2}"#, #"{,}"#]),
            (15, ["5", "1", "100", "42"], ["0", "101", "-1", "007", "1000"]),
            (16, ["-50", "0", "50", "-7"], ["-51", "51", "-0x"]),
            (19, ["5", "-5", "4.99", "-5.0", "0.25"], ["5.5", "-5.01", "6", "-6"]),
            (21, [#"["a", 1, true]"#], [#"["a", 1]"#, #"["a", 1, true, 2]"#, #"[1, 1, true]"#]),
            (22, [#"{"value": 1, "children": [{"value": 2, "children": []}]}"#], [#"{"value": 1}"#]),
            (27, [#"{}"#, #"{"a": 1, "zz": 9}"#], [#"{"a": 10}"#, #"{"a": -1}"#]),
            (31, [#""café""#, #""a\"b""#, "3", "null"], [#""cafe""#, "4"]),
            (33, ["{}", "[]", #"{"a": [1, "x", null, {"b": false}]}"#, "-1.5e3", #""s""#], []),
        ]
        for (i, good, bad) in cases {
            let g = try JSONSchemaGrammar.grammar(for: try JSONValue.parse(GrammarTests.schemas[i]))
            for t in good {
                let m = GrammarMatcher(g)
                XCTAssertTrue(m.accept(bytes: Array(t.utf8)) && m.canEnd, "schema \(i) should accept \(t)")
            }
            for t in bad {
                let m = GrammarMatcher(g)
                XCTAssertFalse(m.accept(bytes: Array(t.utf8)) && m.canEnd, "schema \(i) should reject \(t)")
            }
        }
    }

    func testUnsupportedSchemasAreRefused() {
        for (schema, want) in [(#"{"not":{"type":"string"}}"#, "`not`"),
                               (#"{"type":"object","patternProperties":{"^a":{}}}"#, "patternProperties"),
                               (#"{"type":"string","pattern":"[a-z]+"}"#, "anchored"),
                               (#"{"type":"string","format":"hostname-idn"}"#, "format"),
                               (#"{"type":"number","exclusiveMinimum":0.5}"#, "integer"),
                               (#"{"type":"integer","minimum":5,"maximum":1}"#, "bounds"),
                               (#"{"$ref":"https://example.org/s.json"}"#, "local"),
                               (#"{"type":"object","properties":{},"required":["a"]}"#, "required property")] {
            XCTAssertThrowsError(try JSONSchemaGrammar.grammar(for: try JSONValue.parse(schema)), schema) { e in
                XCTAssertTrue("\(e)".contains(want), "\(schema): \(e)")
            }
        }
    }

    /// Random logits (seeded), closing tokens pushed up as a text grows so that it ends: every
    /// finished text must be valid JSON that validates against the schema.
    func testRandomSamplingUnderEverySchemaValidates() throws {
        XCTAssertGreaterThanOrEqual(GrammarTests.schemas.count, 30)
        var rng = SeededGenerator(seed: 7)
        let V = GrammarTests.vocab.count
        let closing = GrammarTests.vocab.map { b in b.contains(UInt8(ascii: "\"")) || b.contains(UInt8(ascii: "}")) || b.contains(UInt8(ascii: "]")) }
        var total = 0, maskedSteps = 0, steps = 0
        for (i, text) in GrammarTests.schemas.enumerated() {
            let schema = try JSONValue.parse(text)
            let grammar = try JSONSchemaGrammar.grammar(for: schema)
            let validator = SchemaValidator(root: schema)
            var outputs = Set<String>()
            for sample in 0..<6 {
                let c = GrammarConstraint(grammar: grammar, trie: GrammarTests.trie)
                var params = SamplingParameters()
                params.temperature = 1; params.topK = 0; params.topP = 1; params.minP = 0
                params.seed = UInt64(i * 100 + sample)
                var sampler = Sampler(params)
                var out: [UInt8] = []
                var done = false
                for step in 0..<800 {
                    var logits = (0..<V).map { t -> Float in
                        let gauss = Float(rng.unit() + rng.unit() + rng.unit() - 1.5) * 3
                        return gauss + (closing[t] ? Float(step) / 40 : 0)
                    }
                    guard let t = logits.withUnsafeMutableBufferPointer({ c.sample(&sampler, $0.baseAddress!, count: V, history: []) }) else {
                        XCTFail("schema \(i): the grammar allowed nothing after \(String(decoding: out, as: UTF8.self))"); break
                    }
                    if t == GrammarTests.eos { done = true; break }
                    c.accept(t)
                    out += GrammarTests.vocab[t]
                    if c.mustEnd { done = true; break }
                }
                steps += c.steps; maskedSteps += c.masked
                let s = String(decoding: out, as: UTF8.self)
                XCTAssertTrue(done, "schema \(i): not finished in 800 tokens: \(s.prefix(200))")
                guard done else { continue }
                guard let value = try? JSONValue.parse(s) else { XCTFail("schema \(i): not JSON: \(s)"); continue }
                if let v = validator.violation(value) { XCTFail("schema \(i): \(s) — \(v)") }
                outputs.insert(s)
                total += 1
            }
            // Constant/enum-of-few schemas aside, random sampling should not produce one text only.
            if ![3, 26, 29].contains(i) { XCTAssertGreaterThan(outputs.count, 1, "schema \(i) produced only \(outputs)") }
        }
        print("grammar: \(total) sampled texts validated; \(maskedSteps) of \(steps) steps needed the mask")
        XCTAssertEqual(total, GrammarTests.schemas.count * 6)
    }

    /// The default model, greedy, under three schemas: the answers validate and end by themselves.
    func testDefaultModelFollowsSchemas() throws {
        let path = try requireDefaultModel()
        let engine = try Engine.load(path)
        let asks: [(String, String)] = [
            ("Give a JSON object describing a cat named Tom who is 3 years old.", GrammarTests.schemas[0]),
            ("List three colours as JSON.", #"{"type":"array","items":{"type":"string","enum":["red","green","blue","yellow"]},"minItems":3,"maxItems":3}"#),
            ("When did the first moon landing happen? Answer as JSON with the date and the mission.", #"{"type":"object","properties":{"mission":{"type":"string","maxLength":40},"date":{"type":"string","format":"date"}},"required":["mission","date"],"additionalProperties":false}"#),
        ]
        for (question, schemaText) in asks {
            let schema = try JSONValue.parse(schemaText)
            var options = GenerationOptions()
            options.sampling = .greedy
            options.maxTokens = 80
            options.grammar = try JSONSchemaGrammar.grammar(for: schema)
            let session = Session(engine: engine, contextSize: 512)
            let prompt = try engine.renderChat([.object([("role", .string("user")), ("content", .string(question))])])
            let r = try session.generate(prompt: engine.encodePrompt(prompt), options: options)
            print("grammar: \(question) → \(r.text)")
            XCTAssertEqual(r.finishReason, .stop, r.text)
            let value = try JSONValue.parse(r.text)
            XCTAssertNil(SchemaValidator(root: schema).violation(value), r.text)
        }
    }
}

/// Turns a JSON Schema into a GBNF grammar whose sentences are exactly JSON texts that validate
/// against it (for the keywords listed below), so `response_format: json_schema` and tool
/// arguments can be enforced during sampling.
///
/// Supported: `type` (one or a list), `properties` / `required` / `additionalProperties`
/// (properties appear in the schema's order, optional ones may be left out; extra keys only when
/// `additionalProperties` is true or a schema, or the object declares no properties), `items`,
/// `prefixItems`, `minItems` / `maxItems`, `enum`, `const`, `anyOf` / `oneOf` (as alternatives),
/// `allOf` of object schemas, `$ref` into `#/$defs` or `#/definitions` (recursion allowed),
/// `minLength` / `maxLength`, `pattern` (a regular-expression subset: literals, `.`, classes,
/// `\d \w \s`, groups, `|`, `* + ? {m,n}`, anchors at the ends), `format` date, time, date-time,
/// uuid, email, ipv4, `minimum` / `maximum` / `exclusiveMinimum` / `exclusiveMaximum` on integers
/// (and integer bounds on numbers). Annotations (title, description, default, examples, …) are
/// ignored. Anything else is refused with `GrammarError` rather than silently not enforced.
///
/// Whitespace: one space or a newline plus indentation may stand between tokens, none before
/// the first or after the last character, so generation stops as soon as the value is closed.
public struct JSONSchemaGrammar {
    private var rules: [(String, String)] = []
    private var ruleIndex: [String: Int] = [:]
    private var bodies: [String: String] = [:]   // body → rule name, to share equal rules
    private let rootSchema: JSONValue
    private var refsDone: Set<String> = []

    /// The GBNF text for `schema` (root rule `root`); `before` and `after` are literal text
    /// around the value (a forced tool call writes its name before the arguments).
    public static func gbnf(for schema: JSONValue, before: String = "", after: String = "") throws -> String {
        var g = JSONSchemaGrammar(rootSchema: schema)
        g.add("root", "")   // first, so the grammar reads top-down
        let value = try g.visit(schema, name: "value-root")
        g.add("root", ([before.isEmpty ? nil : literal(before), value, after.isEmpty ? nil : literal(after)] as [String?])
            .compactMap { $0 }.joined(separator: " "))
        return g.rules.map { "\($0.0) ::= \($0.1)" }.joined(separator: "\n") + "\n"
    }

    /// The grammar for `schema`.
    public static func grammar(for schema: JSONValue, before: String = "", after: String = "") throws -> Grammar {
        try Grammar(gbnf: gbnf(for: schema, before: before, after: after))
    }

    /// Any JSON object (`response_format: json_object`).
    public static let anyObjectGBNF: String = {
        var g = JSONSchemaGrammar(rootSchema: .object([]))
        g.add("root", g.primitive("object"))
        return g.rules.map { "\($0.0) ::= \($0.1)" }.joined(separator: "\n") + "\n"
    }()

    private init(rootSchema: JSONValue) { self.rootSchema = rootSchema }

    // MARK: - Rules

    @discardableResult
    private mutating func add(_ name: String, _ body: String) -> String {
        if let i = ruleIndex[name] { rules[i].1 = body; return name }
        ruleIndex[name] = rules.count
        rules.append((name, body))
        return name
    }

    /// A rule for `body`, reusing one with the same body; `hint` names it.
    private mutating func rule(_ hint: String, _ body: String) -> String {
        if let n = bodies[body] { return n }
        var name = JSONSchemaGrammar.ruleName(hint), k = 1
        while ruleIndex[name] != nil { k += 1; name = "\(JSONSchemaGrammar.ruleName(hint))-\(k)" }
        bodies[body] = name
        return add(name, body)
    }

    static func ruleName(_ s: String) -> String {
        let cleaned = String(s.unicodeScalars.map { GBNFParser.isNameChar($0.value) ? Character($0) : "-" })
        return cleaned.isEmpty ? "r" : cleaned
    }

    /// A GBNF string literal for `s`.
    static func literal(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += "\\x" + (u.value < 16 ? "0" : "") + String(u.value, radix: 16) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    /// The shared pieces every JSON grammar uses, added on first use.
    private mutating func primitive(_ name: String) -> String {
        if ruleIndex[name] != nil { return name }
        switch name {
        case "ws": add(name, "( \" \" | \"\\n\" [ \\t]{0,24} )?")
        case "char": add(name, "[^\"\\\\\\x00-\\x1f] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} )")
        case "string": add(name, "\"\\\"\" \(primitive("char"))* \"\\\"\"")
        case "int": add(name, "\"-\"? ( \"0\" | [1-9] [0-9]{0,15} )")
        case "integer": add(name, primitive("int"))
        case "fraction": add(name, "\".\" [0-9]{1,16}")
        case "exponent": add(name, "[eE] [-+]? [0-9]{1,2}")
        case "number": add(name, "\(primitive("int")) \(primitive("fraction"))? \(primitive("exponent"))?")
        case "boolean": add(name, "\"true\" | \"false\"")
        case "null": add(name, "\"null\"")
        case "value":
            add(name, "")   // reserve the name: value, object and array refer to each other
            add(name, ["object", "array", "string", "number", "boolean", "null"].map { primitive($0) }.joined(separator: " | "))
        case "object":
            add(name, "")
            let ws = primitive("ws"), kv = "\(primitive("string")) \(ws) \":\" \(ws) \(primitive("value"))"
            add(name, "\"{\" \(ws) ( \(kv) ( \(ws) \",\" \(ws) \(kv) )* \(ws) )? \"}\"")
        case "array":
            add(name, "")
            let ws = primitive("ws"), v = primitive("value")
            add(name, "\"[\" \(ws) ( \(v) ( \(ws) \",\" \(ws) \(v) )* \(ws) )? \"]\"")
        default: fatalError("unknown primitive \(name)")
        }
        return name
    }

    // MARK: - Schemas

    static let annotations: Set<String> = ["title", "description", "default", "examples", "$schema", "$id", "$comment",
                                           "deprecated", "readOnly", "writeOnly", "$defs", "definitions", "strict", "name"]
    static let handled: Set<String> = ["type", "properties", "required", "additionalProperties", "items", "prefixItems",
                                       "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "$ref",
                                       "minLength", "maxLength", "pattern", "format", "minimum", "maximum",
                                       "exclusiveMinimum", "exclusiveMaximum", "nullable"]

    /// The rule (or inline expression) for one schema.
    private mutating func visit(_ schema: JSONValue, name: String) throws -> String {
        if case .bool(let b) = schema {
            guard b else { throw GrammarError("schema `false` at \(name) accepts nothing") }
            return primitive("value")
        }
        guard let obj = schema.object else { throw GrammarError("the schema at \(name) is not an object") }
        for (k, _) in obj where !JSONSchemaGrammar.handled.contains(k) && !JSONSchemaGrammar.annotations.contains(k) {
            throw GrammarError("JSON Schema keyword `\(k)` (at \(name)) is not supported for constrained output")
        }
        if let ref = schema["$ref"]?.string { return try visitRef(ref) }
        if let c = schema["const"] { return rule(name, JSONSchemaGrammar.literal(c.serialized())) }
        if let e = schema["enum"]?.array {
            guard !e.isEmpty else { throw GrammarError("empty enum at \(name)") }
            return rule(name, e.map { JSONSchemaGrammar.literal($0.serialized()) }.joined(separator: " | "))
        }
        for key in ["anyOf", "oneOf"] {
            if let alts = schema[key]?.array {
                guard !alts.isEmpty else { throw GrammarError("empty \(key) at \(name)") }
                var parts: [String] = []
                for (i, a) in alts.enumerated() { parts.append(try visit(merged(a, into: schema, dropping: key), name: "\(name)-\(i)")) }
                return rule(name, parts.joined(separator: " | "))
            }
        }
        if let all = schema["allOf"]?.array {
            var m = JSONValue.object(obj.filter { $0.0 != "allOf" })
            for a in all { m = try mergeAll(m, resolve(a)) }
            return try visit(m, name: name)
        }
        var types: [String]
        switch schema["type"] {
        case .string(let t)?: types = [t]
        case .array(let ts)?: types = ts.compactMap(\.string)
        case nil: types = JSONSchemaGrammar.impliedTypes(obj)
        default: throw GrammarError("`type` at \(name) must be a string or a list of strings")
        }
        if schema["nullable"]?.bool == true && !types.contains("null") { types.append("null") }
        var parts: [String] = []
        for t in types { parts.append(try visitType(t, schema, name: types.count > 1 ? "\(name)-\(t)" : name)) }
        return parts.count == 1 ? parts[0] : rule(name, parts.joined(separator: " | "))
    }

    /// With no `type`, the keywords present say which types are meant (none: any value).
    static func impliedTypes(_ obj: [(String, JSONValue)]) -> [String] {
        let keys = Set(obj.map(\.0))
        if !keys.isDisjoint(with: ["properties", "additionalProperties", "required"]) { return ["object"] }
        if !keys.isDisjoint(with: ["items", "prefixItems", "minItems", "maxItems"]) { return ["array"] }
        if !keys.isDisjoint(with: ["pattern", "minLength", "maxLength", "format"]) { return ["string"] }
        if !keys.isDisjoint(with: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]) { return ["number"] }
        return ["value"]
    }

    /// A branch of anyOf/oneOf inherits its parent's other keywords (e.g. a shared `type`).
    private func merged(_ branch: JSONValue, into parent: JSONValue, dropping key: String) -> JSONValue {
        guard case .object(var b) = branch, let p = parent.object else { return branch }
        let definesValue = b.contains { ["$ref", "enum", "const"].contains($0.0) }
        for (k, v) in p where k != key && !JSONSchemaGrammar.annotations.contains(k) && !b.contains(where: { $0.0 == k }) {
            if definesValue { continue }   // the branch already says what its values are
            b.append((k, v))
        }
        return .object(b)
    }

    private func resolve(_ s: JSONValue) throws -> JSONValue {
        if let ref = s["$ref"]?.string { return try lookup(ref) }
        return s
    }

    private func lookup(_ ref: String) throws -> JSONValue {
        guard ref.hasPrefix("#") else { throw GrammarError("only local $ref (#/…) is supported, not \(ref)") }
        var node = rootSchema
        for part in ref.dropFirst().split(separator: "/") {
            let key = part.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            guard let next = node[key] else { throw GrammarError("$ref \(ref) points at nothing") }
            node = next
        }
        return node
    }

    private mutating func visitRef(_ ref: String) throws -> String {
        let name = "ref-" + JSONSchemaGrammar.ruleName(String(ref.split(separator: "/").last ?? "root"))
        if refsDone.contains(ref) { return name }
        refsDone.insert(ref)
        add(name, "")   // reserved first, so a recursive schema refers to it
        let target = try lookup(ref)
        let body = try visit(target, name: name + "-body")
        add(name, body)
        return name
    }

    /// allOf of object schemas: the union of properties and required keys.
    private func mergeAll(_ a: JSONValue, _ b: JSONValue) throws -> JSONValue {
        guard var x = a.object, let y = b.object else { throw GrammarError("allOf is supported for object schemas only") }
        for (k, v) in y {
            if let i = x.firstIndex(where: { $0.0 == k }) {
                switch k {
                case "properties":
                    x[i].1 = .object((x[i].1.object ?? []) + (v.object ?? []).filter { p in !(x[i].1.object ?? []).contains { $0.0 == p.0 } })
                case "required":
                    x[i].1 = .array((x[i].1.array ?? []) + (v.array ?? []).filter { !(x[i].1.array ?? []).contains($0) })
                case "type" where x[i].1 == v: break
                case "additionalProperties": x[i].1 = .bool(false)
                default: throw GrammarError("allOf with two different `\(k)` is not supported")
                }
            } else {
                x.append((k, v))
            }
        }
        return .object(x)
    }

    private mutating func visitType(_ type: String, _ s: JSONValue, name: String) throws -> String {
        switch type {
        case "object": return try visitObject(s, name: name)
        case "array": return try visitArray(s, name: name)
        case "string": return try visitString(s, name: name)
        case "integer": return try visitNumber(s, integer: true, name: name)
        case "number": return try visitNumber(s, integer: false, name: name)
        case "boolean": return primitive("boolean")
        case "null": return primitive("null")
        case "value": return primitive("value")
        default: throw GrammarError("unknown type `\(type)` at \(name)")
        }
    }

    private mutating func visitObject(_ s: JSONValue, name: String) throws -> String {
        let props = s["properties"]?.object ?? []
        let required = Set((s["required"]?.array ?? []).compactMap(\.string))
        for r in required where !props.contains(where: { $0.0 == r }) {
            throw GrammarError("required property `\(r)` at \(name) has no schema in `properties`")
        }
        let ws = primitive("ws")
        var kvs: [String] = []
        for (key, sub) in props {
            let value = try visit(sub, name: "\(name)-\(key)")
            kvs.append(rule("\(name)-\(key)-kv", "\(JSONSchemaGrammar.literal("\"" + JSONSchemaGrammar.jsonEscaped(key) + "\"")) \(ws) \":\" \(ws) \(value)"))
        }
        // Extra keys after the declared ones.
        var extra: String? = nil
        switch s["additionalProperties"] {
        case .bool(true)?: extra = primitive("value")
        case .bool(false)?: extra = nil
        case .object(let o)?: extra = try visit(.object(o), name: "\(name)-additional")
        case nil: extra = props.isEmpty ? primitive("value") : nil
        default: throw GrammarError("additionalProperties at \(name) must be a boolean or a schema")
        }
        if let e = extra {
            kvs.append(rule("\(name)-extra-kv", "\(primitive("string")) \(ws) \":\" \(ws) \(e)"))
        }
        let n = kvs.count
        if n == 0 { return rule(name, "\"{\" \(ws) \"}\"") }
        enum Kind { case required, optional, extra }
        let kinds: [Kind] = props.map { required.contains($0.0) ? .required : .optional } + (extra != nil ? [.extra] : [])
        // rest[i]: what may follow once some property was written, from property i on;
        // first[i]: the properties written start with i or a later one (at least one).
        // Both are linear in the number of properties, and the schema's order is kept.
        var rest = [String](repeating: "", count: n + 1)
        for i in stride(from: n - 1, through: 0, by: -1) {
            let piece = "\(ws) \",\" \(ws) \(kvs[i])"
            let mine: String
            switch kinds[i] {
            case .required: mine = piece
            case .optional: mine = "( \(piece) )?"
            case .extra: mine = "( \(piece) )*"
            }
            rest[i] = rule("\(name)-rest-\(i)", rest[i + 1].isEmpty ? mine : "\(mine) \(rest[i + 1])")
        }
        var first: String? = nil
        for i in stride(from: n - 1, through: 0, by: -1) {
            let after = kinds[i] == .extra ? rest[i] : rest[i + 1]
            var body = after.isEmpty ? kvs[i] : "\(kvs[i]) \(after)"
            if kinds[i] != .required, let later = first { body += " | \(later)" }
            first = rule("\(name)-first-\(i)", body)
        }
        let body = kinds.contains(.required) ? "\"{\" \(ws) \(first!) \(ws) \"}\""
            : "\"{\" \(ws) ( \(first!) \(ws) )? \"}\""
        return rule(name, body)
    }

    static func jsonEscaped(_ s: String) -> String {
        let q = JSONValue.string(s).serialized()
        return String(q.dropFirst().dropLast())
    }

    private mutating func visitArray(_ s: JSONValue, name: String) throws -> String {
        let ws = primitive("ws")
        let lo = s["minItems"]?.int ?? 0
        let hi = s["maxItems"]?.int
        if let h = hi, h < lo { throw GrammarError("maxItems < minItems at \(name)") }
        let sep = "\(ws) \",\" \(ws)"
        if let prefix = s["prefixItems"]?.array {
            // A tuple: the listed schemas in order; `items` (if any) for the rest.
            var parts: [String] = []
            for (i, p) in prefix.enumerated() { parts.append(try visit(p, name: "\(name)-\(i)")) }
            var body = parts.joined(separator: " \(sep) ")
            if let more = s["items"], more != .bool(false) {
                body += " ( \(sep) \(try visit(more, name: "\(name)-item")) )*"
            }
            return rule(name, parts.isEmpty ? "\"[\" \(ws) \"]\"" : "\"[\" \(ws) \(body) \(ws) \"]\"")
        }
        let item = try s["items"].map { try visit($0, name: "\(name)-item") } ?? primitive("value")
        if hi == 0 { return rule(name, "\"[\" \(ws) \"]\"") }
        // lo…hi items: the first, then lo-1…hi-1 more after commas.
        let more = "( \(sep) \(item) ){\(max(lo - 1, 0)),\(hi.map { String($0 - 1) } ?? "")}"
        let list = "\(item) \(more)"
        return rule(name, lo == 0 ? "\"[\" \(ws) ( \(list) \(ws) )? \"]\"" : "\"[\" \(ws) \(list) \(ws) \"]\"")
    }

    private mutating func visitString(_ s: JSONValue, name: String) throws -> String {
        let char = primitive("char")
        if let pattern = s["pattern"]?.string {
            var re = RegexToGBNF(pattern)
            let body = try re.convert()
            return rule(name, "\"\\\"\" \(body) \"\\\"\"")
        }
        if let format = s["format"]?.string {
            guard let f = JSONSchemaGrammar.formats[format] else {
                throw GrammarError("string format `\(format)` is not supported for constrained output")
            }
            return rule(name, "\"\\\"\" \(f) \"\\\"\"")
        }
        let lo = s["minLength"]?.int ?? 0
        let hi = s["maxLength"]?.int
        if let h = hi, h < lo { throw GrammarError("maxLength < minLength at \(name)") }
        if lo == 0 && hi == nil { return primitive("string") }
        let rep = hi.map { lo == $0 ? "{\(lo)}" : "{\(lo),\($0)}" } ?? "{\(lo),}"
        return rule(name, "\"\\\"\" \(char)\(rep) \"\\\"\"")
    }

    static let formats: [String: String] = {
        let d2 = "[0-9] [0-9]"
        let date = "[0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"3\" [01] )"
        let time = "( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,6} )? ( \"Z\" | [+-] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )"
        let hex = "[0-9a-fA-F]"
        let octet = "( \"25\" [0-5] | \"2\" [0-4] [0-9] | \"1\" \(d2) | [1-9] [0-9] | [0-9] )"
        return [
            "date": date,
            "time": time,
            "date-time": "\(date) \"T\" \(time)",
            "uuid": "\(hex){8} \"-\" \(hex){4} \"-\" \(hex){4} \"-\" \(hex){4} \"-\" \(hex){12}",
            "email": "[a-zA-Z0-9._%+-]{1,64} \"@\" [a-zA-Z0-9-]{1,63} ( \".\" [a-zA-Z0-9-]{1,63} ){1,4}",
            "ipv4": "\(octet) \".\" \(octet) \".\" \(octet) \".\" \(octet)",
        ]
    }()

    private mutating func visitNumber(_ s: JSONValue, integer: Bool, name: String) throws -> String {
        var lo: Int? = nil, hi: Int? = nil
        func bound(_ key: String) throws -> Int? {
            guard let v = s[key] else { return nil }
            guard let i = v.int else { throw GrammarError("`\(key)` at \(name) must be an integer for constrained output") }
            return i
        }
        if let m = try bound("minimum") { lo = m }
        if let m = try bound("exclusiveMinimum") { lo = max(lo ?? Int.min, m + 1) }
        if let m = try bound("maximum") { hi = m }
        if let m = try bound("exclusiveMaximum") { hi = min(hi ?? Int.max, m - 1) }
        if !integer && (s["exclusiveMinimum"] != nil || s["exclusiveMaximum"] != nil) {
            throw GrammarError("exclusive bounds on `number` at \(name) are not supported; use integer or minimum/maximum")
        }
        if let l = lo, let h = hi, l > h { throw GrammarError("no number satisfies the bounds at \(name)") }
        if lo == nil && hi == nil { return primitive(integer ? "integer" : "number") }
        let ints = IntegerRange.gbnf(lo: lo, hi: hi)
        if integer { return rule(name, ints) }
        // A number within integer bounds: an integer in range, or an integer one below the top
        // (or above the bottom, for negatives) with a fraction.
        let frac = primitive("fraction")
        var alts = ["( \(ints) ) ( \".\" \"0\"{1,16} )?"]
        if let inner = IntegerRange.fractionalBase(lo: lo, hi: hi) { alts.append("( \(inner) ) \(frac)") }
        return rule(name, alts.joined(separator: " | "))
    }
}

/// GBNF for the decimal integers in [lo, hi] (either bound may be open), written the way one
/// writes a numeric range as a regular expression: split into runs of equal digit count, then
/// digit by digit.
enum IntegerRange {
    static func gbnf(lo: Int?, hi: Int?) -> String {
        var alts: [String] = []
        // Non-negative part.
        if hi == nil || hi! >= 0 {
            let a = max(lo ?? 0, 0)
            alts += nonNegative(a, hi)
        }
        // Negative part: -x for x in [max(1, -hi), -lo].
        if lo == nil || lo! < 0 {
            let a = max(1, hi.map { -$0 } ?? 1)
            let b = lo.map { -$0 }
            if b == nil || a <= b! { alts += nonNegative(a, b).map { "\"-\" ( \($0) )" } }
        }
        return alts.joined(separator: " | ")
    }

    /// Integers x in [lo, hi] that, with a fraction, stay inside the bounds: the fractional
    /// values are lo ≤ x.f < hi for x ≥ 0 (x in [lo, hi-1]) and mirrored for negatives.
    static func fractionalBase(lo: Int?, hi: Int?) -> String? {
        var alts: [String] = []
        // Positive values x.f with x in [max(lo,0), hi-1]; 0.f also for lo < 0.
        let top = hi.map { $0 - 1 }
        if top == nil || top! >= max(lo ?? 0, 0) { alts += nonNegative(max(lo ?? 0, 0), top) }
        // Negative values -x.f with x in [max(-hi,0), -lo-1].
        if lo == nil || lo! < 0 {
            let a = max(0, hi.map { -$0 } ?? 0)
            let b = lo.map { -$0 - 1 }
            if b == nil || a <= b! { alts += nonNegative(a, b).map { "\"-\" ( \($0) )" } }
        }
        return alts.isEmpty ? nil : alts.joined(separator: " | ")
    }

    static func digits(_ x: Int) -> [Int] { String(x).compactMap { $0.wholeNumberValue } }

    /// x in [a, b] for 0 ≤ a (b nil: no upper bound), without leading zeros.
    static func nonNegative(_ a: Int, _ b: Int?) -> [String] {
        var alts: [String] = []
        let la = digits(a).count
        let lb = b.map { digits($0).count } ?? 16
        for len in la...max(la, lb) {
            let lo = len == la ? a : pow10(len - 1)
            let hi = (b != nil && len == lb) ? b! : pow10(len) - 1
            if b != nil && len > lb { break }
            if lo > hi { continue }
            alts.append(sameLength(digits(lo)[...], digits(hi)[...]))
        }
        return alts
    }

    static func pow10(_ n: Int) -> Int { (0..<n).reduce(1) { r, _ in r * 10 } }

    /// Numbers written with exactly as many digits as `a` and `b`, between them.
    static func sameLength(_ a: ArraySlice<Int>, _ b: ArraySlice<Int>) -> String {
        guard let a0 = a.first, let b0 = b.first else { return "" }
        let n = a.count - 1
        let any = n > 0 ? " [0-9]{\(n)}" : ""
        if a.dropFirst().allSatisfy({ $0 == 0 }) && b.dropFirst().allSatisfy({ $0 == 9 }) {
            return (a0 == b0 ? "\"\(a0)\"" : "[\(a0)-\(b0)]") + any
        }
        if a0 == b0 { return "\"\(a0)\" " + sameLength(a.dropFirst(), b.dropFirst()) }
        var alts = ["\"\(a0)\" ( \(sameLength(a.dropFirst(), ArraySlice(repeating: 9, count: n))) )"]
        if b0 - a0 > 1 { alts.append((b0 - a0 == 2 ? "\"\(a0 + 1)\"" : "[\(a0 + 1)-\(b0 - 1)]") + any) }
        alts.append("\"\(b0)\" ( \(sameLength(ArraySlice(repeating: 0, count: n), b.dropFirst())) )")
        return "( " + alts.joined(separator: " | ") + " )"
    }
}

/// A regular-expression subset (what JSON Schema `pattern`s use in practice) turned into GBNF
/// over the characters of a JSON string: literal characters are written the way JSON must
/// escape them, classes lose `"`, `\` and control characters. Patterns are anchored at both ends
/// (a schema's unanchored pattern would allow any text around the match; that is refused).
struct RegexToGBNF {
    let s: [Character]
    var i = 0
    init(_ pattern: String) { s = Array(pattern) }

    mutating func convert() throws -> String {
        guard s.first == "^", s.last == "$", s.count >= 2 else {
            throw GrammarError("pattern \(String(s)) must be anchored with ^ and $ for constrained output")
        }
        i = 1
        var inner = s
        inner.removeLast()
        let t = RegexToGBNF(chars: inner, start: 1)
        var p = t
        let out = try p.alternation()
        guard p.i == inner.count else { throw GrammarError("unsupported pattern syntax at `\(String(inner[p.i...]))`") }
        return out.isEmpty ? "\"\"" : "( \(out) )"
    }

    private init(chars: [Character], start: Int) { s = chars; i = start }

    mutating func alternation() throws -> String {
        var alts = [try sequence()]
        while i < s.count && s[i] == "|" { i += 1; alts.append(try sequence()) }
        return alts.count == 1 ? alts[0] : alts.map { $0.isEmpty ? "\"\"" : "( \($0) )" }.joined(separator: " | ")
    }

    mutating func sequence() throws -> String {
        var items: [String] = []
        while i < s.count && s[i] != "|" && s[i] != ")" {
            var atom = try self.atom()
            if i < s.count {
                switch s[i] {
                case "*", "+", "?": atom = "( \(atom) )\(s[i])"; i += 1
                case "{":
                    var j = i + 1
                    while j < s.count && s[j] != "}" { j += 1 }
                    guard j < s.count else { throw GrammarError("unterminated {} in pattern") }
                    let spec = String(s[(i + 1)..<j])
                    guard spec.allSatisfy({ $0.isNumber || $0 == "," }) else { throw GrammarError("bad repetition {\(spec)} in pattern") }
                    atom = "( \(atom) ){\(spec)}"
                    i = j + 1
                default: break
                }
                if i < s.count && (s[i] == "?" || s[i] == "+") { i += 1 }   // lazy / possessive: same language
            }
            items.append(atom)
        }
        return items.joined(separator: " ")
    }

    mutating func atom() throws -> String {
        let c = s[i]
        i += 1
        switch c {
        case "(":
            if i + 1 < s.count && s[i] == "?" && s[i + 1] == ":" { i += 2 }
            else if i < s.count && s[i] == "?" { throw GrammarError("pattern group syntax (? is not supported") }
            let inner = try alternation()
            guard i < s.count && s[i] == ")" else { throw GrammarError("unbalanced ( in pattern") }
            i += 1
            return "( \(inner.isEmpty ? "\"\"" : inner) )"
        case ".": return "[^\"\\\\\\x00-\\x1f]"
        case "[": return try charClass()
        case "\\":
            guard i < s.count else { throw GrammarError("pattern ends with \\") }
            let e = s[i]; i += 1
            if let cls = RegexToGBNF.shorthand(e) { return "[\(cls)]" }
            if let n = RegexToGBNF.negatedShorthand(e) { return "[^\(n)\"\\\\\\x00-\\x1f]" }
            return RegexToGBNF.literalChar(RegexToGBNF.escapeValue(e))
        case "^", "$": throw GrammarError("anchors inside a pattern are not supported")
        default: return RegexToGBNF.literalChar(c)
        }
    }

    static func escapeValue(_ e: Character) -> Character {
        switch e { case "n": return "\n"; case "t": return "\t"; case "r": return "\r"; default: return e }
    }

    static func shorthand(_ e: Character) -> String? {
        switch e {
        case "d": return "0-9"
        case "w": return "a-zA-Z0-9_"
        case "s": return " "   // \t \n \r would need JSON escapes: only the space is kept
        default: return nil
        }
    }

    static func negatedShorthand(_ e: Character) -> String? {
        switch e { case "D": return "0-9"; case "W": return "a-zA-Z0-9_"; case "S": return " "; default: return nil }
    }

    /// A character as it appears inside a JSON string, as a GBNF literal.
    static func literalChar(_ c: Character) -> String {
        switch c {
        case "\"": return "\"\\\\\\\"\""
        case "\\": return "\"\\\\\\\\\""
        case "\n": return "\"\\\\n\""
        case "\t": return "\"\\\\t\""
        case "\r": return "\"\\\\r\""
        default: return JSONSchemaGrammar.literal(String(c))
        }
    }

    /// A code point inside a GBNF class.
    static func classPoint(_ v: UInt32) -> String {
        if (0x30...0x39).contains(v) || (0x41...0x5A).contains(v) || (0x61...0x7A).contains(v) { return String(Character(Unicode.Scalar(v)!)) }
        return v <= 0xFFFF ? "\\u" + hex(v, 4) : "\\U" + hex(v, 8)
    }

    static func hex(_ v: UInt32, _ n: Int) -> String {
        let h = String(v, radix: 16)
        return String(repeating: "0", count: max(0, n - h.count)) + h
    }

    static func shorthandRanges(_ e: Character) -> [ClosedRange<UInt32>]? {
        switch e {
        case "d": return [0x30...0x39]
        case "w": return [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A]
        case "s": return [0x20...0x20]
        default: return nil
        }
    }

    mutating func classCharValue() throws -> (UInt32?, [ClosedRange<UInt32>]?) {
        guard i < s.count else { throw GrammarError("unterminated class in pattern") }
        let c = s[i]; i += 1
        if c == "\\" {
            guard i < s.count else { throw GrammarError("unterminated class in pattern") }
            let e = s[i]; i += 1
            if let r = RegexToGBNF.shorthandRanges(e) { return (nil, r) }
            return (RegexToGBNF.escapeValue(e).unicodeScalars.first!.value, nil)
        }
        return (c.unicodeScalars.first!.value, nil)
    }

    mutating func charClass() throws -> String {
        var negated = false
        if i < s.count && s[i] == "^" { negated = true; i += 1 }
        var ranges: [ClosedRange<UInt32>] = []
        var first = true
        while i < s.count && (s[i] != "]" || first) {
            first = false
            let (c, set) = try classCharValue()
            if let set { ranges += set; continue }
            if i + 1 < s.count && s[i] == "-" && s[i + 1] != "]" {
                i += 1
                let (d, dset) = try classCharValue()
                guard let lo = c, let hi = d, dset == nil, lo <= hi else { throw GrammarError("bad range in pattern class") }
                ranges.append(lo...hi)
            } else {
                ranges.append(c!...c!)
            }
        }
        guard i < s.count else { throw GrammarError("unterminated class in pattern") }
        i += 1
        // A JSON string holds `"`, `\` and control characters only escaped: a class never
        // produces them (the text still matches the pattern, which is what counts).
        let forbidden: [ClosedRange<UInt32>] = [0...0x1F, 0x22...0x22, 0x5C...0x5C]
        if negated { ranges += forbidden }
        else {
            for f in forbidden {
                ranges = ranges.flatMap { r -> [ClosedRange<UInt32>] in
                    guard r.overlaps(f) else { return [r] }
                    var out: [ClosedRange<UInt32>] = []
                    if r.lowerBound < f.lowerBound { out.append(r.lowerBound...(f.lowerBound - 1)) }
                    if r.upperBound > f.upperBound { out.append((f.upperBound + 1)...r.upperBound) }
                    return out
                }
            }
            guard !ranges.isEmpty else { throw GrammarError("a pattern class allows only characters JSON must escape") }
        }
        let body = ranges.map { $0.lowerBound == $0.upperBound ? RegexToGBNF.classPoint($0.lowerBound)
            : RegexToGBNF.classPoint($0.lowerBound) + "-" + RegexToGBNF.classPoint($0.upperBound) }.joined()
        return "[" + (negated ? "^" : "") + body + "]"
    }
}

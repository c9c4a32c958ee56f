import Foundation
@testable import Tiefsee

/// A JSON Schema validator written for the tests, independently of the schema-to-grammar
/// converter (it reads instances, not grammars; patterns go through NSRegularExpression), so a
/// generated output that validates here is checked by a second implementation.
struct SchemaValidator {
    let root: JSONValue

    /// The first violation found, or nil when `instance` validates.
    func violation(_ instance: JSONValue) -> String? { check(instance, root, "$") }

    private func resolve(_ ref: String) -> JSONValue? {
        var node = root
        for part in ref.dropFirst().split(separator: "/") {
            guard let n = node[String(part)] else { return nil }
            node = n
        }
        return node
    }

    private func typeName(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool: return "boolean"
        case .int: return "integer"
        case .double(let d): return d == d.rounded() ? "integer" : "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    private func check(_ v: JSONValue, _ s: JSONValue, _ at: String) -> String? {
        if case .bool(let b) = s { return b ? nil : "\(at): schema false" }
        if let ref = s["$ref"]?.string {
            guard let target = resolve(ref) else { return "\(at): bad $ref \(ref)" }
            if let e = check(v, target, at) { return e }
        }
        if let c = s["const"], c != v { return "\(at): \(v.serialized()) is not the const \(c.serialized())" }
        if let e = s["enum"]?.array, !e.contains(v) { return "\(at): \(v.serialized()) not in enum" }
        if let alts = s["anyOf"]?.array, !alts.contains(where: { check(v, $0, at) == nil }) { return "\(at): no anyOf branch fits" }
        if let alts = s["oneOf"]?.array {
            let n = alts.filter { check(v, $0, at) == nil }.count
            if n != 1 { return "\(at): \(n) oneOf branches fit" }
        }
        for a in s["allOf"]?.array ?? [] { if let e = check(v, a, at) { return e } }
        var types: [String] = []
        if let t = s["type"]?.string { types = [t] } else if let ts = s["type"]?.array { types = ts.compactMap(\.string) }
        let t = typeName(v)
        if !types.isEmpty && !types.contains(t) && !(t == "integer" && types.contains("number")) {
            return "\(at): type \(t), wanted \(types)"
        }
        switch v {
        case .object(let kv):
            let props = s["properties"]?.object ?? []
            for r in s["required"]?.array ?? [] where !kv.contains(where: { $0.0 == r.string }) { return "\(at): missing \(r.string ?? "")" }
            for (k, val) in kv {
                if let p = props.first(where: { $0.0 == k }) {
                    if let e = check(val, p.1, "\(at).\(k)") { return e }
                } else if let ap = s["additionalProperties"] {
                    if ap == .bool(false) { return "\(at): extra key \(k)" }
                    if let e = check(val, ap, "\(at).\(k)") { return e }
                }
            }
        case .array(let a):
            if let lo = s["minItems"]?.int, a.count < lo { return "\(at): \(a.count) items < \(lo)" }
            if let hi = s["maxItems"]?.int, a.count > hi { return "\(at): \(a.count) items > \(hi)" }
            let prefix = s["prefixItems"]?.array ?? []
            for (i, item) in a.enumerated() {
                if i < prefix.count { if let e = check(item, prefix[i], "\(at)[\(i)]") { return e }; continue }
                if let it = s["items"], let e = check(item, it, "\(at)[\(i)]") { return e }
            }
        case .string(let str):
            let n = str.unicodeScalars.count
            if let lo = s["minLength"]?.int, n < lo { return "\(at): length \(n) < \(lo)" }
            if let hi = s["maxLength"]?.int, n > hi { return "\(at): length \(n) > \(hi)" }
            if let p = s["pattern"]?.string, !SchemaValidator.matches(str, p) { return "\(at): \(str) does not match \(p)" }
            if let f = s["format"]?.string, !SchemaValidator.formatOK(str, f) { return "\(at): \(str) is not a \(f)" }
        case .int, .double:
            let x = v.double!
            if let m = s["minimum"]?.double, x < m { return "\(at): \(x) < \(m)" }
            if let m = s["maximum"]?.double, x > m { return "\(at): \(x) > \(m)" }
            if let m = s["exclusiveMinimum"]?.double, x <= m { return "\(at): \(x) <= \(m)" }
            if let m = s["exclusiveMaximum"]?.double, x >= m { return "\(at): \(x) >= \(m)" }
        default: break
        }
        return nil
    }

    static func matches(_ s: String, _ pattern: String) -> Bool {
        guard let re = try? NSRegularExpression(pattern: pattern) else { return false }
        return re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }

    static func formatOK(_ s: String, _ f: String) -> Bool {
        let date = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
        let time = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
        switch f {
        case "date": return matches(s, "^\(date)$")
        case "time": return matches(s, "^\(time)$")
        case "date-time": return matches(s, "^\(date)T\(time)$")
        case "uuid": return matches(s, "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
        case "email": return matches(s, "^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$")
        case "ipv4":
            let parts = s.split(separator: ".", omittingEmptySubsequences: false)
            return parts.count == 4 && parts.allSatisfy { p in
                guard let n = Int(p), (0...255).contains(n) else { return false }
                return String(n) == p
            }
        default: return false
        }
    }
}

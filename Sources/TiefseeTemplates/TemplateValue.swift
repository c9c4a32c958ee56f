import Foundation
import TiefseeFormats

/// Mutable list storage (Python lists are shared by reference).
final class ListBox {
    var items: [Value]
    let isTuple: Bool
    init(_ items: [Value], tuple: Bool = false) { self.items = items; isTuple = tuple }
}

/// Insertion-ordered string-keyed dictionary (also backs namespaces).
final class DictBox {
    private(set) var keys: [String] = []
    private var storage: [String: Value] = [:]
    init() {}
    init(_ pairs: [(String, Value)]) { for (k, v) in pairs { self[k] = v } }
    subscript(key: String) -> Value? {
        get { storage[key] }
        set {
            if let v = newValue {
                if storage.updateValue(v, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }
    var count: Int { keys.count }
    var pairs: [(String, Value)] { keys.map { ($0, storage[$0]!) } }
    var values: [Value] { keys.map { storage[$0]! } }
}

final class MacroBox {
    let name: String
    let params: [Param]
    let body: [Stmt]
    let closure: Scope
    init(name: String, params: [Param], body: [Stmt], closure: Scope) {
        self.name = name; self.params = params; self.body = body; self.closure = closure
    }
}

final class BuiltinBox {
    let name: String
    let fn: (_ args: [Value], _ kwargs: [(String, Value)]) throws -> Value
    init(_ name: String, _ fn: @escaping ([Value], [(String, Value)]) throws -> Value) { self.name = name; self.fn = fn }
}

final class LoopBox {
    let items: [Value]
    var index0 = 0
    init(_ items: [Value]) { self.items = items }
}

/// A runtime value with Python/Jinja semantics.
enum Value {
    case undefined(String)  // the hint is used in error messages
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list(ListBox)
    case dict(DictBox)
    case namespace(DictBox)
    case macro(MacroBox)
    case builtin(BuiltinBox)
    case loop(LoopBox)

    static func list(_ a: [Value]) -> Value { .list(ListBox(a)) }
    static func tuple(_ a: [Value]) -> Value { .list(ListBox(a, tuple: true)) }
    static func dict(_ pairs: [(String, Value)]) -> Value { .dict(DictBox(pairs)) }

    init(_ lit: Literal) {
        switch lit {
        case .none: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        }
    }

    init(json: JSONValue) {
        switch json {
        case .null: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .list(a.map { Value(json: $0) })
        case .object(let o): self = .dict(o.map { ($0.0, Value(json: $0.1)) })
        }
    }

    var isUndefined: Bool { if case .undefined = self { return true }; return false }
    var isNone: Bool { if case .none = self { return true }; return false }

    /// Python's type name, for error messages.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list(let l): return l.isTuple ? "tuple" : "list"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .macro: return "Macro"
        case .builtin: return "builtin_function_or_method"
        case .loop: return "LoopContext"
        }
    }

    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let l): return !l.items.isEmpty
        case .dict(let d): return d.count > 0
        default: return true
        }
    }

    /// Numeric view (bool counts as int, as in Python).
    var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }
    var numberValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .bool(let b): return b ? 1 : 0
        case .double(let d): return d
        default: return nil
        }
    }

    /// Python `str(x)`; undefined renders as "".
    var str: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return Value.pyFloat(d)
        default: return repr
        }
    }

    /// Python `repr(x)`.
    var repr: String {
        switch self {
        case .string(let s): return Value.pyReprString(s)
        case .list(let l):
            let inner = l.items.map { $0.repr }.joined(separator: ", ")
            if l.isTuple { return l.items.count == 1 ? "(\(inner),)" : "(\(inner))" }
            return "[\(inner)]"
        case .dict(let d):
            return "{" + d.pairs.map { Value.pyReprString($0.0) + ": " + $0.1.repr }.joined(separator: ", ") + "}"
        case .namespace(let d):
            return "<Namespace {" + d.pairs.map { Value.pyReprString($0.0) + ": " + $0.1.repr }.joined(separator: ", ") + "}>"
        case .macro(let m): return "<Macro '\(m.name)'>"
        case .builtin(let b): return "<built-in function \(b.name)>"
        case .loop: return "<LoopContext>"
        case .undefined: return "Undefined"
        default: return str
        }
    }

    static func pyFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d > 0 ? "inf" : "-inf" }
        return JSONValue.formatDouble(d)
    }

    static func pyReprString(_ s: String) -> String {
        let quote: Character = (s.contains("'") && !s.contains("\"")) ? "\"" : "'"
        var out = String(quote)
        for u in s.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(u) == quote { out += "\\" + String(quote) }
                else if u.value < 0x20 || u.value == 0x7F { out += String(format: "\\x%02x", u.value) }
                else { out.unicodeScalars.append(u) }
            }
        }
        out.append(quote)
        return out
    }

    /// Python `==`.
    static func equal(_ a: Value, _ b: Value) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let x), .string(let y)): return x.unicodeScalars.elementsEqual(y.unicodeScalars)
        case (.list(let x), .list(let y)):
            return x.isTuple == y.isTuple && x.items.count == y.items.count && zip(x.items, y.items).allSatisfy { equal($0, $1) }
        case (.dict(let x), .dict(let y)):
            return x.count == y.count && x.pairs.allSatisfy { k, v in y[k].map { equal(v, $0) } ?? false }
        case (.namespace(let x), .namespace(let y)): return x === y
        case (.macro(let x), .macro(let y)): return x === y
        case (.builtin(let x), .builtin(let y)): return x === y
        default:
            if let x = a.intValue, let y = b.intValue { return x == y }
            if let x = a.numberValue, let y = b.numberValue { return x == y }
            return false
        }
    }

    /// Python ordering (`<`); nil when the types are not orderable.
    static func less(_ a: Value, _ b: Value) -> Bool? {
        switch (a, b) {
        case (.string(let x), .string(let y)): return x.unicodeScalars.lexicographicallyPrecedes(y.unicodeScalars)
        case (.list(let x), .list(let y)):
            for (p, q) in zip(x.items, y.items) where !equal(p, q) { return less(p, q) }
            return x.items.count < y.items.count
        default:
            if let x = a.intValue, let y = b.intValue { return x < y }
            if let x = a.numberValue, let y = b.numberValue { return x < y }
            return nil
        }
    }

    /// Conversion for `tojson`.
    func toJSON() throws -> JSONValue {
        switch self {
        case .none: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        case .string(let s): return .string(s)
        case .list(let l): return .array(try l.items.map { try $0.toJSON() })
        case .dict(let d): return .object(try d.pairs.map { ($0.0, try $0.1.toJSON()) })
        default: throw TemplateError.runtime("Object of type \(typeName) is not JSON serializable")
        }
    }
}

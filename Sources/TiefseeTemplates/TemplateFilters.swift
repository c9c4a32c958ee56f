import Foundation
import TiefseeFormats

extension Interpreter {
    static let filterNames: Set<String> = [
        "abs", "attr", "batch", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
        "format", "int", "indent", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject",
        "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum", "title",
        "tojson", "trim", "unique", "upper", "wordcount",
    ]
    static let stringMethods: Set<String> = [
        "startswith", "endswith", "split", "rsplit", "strip", "lstrip", "rstrip", "replace", "upper", "lower", "title",
        "capitalize", "find", "rfind", "count", "join", "splitlines", "isdigit", "isalpha", "isalnum", "isspace",
        "isupper", "islower", "format", "index",
    ]
    static let listMethods: Set<String> = ["append", "index", "count"]

    // MARK: string helpers (Python semantics on Unicode scalars)

    static func find(_ h: [Unicode.Scalar], _ n: [Unicode.Scalar], from: Int) -> Int? {
        guard n.count <= h.count else { return nil }
        if n.isEmpty { return from <= h.count ? from : nil }
        var i = max(0, from)
        while i + n.count <= h.count {
            if h[i] == n[0] {
                var ok = true
                for k in 1..<n.count where h[i + k] != n[k] { ok = false; break }
                if ok { return i }
            }
            i += 1
        }
        return nil
    }

    static func rfind(_ h: [Unicode.Scalar], _ n: [Unicode.Scalar]) -> Int? {
        guard n.count <= h.count else { return nil }
        var i = h.count - n.count
        while i >= 0 {
            if Array(h[i..<i + n.count]) == n { return i }
            i -= 1
        }
        return nil
    }

    static func isPySpace(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    static func strip(_ s: String, _ chars: Value?, left: Bool, right: Bool) -> String {
        let u = Array(s.unicodeScalars)
        let set: Set<Unicode.Scalar>? = {
            guard let chars, !chars.isNone, !chars.isUndefined else { return nil }
            return Set(chars.str.unicodeScalars)
        }()
        func drop(_ c: Unicode.Scalar) -> Bool { set.map { $0.contains(c) } ?? isPySpace(c) }
        var a = 0, b = u.count
        if left { while a < b, drop(u[a]) { a += 1 } }
        if right { while b > a, drop(u[b - 1]) { b -= 1 } }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: u[a..<b])
        return String(out)
    }

    static func str(_ u: ArraySlice<Unicode.Scalar>) -> String {
        var out = String.UnicodeScalarView()
        out.append(contentsOf: u)
        return String(out)
    }

    static func split(_ s: String, _ sep: Value?, _ maxsplit: Int, fromRight: Bool) throws -> [String] {
        let u = Array(s.unicodeScalars)
        var parts: [String] = []
        if let sep, !sep.isNone {
            let n = Array(sep.str.unicodeScalars)
            guard !n.isEmpty else { throw TemplateError.runtime("empty separator") }
            if !fromRight {
                var start = 0
                while maxsplit < 0 || parts.count < maxsplit, let i = find(u, n, from: start) {
                    parts.append(str(u[start..<i])); start = i + n.count
                }
                parts.append(str(u[start...]))
            } else {
                var end = u.count
                while maxsplit < 0 || parts.count < maxsplit, let i = rfind(Array(u[0..<end]), n) {
                    parts.append(str(u[(i + n.count)..<end])); end = i
                }
                parts.append(str(u[0..<end]))
                parts.reverse()
            }
            return parts
        }
        // Whitespace splitting: runs of whitespace, no empty strings.
        if !fromRight {
            var i = 0
            while i < u.count {
                while i < u.count, isPySpace(u[i]) { i += 1 }
                if i >= u.count { break }
                if maxsplit >= 0 && parts.count == maxsplit { parts.append(str(u[i...])); break }
                let st = i
                while i < u.count, !isPySpace(u[i]) { i += 1 }
                parts.append(str(u[st..<i]))
            }
        } else {
            var i = u.count
            while i > 0 {
                while i > 0, isPySpace(u[i - 1]) { i -= 1 }
                if i == 0 { break }
                if maxsplit >= 0 && parts.count == maxsplit { parts.append(str(u[0..<i])); break }
                let e = i
                while i > 0, !isPySpace(u[i - 1]) { i -= 1 }
                parts.append(str(u[i..<e]))
            }
            parts.reverse()
        }
        return parts
    }

    static func replace(_ s: String, _ old: String, _ new: String, count: Int) -> String {
        let u = Array(s.unicodeScalars), o = Array(old.unicodeScalars)
        var out = String.UnicodeScalarView()
        let nv = new.unicodeScalars
        var done = 0
        if o.isEmpty {
            for (k, c) in u.enumerated() {
                if count < 0 || done < count { out.append(contentsOf: nv); done += 1 }
                out.append(c)
                _ = k
            }
            if count < 0 || done < count { out.append(contentsOf: nv) }
            return String(out)
        }
        var i = 0
        while i < u.count {
            if (count < 0 || done < count), let j = find(u, o, from: i) {
                out.append(contentsOf: u[i..<j]); out.append(contentsOf: nv)
                i = j + o.count; done += 1
            } else {
                out.append(contentsOf: u[i...]); break
            }
        }
        return String(out)
    }

    static func pyTitle(_ s: String) -> String {
        var out = ""
        var prevCased = false
        for u in s.unicodeScalars {
            let cased = u.properties.isCased
            if cased {
                out += prevCased ? String(u).lowercased() : String(u).uppercased()
            } else {
                out.unicodeScalars.append(u)
            }
            prevCased = cased
        }
        return out
    }

    static func capitalize(_ s: String) -> String {
        guard let f = s.unicodeScalars.first else { return s }
        return String(f).uppercased() + String(s.unicodeScalars.dropFirst()).lowercased()
    }

    /// Jinja's `title` filter: capitalise each word, words split at whitespace and `-([{<`.
    static func jinjaTitle(_ s: String) -> String {
        var out = ""
        var word = String.UnicodeScalarView()
        func flush() {
            if !word.isEmpty { out += capitalizeFirstOnly(String(word)); word = String.UnicodeScalarView() }
        }
        for u in s.unicodeScalars {
            if isPySpace(u) || "-([{<".unicodeScalars.contains(u) { flush(); out.unicodeScalars.append(u) }
            else { word.append(u) }
        }
        flush()
        return out
    }
    private static func capitalizeFirstOnly(_ w: String) -> String {
        guard let f = w.unicodeScalars.first else { return w }
        return String(f).uppercased() + String(w.unicodeScalars.dropFirst()).lowercased()
    }

    static func splitlines(_ s: String) -> [String] {
        let u = Array(s.unicodeScalars)
        var lines: [String] = []
        var st = 0, i = 0
        while i < u.count {
            let c = u[i].value
            if c == 0x0D && i + 1 < u.count && u[i + 1].value == 0x0A {
                lines.append(str(u[st..<i])); i += 2; st = i; continue
            }
            if [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029].contains(c) {
                lines.append(str(u[st..<i])); i += 1; st = i; continue
            }
            i += 1
        }
        if st < u.count { lines.append(str(u[st...])) }
        return lines
    }

    /// Python `str % args` for %s %r %d %i %f %x %% (with simple flags/width/precision).
    static func percentFormat(_ f: String, _ args: Value) throws -> String {
        var vals: [Value]
        if case .list(let l) = args, l.isTuple { vals = l.items } else { vals = [args] }
        var mapping: DictBox? = nil
        if case .dict(let d) = args { mapping = d }
        var out = ""
        let u = Array(f.unicodeScalars)
        var i = 0
        var used = 0
        while i < u.count {
            guard u[i] == "%" else { out.unicodeScalars.append(u[i]); i += 1; continue }
            i += 1
            guard i < u.count else { throw TemplateError.runtime("incomplete format") }
            if u[i] == "%" { out += "%"; i += 1; continue }
            var key: String? = nil
            if u[i] == "(" {
                var j = i + 1
                while j < u.count, u[j] != ")" { j += 1 }
                key = str(u[(i + 1)..<j]); i = j + 1
            }
            var spec = ""
            while i < u.count, "-+ #0123456789.".unicodeScalars.contains(u[i]) { spec.unicodeScalars.append(u[i]); i += 1 }
            guard i < u.count else { throw TemplateError.runtime("incomplete format") }
            let conv = u[i]; i += 1
            let v: Value
            if let key {
                guard let m = mapping, let x = m[key] else { throw TemplateError.runtime("format requires a mapping") }
                v = x
            } else {
                guard used < vals.count else { throw TemplateError.runtime("not enough arguments for format string") }
                v = vals[used]; used += 1
            }
            var body: String
            switch conv {
            case "s": body = v.str
            case "r": body = v.repr
            case "d", "i":
                guard let n = v.numberValue else { throw TemplateError.runtime("%d format: a real number is required, not \(v.typeName)") }
                body = String(Int(n.rounded(.towardZero)))
            case "f", "F", "e", "g", "x", "X", "o":
                let cs = "%" + spec + String(conv)
                if "xXo".unicodeScalars.contains(conv) {
                    guard let n = v.intValue else { throw TemplateError.runtime("%\(conv) format: an integer is required") }
                    return out + String(format: cs, n) + (try percentFormat(str(u[i...]), .tuple(Array(vals.dropFirst(used)))))
                }
                guard let n = v.numberValue else { throw TemplateError.runtime("must be real number, not \(v.typeName)") }
                out += String(format: cs, n)
                continue
            default: throw TemplateError.runtime("unsupported format character '\(conv)'")
            }
            // width / left-justify for %s %d
            let left = spec.hasPrefix("-")
            let digits = spec.filter { $0.isNumber }
            if let w = Int(digits.split(separator: ".").first ?? ""), body.unicodeScalars.count < w {
                let pad = String(repeating: " ", count: w - body.unicodeScalars.count)
                body = left ? body + pad : pad + body
            }
            out += body
        }
        return out
    }

    /// Python `str.format` with `{}`, `{0}`, `{name}` fields (format specs are ignored except none).
    static func strFormat(_ f: String, _ args: CallArgs) throws -> String {
        var out = ""
        let u = Array(f.unicodeScalars)
        var i = 0, auto = 0
        while i < u.count {
            let c = u[i]
            if c == "{" {
                if i + 1 < u.count, u[i + 1] == "{" { out += "{"; i += 2; continue }
                var j = i + 1
                while j < u.count, u[j] != "}" { j += 1 }
                guard j < u.count else { throw TemplateError.runtime("Single '{' encountered in format string") }
                var field = str(u[(i + 1)..<j])
                if let colon = field.firstIndex(of: ":") { field = String(field[..<colon]) }
                let v: Value?
                if field.isEmpty { v = args.pos.indices.contains(auto) ? args.pos[auto] : nil; auto += 1 }
                else if let n = Int(field) { v = args.pos.indices.contains(n) ? args.pos[n] : nil }
                else { v = args.kw.last(where: { $0.0 == field })?.1 }
                guard let v else { throw TemplateError.runtime("format field '\(field)' has no value") }
                out += v.str
                i = j + 1
            } else if c == "}" {
                if i + 1 < u.count, u[i + 1] == "}" { out += "}"; i += 2; continue }
                throw TemplateError.runtime("Single '}' encountered in format string")
            } else {
                out.unicodeScalars.append(c); i += 1
            }
        }
        return out
    }

    // MARK: methods

    /// Calls a method of a str/list/dict value; nil when `obj` has no such method.
    func callMethod(_ obj: Value, _ name: String, _ a: CallArgs) throws -> Value? {
        switch obj {
        case .string(let s):
            guard Interpreter.stringMethods.contains(name) else { return nil }
            return try stringMethod(s, name, a)
        case .list(let l):
            switch name {
            case "append":
                guard !l.isTuple else { return nil }
                guard let v = a.get(0, "object") else { throw TemplateError.runtime("append() takes exactly one argument") }
                l.items.append(v)
                return Value.none
            case "index":
                guard let v = a.get(0, "value"), let i = l.items.firstIndex(where: { Value.equal($0, v) }) else {
                    throw TemplateError.runtime("value is not in list")
                }
                return .int(i)
            case "count":
                guard let v = a.get(0, "value") else { throw TemplateError.runtime("count() takes exactly one argument") }
                return .int(l.items.filter { Value.equal($0, v) }.count)
            default: return nil
            }
        case .dict(let d):
            switch name {
            case "items": return .list(d.pairs.map { .tuple([.string($0.0), $0.1]) })
            case "keys": return .list(d.keys.map { .string($0) })
            case "values": return .list(d.values)
            case "get":
                guard let k = a.get(0, "key") else { throw TemplateError.runtime("get expected at least 1 argument, got 0") }
                if case .string(let ks) = k, let v = d[ks] { return v }
                return a.get(1, "default") ?? Value.none
            case "copy": return .dict(d.pairs)
            default: return nil
            }
        case .loop(let l):
            if name == "cycle", let c = loopAttr(l, "cycle") { return try call(c, a) }
            return nil
        default:
            return nil
        }
    }

    private func stringMethod(_ s: String, _ name: String, _ a: CallArgs) throws -> Value {
        func argStr(_ i: Int, _ n: String) throws -> String {
            guard let v = a.get(i, n) else { throw TemplateError.runtime("\(name)() missing argument '\(n)'") }
            guard case .string(let x) = v else { throw TemplateError.runtime("\(name)() argument must be str, not \(v.typeName)") }
            return x
        }
        func affix(_ check: (String) -> Bool) throws -> Value {
            guard let v = a.get(0, "prefix") ?? a.get(0, "suffix") else { throw TemplateError.runtime("\(name)() takes at least 1 argument") }
            switch v {
            case .string(let p): return .bool(check(p))
            case .list(let l) where l.isTuple:
                return .bool(l.items.contains { if case .string(let p) = $0 { return check(p) }; return false })
            default: throw TemplateError.runtime("\(name) first arg must be str or a tuple of str, not \(v.typeName)")
            }
        }
        let u = Array(s.unicodeScalars)
        switch name {
        case "startswith": return try affix { p in u.starts(with: p.unicodeScalars) }
        case "endswith": return try affix { p in u.reversed().starts(with: p.unicodeScalars.reversed()) }
        case "split", "rsplit":
            let sep = a.get(0, "sep")
            let maxsplit = a.get(1, "maxsplit")?.intValue ?? -1
            return .list(try Interpreter.split(s, sep, maxsplit, fromRight: name == "rsplit").map { .string($0) })
        case "strip": return .string(Interpreter.strip(s, a.get(0, "chars"), left: true, right: true))
        case "lstrip": return .string(Interpreter.strip(s, a.get(0, "chars"), left: true, right: false))
        case "rstrip": return .string(Interpreter.strip(s, a.get(0, "chars"), left: false, right: true))
        case "replace":
            return .string(Interpreter.replace(s, try argStr(0, "old"), try argStr(1, "new"), count: a.get(2, "count")?.intValue ?? -1))
        case "upper": return .string(s.uppercased())
        case "lower": return .string(s.lowercased())
        case "title": return .string(Interpreter.pyTitle(s))
        case "capitalize": return .string(Interpreter.capitalize(s))
        case "find", "index":
            let start = a.get(1, "start")?.intValue ?? 0
            let r = Interpreter.find(u, Array(try argStr(0, "sub").unicodeScalars), from: start < 0 ? max(0, u.count + start) : start)
            if name == "index" && r == nil { throw TemplateError.runtime("substring not found") }
            return .int(r ?? -1)
        case "rfind": return .int(Interpreter.rfind(u, Array(try argStr(0, "sub").unicodeScalars)) ?? -1)
        case "count":
            let n = Array(try argStr(0, "sub").unicodeScalars)
            if n.isEmpty { return .int(u.count + 1) }
            var c = 0, i = 0
            while let j = Interpreter.find(u, n, from: i) { c += 1; i = j + n.count }
            return .int(c)
        case "join":
            guard let v = a.get(0, "iterable") else { throw TemplateError.runtime("join() takes exactly one argument") }
            let items = try iterate(v)
            var parts: [String] = []
            for x in items {
                guard case .string(let p) = x else { throw TemplateError.runtime("sequence item: expected str instance, \(x.typeName) found") }
                parts.append(p)
            }
            return .string(parts.joined(separator: s))
        case "splitlines": return .list(Interpreter.splitlines(s).map { .string($0) })
        case "isdigit": return .bool(!u.isEmpty && u.allSatisfy { $0.properties.numericType == .digit || $0.properties.numericType == .decimal })
        case "isalpha": return .bool(!u.isEmpty && u.allSatisfy { $0.properties.isAlphabetic })
        case "isalnum": return .bool(!u.isEmpty && u.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
        case "isspace": return .bool(!u.isEmpty && u.allSatisfy { Interpreter.isPySpace($0) })
        case "isupper": return .bool(s.uppercased() == s && s.lowercased() != s)
        case "islower": return .bool(s.lowercased() == s && s.uppercased() != s)
        case "format": return .string(try Interpreter.strFormat(s, a))
        default: throw TemplateError.runtime("'str' object has no attribute '\(name)'")
        }
    }

    // MARK: filters

    /// Resolves `attribute` arguments like "a.b" or "0" the way Jinja's make_attrgetter does.
    func attrPath(_ v: Value, _ path: Value) throws -> Value {
        if let i = path.intValue { return try getItem(v, .int(i)) }
        var cur = v
        for part in path.str.split(separator: ".", omittingEmptySubsequences: false) {
            let p = String(part)
            cur = try getItem(cur, Int(p).map { .int($0) } ?? .string(p))
        }
        return cur
    }

    func applyFilter(_ name: String, _ v: Value, _ a: CallArgs) throws -> Value {
        func listOf(_ v: Value) throws -> [Value] { try iterate(v) }
        func sortKey(_ x: Value, caseSensitive: Bool) -> Value {
            if !caseSensitive, case .string(let s) = x { return .string(s.lowercased()) }
            return x
        }
        func stableSort(_ items: [Value], key: (Value) throws -> Value, reverse: Bool) throws -> [Value] {
            let keyed = try items.enumerated().map { (i: $0.offset, k: try key($0.element), v: $0.element) }
            var err: TemplateError? = nil
            let sorted = keyed.sorted { x, y in
                if let lt = Value.less(x.k, y.k) {
                    if lt { return !reverse }
                    if let gt = Value.less(y.k, x.k), gt { return reverse }
                    return x.i < y.i
                }
                err = TemplateError.runtime("'<' not supported between instances of '\(x.k.typeName)' and '\(y.k.typeName)'")
                return x.i < y.i
            }
            if let err { throw err }
            return sorted.map { $0.v }
        }
        switch name {
        case "safe": return v
        case "string": return .string(v.str)
        case "trim": return .string(Interpreter.strip(v.str, a.get(0, "chars"), left: true, right: true))
        case "upper": return .string(v.str.uppercased())
        case "lower": return .string(v.str.lowercased())
        case "title": return .string(Interpreter.jinjaTitle(v.str))
        case "capitalize": return .string(Interpreter.capitalize(v.str))
        case "replace":
            guard let old = a.get(0, "old"), let new = a.get(1, "new") else { throw TemplateError.runtime("replace needs old and new") }
            return .string(Interpreter.replace(v.str, old.str, new.str, count: a.get(2, "count")?.intValue ?? -1))
        case "length", "count":
            switch v {
            case .string(let s): return .int(s.unicodeScalars.count)
            case .list(let l): return .int(l.items.count)
            case .dict(let d): return .int(d.count)
            case .undefined: return .int(0)
            default: throw TemplateError.runtime("object of type '\(v.typeName)' has no len()")
            }
        case "default", "d":
            let def = a.get(0, "default_value") ?? .string("")
            let boolean = a.get(1, "boolean")?.truthy ?? false
            if v.isUndefined || (boolean && !v.truthy) { return def }
            return v
        case "tojson":
            let ensureASCII = a.get(0, "ensure_ascii")?.truthy ?? false
            var indent: Int? = nil
            var indentStr: String? = nil
            if let i = a.get(1, "indent"), !i.isNone {
                if let n = i.intValue { indent = n } else if case .string(let s) = i { indentStr = s }
            }
            var seps: (String, String) = indent == nil && indentStr == nil ? (", ", ": ") : (",", ": ")
            if let s = a.get(2, "separators"), !s.isNone {
                let parts = try iterate(s)
                guard parts.count == 2 else { throw TemplateError.runtime("separators must be a pair") }
                seps = (parts[0].str, parts[1].str)
            }
            let sortKeys = a.get(3, "sort_keys")?.truthy ?? false
            var j = try v.toJSON()
            if sortKeys { j = Interpreter.sortKeys(j) }
            if let indentStr { return .string(Interpreter.jsonWithIndentString(j, indentStr, seps, ensureASCII)) }
            if let n = indent, n < 0 { return .string(Interpreter.jsonWithIndentString(j, "", seps, ensureASCII)) }
            return .string(j.serialized(asciiOnly: ensureASCII, separators: seps, indent: indent))
        case "join":
            let sep = a.get(0, "d")?.str ?? ""
            var items = try listOf(v)
            if let attr = a.get(1, "attribute") { items = try items.map { try attrPath($0, attr) } }
            return .string(items.map { $0.str }.joined(separator: sep))
        case "first":
            let items = try listOf(v)
            return items.first ?? .undefined("No first item, sequence was empty.")
        case "last":
            let items = try listOf(v)
            return items.last ?? .undefined("No last item, sequence was empty.")
        case "list": return .list(try listOf(v))
        case "items":
            switch v {
            case .dict(let d): return .list(d.pairs.map { .tuple([.string($0.0), $0.1]) })
            case .undefined: return .list([])
            default: throw TemplateError.runtime("Can only get item pairs from a mapping.")
            }
        case "reverse":
            if case .string(let s) = v { return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed()))) }
            return .list(try listOf(v).reversed())
        case "int":
            let def = a.get(0, "default") ?? .int(0)
            let base = a.get(1, "base")?.intValue ?? 10
            switch v {
            case .int: return v
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d): return d.isFinite ? .int(Int(d.rounded(.towardZero))) : def
            case .string(let s):
                let t = Interpreter.strip(s, nil, left: true, right: true).replacingOccurrences(of: "_", with: "")
                if let i = Int(t, radix: base) { return .int(i) }
                if base == 10, let d = Double(t), d.isFinite { return .int(Int(d.rounded(.towardZero))) }
                return def
            default: return def
            }
        case "float":
            let def = a.get(0, "default") ?? .double(0)
            switch v {
            case .double: return v
            case .int, .bool: return .double(v.numberValue!)
            case .string(let s):
                if let d = Double(Interpreter.strip(s, nil, left: true, right: true)) { return .double(d) }
                return def
            default: return def
            }
        case "abs":
            switch v {
            case .int(let i): return .int(abs(i))
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d): return .double(abs(d))
            default: throw TemplateError.runtime("bad operand type for abs(): '\(v.typeName)'")
            }
        case "round":
            guard let x = v.numberValue else { throw TemplateError.runtime("round needs a number") }
            let precision = a.get(0, "precision")?.intValue ?? 0
            let method = a.get(1, "method")?.str ?? "common"
            let m = pow(10.0, Double(precision))
            switch method {
            case "common": return .double((x * m).rounded(.toNearestOrEven) / m)
            case "ceil": return .double((x * m).rounded(.up) / m)
            case "floor": return .double((x * m).rounded(.down) / m)
            default: throw TemplateError.runtime("method must be common, ceil or floor")
            }
        case "map":
            let items = try listOf(v)
            if let attr = a.kw.last(where: { $0.0 == "attribute" })?.1 {
                let def = a.kw.last(where: { $0.0 == "default" })?.1
                return .list(try items.map { x in
                    let r = try attrPath(x, attr)
                    if r.isUndefined, let def { return def }
                    return r
                })
            }
            guard let f = a.pos.first else { return .list(items) }
            let rest = CallArgs(pos: Array(a.pos.dropFirst()), kw: a.kw)
            return .list(try items.map { try applyFilter(f.str, $0, rest) })
        case "select", "reject", "selectattr", "rejectattr":
            let items = try listOf(v)
            let byAttr = name.hasSuffix("attr")
            let attr = byAttr ? a.pos.first : nil
            if byAttr && attr == nil { throw TemplateError.runtime("\(name) needs an attribute name") }
            let testIdx = byAttr ? 1 : 0
            let testName = a.pos.count > testIdx ? a.pos[testIdx].str : nil
            let testArgs = CallArgs(pos: Array(a.pos.dropFirst(testIdx + 1)), kw: a.kw)
            let want = name.hasPrefix("select")
            return .list(try items.filter { x in
                let subject = try attr.map { try attrPath(x, $0) } ?? x
                let ok = try testName.map { try applyTest($0, subject, testArgs) } ?? subject.truthy
                return ok == want
            })
        case "sort":
            let reverse = a.get(0, "reverse")?.truthy ?? false
            let cs = a.get(1, "case_sensitive")?.truthy ?? false
            let attr = a.get(2, "attribute")
            return .list(try stableSort(try listOf(v), key: { x in
                sortKey(try attr.map { try self.attrPath(x, $0) } ?? x, caseSensitive: cs)
            }, reverse: reverse))
        case "dictsort":
            guard case .dict(let d) = v else { throw TemplateError.runtime("dictsort requires a mapping") }
            let cs = a.get(0, "case_sensitive")?.truthy ?? false
            let by = a.get(1, "by")?.str ?? "key"
            let reverse = a.get(2, "reverse")?.truthy ?? false
            let pairs: [Value] = d.pairs.map { .tuple([.string($0.0), $0.1]) }
            return .list(try stableSort(pairs, key: { p in
                guard case .list(let t) = p else { return p }
                return sortKey(by == "value" ? t.items[1] : t.items[0], caseSensitive: cs)
            }, reverse: reverse))
        case "unique":
            let cs = a.get(0, "case_sensitive")?.truthy ?? false
            let attr = a.get(1, "attribute")
            var seen: [Value] = []
            var out: [Value] = []
            for x in try listOf(v) {
                let k = sortKey(try attr.map { try attrPath(x, $0) } ?? x, caseSensitive: cs)
                if !seen.contains(where: { Value.equal($0, k) }) { seen.append(k); out.append(x) }
            }
            return .list(out)
        case "min", "max":
            let cs = a.get(0, "case_sensitive")?.truthy ?? false
            let attr = a.get(1, "attribute")
            let sorted = try stableSort(try listOf(v), key: { x in
                sortKey(try attr.map { try self.attrPath(x, $0) } ?? x, caseSensitive: cs)
            }, reverse: false)
            guard let r = name == "min" ? sorted.first : sorted.last else { return .undefined("No aggregated item, sequence was empty.") }
            return r
        case "sum":
            let attr = a.get(0, "attribute")
            var total = a.get(1, "start") ?? .int(0)
            for x in try listOf(v) { total = try binary("+", total, try attr.map { try attrPath(x, $0) } ?? x) }
            return total
        case "indent":
            var widthS = "    "
            if let w = a.get(0, "width") { widthS = w.intValue.map { String(repeating: " ", count: $0) } ?? w.str }
            let first = a.get(1, "first")?.truthy ?? false
            let blank = a.get(2, "blank")?.truthy ?? false
            let lines = Interpreter.splitlines(v.str + "\n")
            var rv: String
            if blank {
                rv = lines.joined(separator: "\n" + widthS)
            } else {
                var ls = lines
                rv = ls.isEmpty ? "" : ls.removeFirst()
                if !ls.isEmpty { rv += "\n" + ls.map { $0.isEmpty ? $0 : widthS + $0 }.joined(separator: "\n") }
            }
            if first { rv = widthS + rv }
            return .string(rv)
        case "wordcount":
            var n = 0, inWord = false
            for u in v.str.unicodeScalars {
                let w = u.properties.isAlphabetic || u.properties.numericType != nil || u == "_"
                if w && !inWord { n += 1 }
                inWord = w
            }
            return .int(n)
        case "batch":
            guard let size = a.get(0, "linecount")?.intValue, size > 0 else { throw TemplateError.runtime("batch needs a positive size") }
            let fill = a.get(1, "fill_with")
            var out: [Value] = [], cur: [Value] = []
            for x in try listOf(v) {
                cur.append(x)
                if cur.count == size { out.append(.list(cur)); cur = [] }
            }
            if !cur.isEmpty {
                if let fill, !fill.isNone { while cur.count < size { cur.append(fill) } }
                out.append(.list(cur))
            }
            return .list(out)
        case "attr":
            guard let n = a.get(0, "name") else { throw TemplateError.runtime("attr needs a name") }
            return try getAttr(v, n.str)
        case "escape", "e":
            var out = ""
            for c in v.str.unicodeScalars {
                switch c {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\"": out += "&#34;"
                case "'": out += "&#39;"
                default: out.unicodeScalars.append(c)
                }
            }
            return .string(out)
        case "format":
            if !a.kw.isEmpty { return .string(try Interpreter.percentFormat(v.str, .dict(a.kw))) }
            return .string(try Interpreter.percentFormat(v.str, .tuple(a.pos)))
        default:
            throw TemplateError.runtime("no filter named '\(name)'")
        }
    }

    static func sortKeys(_ j: JSONValue) -> JSONValue {
        switch j {
        case .array(let a): return .array(a.map { sortKeys($0) })
        case .object(let o):
            return .object(o.map { ($0.0, sortKeys($0.1)) }.sorted { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars) })
        default: return j
        }
    }

    /// json.dumps with a string indent (or a negative int, which Python treats as "").
    static func jsonWithIndentString(_ j: JSONValue, _ ind: String, _ seps: (String, String), _ ascii: Bool) -> String {
        func w(_ v: JSONValue, _ level: Int, _ out: inout String) {
            switch v {
            case .array(let a) where !a.isEmpty:
                out += "["
                for (i, x) in a.enumerated() {
                    if i > 0 { out += seps.0 }
                    out += "\n" + String(repeating: ind, count: level + 1)
                    w(x, level + 1, &out)
                }
                out += "\n" + String(repeating: ind, count: level) + "]"
            case .object(let o) where !o.isEmpty:
                out += "{"
                for (i, (k, x)) in o.enumerated() {
                    if i > 0 { out += seps.0 }
                    out += "\n" + String(repeating: ind, count: level + 1)
                    JSONValue.quote(k, asciiOnly: ascii, into: &out)
                    out += seps.1
                    w(x, level + 1, &out)
                }
                out += "\n" + String(repeating: ind, count: level) + "}"
            default:
                out += v.serialized(asciiOnly: ascii)
            }
        }
        var out = ""
        w(j, 0, &out)
        return out
    }
}

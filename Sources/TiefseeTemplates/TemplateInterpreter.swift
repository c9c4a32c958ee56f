import Foundation

final class Scope {
    var vars: [String: Value] = [:]
    let parent: Scope?
    init(parent: Scope?) { self.parent = parent }
    func lookup(_ n: String) -> Value? {
        var s: Scope? = self
        while let c = s {
            if let v = c.vars[n] { return v }
            s = c.parent
        }
        return nil
    }
}

enum Flow { case normal, breakLoop, continueLoop }

/// Positional and keyword arguments of a call, with Python-style binding helpers.
struct CallArgs {
    var pos: [Value]
    var kw: [(String, Value)]
    /// The argument at positional index `i` or named `name`.
    func get(_ i: Int, _ name: String) -> Value? {
        if i < pos.count { return pos[i] }
        return kw.last(where: { $0.0 == name })?.1
    }
}

/// Tree-walking evaluator with Jinja2 (sandboxed, as transformers configures it) semantics.
final class Interpreter {
    static let maxRange = 100_000
    static let maxDepth = 64
    let root: Scope
    private var depth = 0

    init(globals: [String: Value]) {
        root = Scope(parent: nil)
        root.vars = Interpreter.builtins()
        for (k, v) in globals { root.vars[k] = v }
    }

    func render(_ body: [Stmt]) throws -> String {
        var out = ""
        let scope = Scope(parent: root)
        _ = try exec(body, scope, &out)
        return out
    }

    // MARK: statements

    func exec(_ stmts: [Stmt], _ scope: Scope, _ out: inout String) throws -> Flow {
        for st in stmts {
            do {
                let f = try execOne(st, scope, &out)
                if f != .normal { return f }
            } catch var e as TemplateError where e.line == 0 {
                e.line = st.line
                throw e
            }
        }
        return .normal
    }

    private func execOne(_ st: Stmt, _ scope: Scope, _ out: inout String) throws -> Flow {
        switch st.kind {
        case .text(let s):
            out += s
        case .output(let e):
            out += try eval(e, scope).str
        case .ifS(let branches, let elseBody):
            for (test, body) in branches where try eval(test, scope).truthy {
                return try exec(body, scope, &out)
            }
            if let eb = elseBody { return try exec(eb, scope, &out) }
        case .forS(let target, let iterE, let filter, let body, let elseBody):
            var items = try iterate(try eval(iterE, scope))
            if let filter {
                items = try items.filter { item in
                    let s = Scope(parent: scope)
                    try assign(target, item, s)
                    return try eval(filter, s).truthy
                }
            }
            if items.isEmpty {
                if let eb = elseBody { return try exec(eb, scope, &out) }
                return .normal
            }
            let loop = LoopBox(items)
            for (i, item) in items.enumerated() {
                let s = Scope(parent: scope)
                loop.index0 = i
                s.vars["loop"] = .loop(loop)
                try assign(target, item, s)
                if try exec(body, s, &out) == .breakLoop { break }
            }
        case .set(let target, let e):
            try assign(target, try eval(e, scope), scope)
        case .setBlock(let target, let filters, let body):
            var s = ""
            _ = try exec(body, scope, &s)
            try assign(target, try applyFilters(filters, .string(s), scope), scope)
        case .macro(let name, let params, let body):
            scope.vars[name] = .macro(MacroBox(name: name, params: params, body: body, closure: scope))
        case .callBlock(let callE, let params, let body):
            let caller = Value.macro(MacroBox(name: "caller", params: params, body: body, closure: scope))
            guard case .call(let callee, let args) = callE.kind else { break }
            out += try evalCall(callee, args, scope, extra: [("caller", caller)]).str
        case .filterBlock(let filters, let body):
            var s = ""
            _ = try exec(body, scope, &s)
            out += try applyFilters(filters, .string(s), scope).str
        case .with(let assigns, let body):
            let s = Scope(parent: scope)
            for (t, e) in assigns { try assign(t, try eval(e, scope), s) }
            return try exec(body, s, &out)
        case .group(let body):
            return try exec(body, scope, &out)
        case .breakS: return .breakLoop
        case .continueS: return .continueLoop
        }
        return .normal
    }

    private func applyFilters(_ filters: [FilterCall], _ v: Value, _ scope: Scope) throws -> Value {
        var v = v
        for f in filters {
            do {
                v = try applyFilter(f.name, v, try evalArgs(f.args, scope))
            } catch var e as TemplateError where e.line == 0 {
                e.line = f.line; e.column = f.col
                throw e
            }
        }
        return v
    }

    func assign(_ t: Target, _ v: Value, _ scope: Scope) throws {
        switch t {
        case .name(let n):
            scope.vars[n] = v
        case .attr(let n, let a):
            guard case .namespace(let ns) = scope.lookup(n) ?? .undefined("") else {
                throw TemplateError.runtime("cannot assign attribute on non-namespace object")
            }
            if a.hasPrefix("_") { throw TemplateError.runtime("cannot store underscore-prefixed attribute '\(a)' on a namespace") }
            ns[a] = v
        case .tuple(let ts):
            let items = try iterate(v)
            guard items.count == ts.count else {
                throw TemplateError.runtime(items.count > ts.count ? "too many values to unpack (expected \(ts.count))"
                    : "not enough values to unpack (expected \(ts.count), got \(items.count))")
            }
            for (t, x) in zip(ts, items) { try assign(t, x, scope) }
        }
    }

    /// Python iteration: lists/tuples, dict keys, string characters; undefined is empty.
    func iterate(_ v: Value) throws -> [Value] {
        switch v {
        case .list(let l): return l.items
        case .dict(let d): return d.keys.map { .string($0) }
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined: return []
        case .loop(let l): return l.items
        default: throw TemplateError.runtime("'\(v.typeName)' object is not iterable")
        }
    }

    // MARK: expressions

    func eval(_ e: Expr, _ scope: Scope) throws -> Value {
        do {
            return try evalInner(e, scope)
        } catch var err as TemplateError where err.line == 0 {
            err.line = e.line; err.column = e.col
            throw err
        }
    }

    private func evalInner(_ e: Expr, _ scope: Scope) throws -> Value {
        switch e.kind {
        case .literal(let l): return Value(l)
        case .name(let n): return scope.lookup(n) ?? .undefined("'\(n)' is undefined")
        case .list(let xs): return .list(try xs.map { try eval($0, scope) })
        case .tuple(let xs): return .tuple(try xs.map { try eval($0, scope) })
        case .dict(let kvs):
            let d = DictBox()
            for (k, v) in kvs { d[try eval(k, scope).str] = try eval(v, scope) }
            return .dict(d)
        case .getattr(let o, let name): return try getAttr(try eval(o, scope), name)
        case .getitem(let o, let k): return try getItem(try eval(o, scope), try eval(k, scope))
        case .slice(let o, let a, let b, let c):
            let v = try eval(o, scope)
            func opt(_ x: Expr?) throws -> Int? {
                guard let x else { return nil }
                let r = try eval(x, scope)
                if r.isNone { return nil }
                guard let i = r.intValue else { throw TemplateError.runtime("slice indices must be integers or None") }
                return i
            }
            return try slice(v, try opt(a), try opt(b), try opt(c))
        case .call(let callee, let args): return try evalCall(callee, args, scope)
        case .filter(let o, let name, let args):
            return try applyFilter(name, try eval(o, scope), try evalArgs(args, scope))
        case .test(let o, let name, let args):
            return .bool(try applyTest(name, try eval(o, scope), try evalArgs(args, scope)))
        case .not(let x): return .bool(!(try eval(x, scope).truthy))
        case .and(let a, let b):
            let l = try eval(a, scope)
            return l.truthy ? try eval(b, scope) : l
        case .or(let a, let b):
            let l = try eval(a, scope)
            return l.truthy ? l : try eval(b, scope)
        case .neg(let x):
            let v = try eval(x, scope)
            switch v {
            case .int(let i): return .int(-i)
            case .bool(let b): return .int(b ? -1 : 0)
            case .double(let d): return .double(-d)
            case .undefined(let m): throw TemplateError.runtime(m)
            default: throw TemplateError.runtime("bad operand type for unary -: '\(v.typeName)'")
            }
        case .pos(let x):
            let v = try eval(x, scope)
            if case .undefined(let m) = v { throw TemplateError.runtime(m) }
            guard v.numberValue != nil else { throw TemplateError.runtime("bad operand type for unary +: '\(v.typeName)'") }
            return v
        case .binary(let op, let a, let b):
            return try binary(op, try eval(a, scope), try eval(b, scope))
        case .concat(let xs):
            var s = ""
            for x in xs { s += try eval(x, scope).str }
            return .string(s)
        case .compare(let first, let ops):
            var l = try eval(first, scope)
            for (op, re) in ops {
                let r = try eval(re, scope)
                if !(try compare(op, l, r)) { return .bool(false) }
                l = r
            }
            return .bool(true)
        case .cond(let then, let test, let other):
            if try eval(test, scope).truthy { return try eval(then, scope) }
            if let other { return try eval(other, scope) }
            return .undefined("the inline if-expression on line \(e.line) evaluated to false and no else section was defined")
        }
    }

    func evalArgs(_ args: [Arg], _ scope: Scope) throws -> CallArgs {
        var r = CallArgs(pos: [], kw: [])
        for a in args {
            let v = try eval(a.value, scope)
            switch a.kind {
            case .positional: r.pos.append(v)
            case .keyword(let n): r.kw.append((n, v))
            case .splat: r.pos += try iterate(v)
            case .kwsplat:
                guard case .dict(let d) = v else { throw TemplateError.runtime("argument after ** must be a mapping") }
                r.kw += d.pairs
            }
        }
        return r
    }

    func evalCall(_ callee: Expr, _ argEs: [Arg], _ scope: Scope, extra: [(String, Value)] = []) throws -> Value {
        var args = try evalArgs(argEs, scope)
        args.kw += extra
        if case .getattr(let oe, let name) = callee.kind {
            let obj = try eval(oe, scope)
            if let r = try callMethod(obj, name, args) { return r }
            return try call(try getAttr(obj, name), args)
        }
        return try call(try eval(callee, scope), args)
    }

    func call(_ f: Value, _ args: CallArgs) throws -> Value {
        switch f {
        case .macro(let m): return try callMacro(m, args)
        case .builtin(let b): return try b.fn(args.pos, args.kw)
        case .undefined(let m): throw TemplateError.runtime(m)
        default: throw TemplateError.runtime("'\(f.typeName)' object is not callable")
        }
    }

    func callMacro(_ m: MacroBox, _ args: CallArgs) throws -> Value {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Interpreter.maxDepth else { throw TemplateError.runtime("maximum macro recursion depth exceeded") }
        let s = Scope(parent: m.closure)
        var kw = args.kw
        for (i, p) in m.params.enumerated() {
            if i < args.pos.count {
                s.vars[p.name] = args.pos[i]
            } else if let k = kw.firstIndex(where: { $0.0 == p.name }) {
                s.vars[p.name] = kw[k].1
                kw.remove(at: k)
            } else if let d = p.defaultValue {
                s.vars[p.name] = try eval(d, s)
            } else {
                s.vars[p.name] = .undefined("parameter '\(p.name)' was not provided")
            }
        }
        if let k = kw.firstIndex(where: { $0.0 == "caller" }) {
            s.vars["caller"] = kw[k].1
            kw.remove(at: k)
        }
        s.vars["varargs"] = .tuple(Array(args.pos.dropFirst(m.params.count)))
        s.vars["kwargs"] = .dict(kw)
        var out = ""
        _ = try exec(m.body, s, &out)
        return .string(out)
    }

    // MARK: attribute and item access

    static let dictMethods: Set<String> = ["items", "keys", "values", "get", "copy"]
    static let unsafeDictMethods: Set<String> = ["clear", "pop", "popitem", "setdefault", "update"]

    func getAttr(_ v: Value, _ name: String) throws -> Value {
        switch v {
        case .undefined(let m): throw TemplateError.runtime(m)
        case .dict(let d):
            if Interpreter.dictMethods.contains(name) { return boundMethod(v, name) }
            if Interpreter.unsafeDictMethods.contains(name) { return .undefined("access to attribute '\(name)' of 'dict' object is unsafe.") }
            return d[name] ?? .undefined("'dict object' has no attribute '\(name)'")
        case .namespace(let d):
            return d[name] ?? .undefined("'Namespace object' has no attribute '\(name)'")
        case .loop(let l):
            return loopAttr(l, name) ?? .undefined("'LoopContext object' has no attribute '\(name)'")
        case .string:
            if Interpreter.stringMethods.contains(name) { return boundMethod(v, name) }
        case .list:
            if Interpreter.listMethods.contains(name) { return boundMethod(v, name) }
        default: break
        }
        return .undefined("'\(v.typeName) object' has no attribute '\(name)'")
    }

    private func boundMethod(_ obj: Value, _ name: String) -> Value {
        .builtin(BuiltinBox(name) { [unowned self] pos, kw in
            guard let r = try self.callMethod(obj, name, CallArgs(pos: pos, kw: kw)) else {
                throw TemplateError.runtime("'\(obj.typeName)' object has no attribute '\(name)'")
            }
            return r
        })
    }

    func loopAttr(_ l: LoopBox, _ name: String) -> Value? {
        let n = l.items.count, i = l.index0
        switch name {
        case "index": return .int(i + 1)
        case "index0": return .int(i)
        case "revindex": return .int(n - i)
        case "revindex0": return .int(n - i - 1)
        case "first": return .bool(i == 0)
        case "last": return .bool(i == n - 1)
        case "length": return .int(n)
        case "depth": return .int(1)
        case "depth0": return .int(0)
        case "previtem": return i > 0 ? l.items[i - 1] : .undefined("there is no previous item")
        case "nextitem": return i + 1 < n ? l.items[i + 1] : .undefined("there is no next item")
        case "cycle":
            return .builtin(BuiltinBox("cycle") { pos, _ in
                guard !pos.isEmpty else { throw TemplateError.runtime("no items for cycling given") }
                return pos[i % pos.count]
            })
        default: return nil
        }
    }

    func getItem(_ v: Value, _ key: Value) throws -> Value {
        switch v {
        case .undefined(let m): throw TemplateError.runtime(m)
        case .list(let l):
            if let i = key.intValue {
                let j = i < 0 ? i + l.items.count : i
                if j >= 0 && j < l.items.count { return l.items[j] }
                return .undefined("\(v.typeName) object has no element \(i)")
            }
            if case .string(let s) = key { return try getAttr(v, s) }
        case .string(let s):
            if let i = key.intValue {
                let u = Array(s.unicodeScalars)
                let j = i < 0 ? i + u.count : i
                if j >= 0 && j < u.count { return .string(String(u[j])) }
                return .undefined("str object has no element \(i)")
            }
            if case .string(let k) = key { return try getAttr(v, k) }
        case .dict(let d):
            let k: String
            switch key {
            case .string(let s): k = s
            case .int, .bool, .double, .none: k = key.str
            default: return .undefined("unhashable key")
            }
            if let r = d[k] { return r }
            if case .string = key, Interpreter.dictMethods.contains(k) { return boundMethod(v, k) }
            return .undefined("'dict object' has no attribute '\(k)'")
        case .namespace, .loop:
            if case .string(let s) = key { return try getAttr(v, s) }
        default: break
        }
        return .undefined("'\(v.typeName) object' has no attribute '\(key.str)'")
    }

    /// Python slice index arithmetic.
    static func sliceIndices(count n: Int, _ start: Int?, _ stop: Int?, _ step: Int?) throws -> [Int] {
        let st = step ?? 1
        guard st != 0 else { throw TemplateError.runtime("slice step cannot be zero") }
        func adjust(_ x: Int?, _ def: Int) -> Int {
            guard var x else { return def }
            if x < 0 { x += n; if x < 0 { x = st < 0 ? -1 : 0 } }
            else if x >= n { x = st < 0 ? n - 1 : n }
            return x
        }
        let a = adjust(start, st > 0 ? 0 : n - 1)
        let b = adjust(stop, st > 0 ? n : -1)
        var r: [Int] = []
        var i = a
        while st > 0 ? i < b : i > b { r.append(i); i += st }
        return r
    }

    func slice(_ v: Value, _ a: Int?, _ b: Int?, _ c: Int?) throws -> Value {
        switch v {
        case .list(let l):
            let idx = try Interpreter.sliceIndices(count: l.items.count, a, b, c)
            return .list(ListBox(idx.map { l.items[$0] }, tuple: l.isTuple))
        case .string(let s):
            let u = Array(s.unicodeScalars)
            let idx = try Interpreter.sliceIndices(count: u.count, a, b, c)
            var out = String.UnicodeScalarView()
            for i in idx { out.append(u[i]) }
            return .string(String(out))
        case .undefined(let m): throw TemplateError.runtime(m)
        default: throw TemplateError.runtime("'\(v.typeName)' object is not subscriptable")
        }
    }

    // MARK: operators

    func binary(_ op: String, _ a: Value, _ b: Value) throws -> Value {
        if case .undefined(let m) = a { throw TemplateError.runtime(m) }
        if case .undefined(let m) = b { throw TemplateError.runtime(m) }
        func typeError() -> TemplateError {
            if op == "+", case .string = a { return .runtime("can only concatenate str (not \"\(b.typeName)\") to str") }
            return .runtime("unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'")
        }
        switch op {
        case "+":
            switch (a, b) {
            case (.string(let x), .string(let y)): return .string(x + y)
            case (.list(let x), .list(let y)) where x.isTuple == y.isTuple: return .list(ListBox(x.items + y.items, tuple: x.isTuple))
            default: break
            }
            if let x = a.intValue, let y = b.intValue {
                let (r, o) = x.addingReportingOverflow(y)
                return o ? .double(Double(x) + Double(y)) : .int(r)
            }
            if let x = a.numberValue, let y = b.numberValue { return .double(x + y) }
            throw typeError()
        case "-":
            if let x = a.intValue, let y = b.intValue {
                let (r, o) = x.subtractingReportingOverflow(y)
                return o ? .double(Double(x) - Double(y)) : .int(r)
            }
            if let x = a.numberValue, let y = b.numberValue { return .double(x - y) }
            throw typeError()
        case "*":
            if let x = a.intValue, let y = b.intValue {
                let (r, o) = x.multipliedReportingOverflow(by: y)
                return o ? .double(Double(x) * Double(y)) : .int(r)
            }
            if let x = a.numberValue, let y = b.numberValue { return .double(x * y) }
            func repeated(_ n: Int, _ v: Value) throws -> Value? {
                let n = max(0, n)
                switch v {
                case .string(let s):
                    guard s.utf8.count * n <= 10_000_000 else { throw TemplateError.runtime("string repetition too large") }
                    return .string(String(repeating: s, count: n))
                case .list(let l):
                    guard l.items.count * n <= 1_000_000 else { throw TemplateError.runtime("list repetition too large") }
                    var r: [Value] = []
                    for _ in 0..<n { r += l.items }
                    return .list(ListBox(r, tuple: l.isTuple))
                default: return nil
                }
            }
            if let n = b.intValue, let r = try repeated(n, a) { return r }
            if let n = a.intValue, let r = try repeated(n, b) { return r }
            throw typeError()
        case "/":
            guard let x = a.numberValue, let y = b.numberValue else { throw typeError() }
            guard y != 0 else { throw TemplateError.runtime("division by zero") }
            return .double(x / y)
        case "//":
            if let x = a.intValue, let y = b.intValue {
                guard y != 0 else { throw TemplateError.runtime("integer division or modulo by zero") }
                var q = x / y
                if (x % y != 0) && ((x < 0) != (y < 0)) { q -= 1 }
                return .int(q)
            }
            guard let x = a.numberValue, let y = b.numberValue else { throw typeError() }
            guard y != 0 else { throw TemplateError.runtime("float floor division by zero") }
            return .double((x / y).rounded(.down))
        case "%":
            if case .string(let f) = a { return .string(try Interpreter.percentFormat(f, b)) }
            if let x = a.intValue, let y = b.intValue {
                guard y != 0 else { throw TemplateError.runtime("integer division or modulo by zero") }
                var r = x % y
                if r != 0 && ((r < 0) != (y < 0)) { r += y }
                return .int(r)
            }
            guard let x = a.numberValue, let y = b.numberValue else { throw typeError() }
            guard y != 0 else { throw TemplateError.runtime("float modulo") }
            var r = fmod(x, y)
            if r != 0 && ((r < 0) != (y < 0)) { r += y }
            return .double(r)
        case "**":
            if let x = a.intValue, let y = b.intValue, y >= 0 {
                var r = 1, base = x, e = y, overflow = false
                while e > 0 {
                    if e & 1 == 1 { let (m, o) = r.multipliedReportingOverflow(by: base); r = m; overflow = overflow || o }
                    e >>= 1
                    if e > 0 { let (m, o) = base.multipliedReportingOverflow(by: base); base = m; overflow = overflow || o }
                }
                return overflow ? .double(pow(Double(x), Double(y))) : .int(r)
            }
            guard let x = a.numberValue, let y = b.numberValue else { throw typeError() }
            return .double(pow(x, y))
        default:
            throw TemplateError.runtime("unknown operator \(op)")
        }
    }

    func contains(_ container: Value, _ item: Value) throws -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let sub) = item else { throw TemplateError.runtime("'in <string>' requires string as left operand, not \(item.typeName)") }
            return sub.isEmpty || Interpreter.find(Array(s.unicodeScalars), Array(sub.unicodeScalars), from: 0) != nil
        case .list(let l): return l.items.contains { Value.equal($0, item) }
        case .dict(let d), .namespace(let d):
            if case .string(let k) = item { return d[k] != nil }
            return d[item.str] != nil && item.intValue != nil
        case .undefined: return false
        default: throw TemplateError.runtime("argument of type '\(container.typeName)' is not iterable")
        }
    }

    func compare(_ op: String, _ a: Value, _ b: Value) throws -> Bool {
        switch op {
        case "==": return Value.equal(a, b)
        case "!=": return !Value.equal(a, b)
        case "in": return try contains(b, a)
        case "notin": return !(try contains(b, a))
        default:
            if case .undefined(let m) = a { throw TemplateError.runtime(m) }
            if case .undefined(let m) = b { throw TemplateError.runtime(m) }
            func lt(_ x: Value, _ y: Value) throws -> Bool {
                guard let r = Value.less(x, y) else {
                    throw TemplateError.runtime("'\(op)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
                }
                return r
            }
            switch op {
            case "<": return try lt(a, b)
            case ">": return try lt(b, a)
            case "<=": return try !lt(b, a)
            case ">=": return try !lt(a, b)
            default: throw TemplateError.runtime("unknown comparison \(op)")
            }
        }
    }

    // MARK: tests

    func applyTest(_ name: String, _ v: Value, _ args: CallArgs) throws -> Bool {
        func arg() throws -> Value {
            guard let a = args.get(0, "other") ?? args.get(0, "value") ?? args.pos.first else {
                throw TemplateError.runtime("test '\(name)' needs an argument")
            }
            return a
        }
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": return v.isNone
        case "boolean": if case .bool = v { return true }; return false
        case "true": if case .bool(true) = v { return true }; return false
        case "false": if case .bool(false) = v { return true }; return false
        case "integer": if case .int = v { return true }; return false
        case "float": if case .double = v { return true }; return false
        case "number": return v.numberValue != nil
        case "string": if case .string = v { return true }; return false
        case "mapping": if case .dict = v { return true }; return false
        case "iterable":
            switch v {
            case .list, .dict, .string, .undefined, .loop: return true
            default: return false
            }
        case "sequence":
            switch v {
            case .list, .dict, .string, .undefined: return true
            default: return false
            }
        case "callable":
            switch v {
            case .macro, .builtin: return true
            default: return false
            }
        case "sameas":
            let o = try arg()
            switch (v, o) {
            case (.none, .none): return true
            case (.bool(let x), .bool(let y)): return x == y
            case (.list(let x), .list(let y)): return x === y
            case (.dict(let x), .dict(let y)), (.namespace(let x), .namespace(let y)): return x === y
            default: return false
            }
        case "escaped": return false
        case "eq", "equalto", "==": return Value.equal(v, try arg())
        case "ne", "!=": return !Value.equal(v, try arg())
        case "lt", "lessthan", "<": return try compare("<", v, try arg())
        case "le", "<=": return try compare("<=", v, try arg())
        case "gt", "greaterthan", ">": return try compare(">", v, try arg())
        case "ge", ">=": return try compare(">=", v, try arg())
        case "in": return try contains(try arg(), v)
        case "odd", "even", "divisibleby":
            guard let i = v.intValue else { throw TemplateError.runtime("test '\(name)' needs an integer") }
            if name == "odd" { return i % 2 != 0 }
            if name == "even" { return i % 2 == 0 }
            guard let d = try arg().intValue, d != 0 else { throw TemplateError.runtime("divisibleby needs a non-zero integer") }
            return i % d == 0
        case "lower":
            let s = v.str
            return s.lowercased() == s && s.uppercased() != s
        case "upper":
            let s = v.str
            return s.uppercased() == s && s.lowercased() != s
        case "filter": return Interpreter.filterNames.contains(v.str)
        case "test": return Interpreter.testNames.contains(v.str)
        default: throw TemplateError.runtime("no test named '\(name)'")
        }
    }

    static let testNames: Set<String> = [
        "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number", "string", "mapping",
        "iterable", "sequence", "callable", "sameas", "escaped", "eq", "equalto", "ne", "lt", "lessthan", "le", "gt",
        "greaterthan", "ge", "in", "odd", "even", "divisibleby", "lower", "upper", "filter", "test",
    ]

    // MARK: globals

    static func builtins() -> [String: Value] {
        var g: [String: Value] = [:]
        g["raise_exception"] = .builtin(BuiltinBox("raise_exception") { pos, kw in
            let msg = pos.first ?? kw.first(where: { $0.0 == "message" })?.1 ?? .string("")
            throw TemplateError(.raised, msg.str)
        })
        g["strftime_now"] = .builtin(BuiltinBox("strftime_now") { pos, kw in
            let fmt = (pos.first ?? kw.first(where: { $0.0 == "format" })?.1 ?? .string("")).str
            return .string(Interpreter.strftimeNow(fmt))
        })
        g["namespace"] = .builtin(BuiltinBox("namespace") { pos, kw in
            let d = DictBox()
            for p in pos {
                guard case .dict(let src) = p else { throw TemplateError.runtime("namespace() positional argument must be a mapping") }
                for (k, v) in src.pairs { d[k] = v }
            }
            for (k, v) in kw { d[k] = v }
            if let bad = d.keys.first(where: { $0.hasPrefix("_") }) {
                throw TemplateError.runtime("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '\(bad)'")
            }
            return .namespace(d)
        })
        g["dict"] = .builtin(BuiltinBox("dict") { pos, kw in
            let d = DictBox()
            for p in pos {
                switch p {
                case .dict(let src): for (k, v) in src.pairs { d[k] = v }
                case .list(let l):
                    for item in l.items {
                        guard case .list(let pair) = item, pair.items.count == 2 else { throw TemplateError.runtime("dict() sequence elements must be pairs") }
                        d[pair.items[0].str] = pair.items[1]
                    }
                default: throw TemplateError.runtime("'\(p.typeName)' object is not iterable")
                }
            }
            for (k, v) in kw { d[k] = v }
            return .dict(d)
        })
        g["range"] = .builtin(BuiltinBox("range") { pos, _ in
            let ints = try pos.map { v -> Int in
                guard let i = v.intValue else { throw TemplateError.runtime("'\(v.typeName)' object cannot be interpreted as an integer") }
                return i
            }
            var start = 0, stop = 0, step = 1
            switch ints.count {
            case 1: stop = ints[0]
            case 2: start = ints[0]; stop = ints[1]
            case 3: start = ints[0]; stop = ints[1]; step = ints[2]
            default: throw TemplateError.runtime("range expected 1 to 3 arguments, got \(ints.count)")
            }
            guard step != 0 else { throw TemplateError.runtime("range() arg 3 must not be zero") }
            let n = step > 0 ? max(0, (stop - start + step - 1) / step) : max(0, (start - stop - step - 1) / -step)
            guard n <= maxRange else { throw TemplateError.runtime("Range too big. The sandbox blocks ranges larger than MAX_RANGE (\(maxRange)).") }
            return .list((0..<n).map { .int(start + $0 * step) })
        })
        return g
    }

    /// Python's `datetime.now().strftime(fmt)` via the C library (which Python also uses).
    static func strftimeNow(_ fmt: String) -> String {
        var t = time(nil)
        var tmv = tm()
        localtime_r(&t, &tmv)
        var buf = [Int8](repeating: 0, count: 512)
        let n = fmt.withCString { strftime(&buf, buf.count, $0, &tmv) }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

import Foundation

/// Constant values that appear in the syntax tree (immutable, so the tree is Sendable).
enum Literal: Sendable {
    case none, bool(Bool), int(Int), double(Double), string(String)
}

struct Arg: Sendable {
    enum Kind: Sendable { case positional, keyword(String), splat, kwsplat }
    let kind: Kind
    let value: Expr
}

final class Expr: Sendable {
    indirect enum Kind: Sendable {
        case literal(Literal)
        case name(String)
        case list([Expr])
        case tuple([Expr])
        case dict([(Expr, Expr)])
        case getattr(Expr, String)
        case getitem(Expr, Expr)
        case slice(Expr, Expr?, Expr?, Expr?)
        case call(Expr, [Arg])
        case filter(Expr, String, [Arg])
        case test(Expr, String, [Arg])
        case neg(Expr), pos(Expr), not(Expr)
        case and(Expr, Expr), or(Expr, Expr)
        case binary(String, Expr, Expr)
        case concat([Expr])
        case compare(Expr, [(String, Expr)])
        case cond(Expr, Expr, Expr?)  // then, test, else
    }
    let kind: Kind
    let line: Int
    let col: Int
    init(_ kind: Kind, _ line: Int, _ col: Int) { self.kind = kind; self.line = line; self.col = col }
}

indirect enum Target: Sendable {
    case name(String)
    case attr(String, String)  // namespace variable, attribute
    case tuple([Target])
}

struct FilterCall: Sendable {
    let name: String
    let args: [Arg]
    let line: Int
    let col: Int
}

struct Param: Sendable {
    let name: String
    let defaultValue: Expr?
}

final class Stmt: Sendable {
    indirect enum Kind: Sendable {
        case text(String)
        case output(Expr)
        case ifS([(Expr, [Stmt])], [Stmt]?)
        case forS(Target, Expr, Expr?, [Stmt], [Stmt]?)
        case set(Target, Expr)
        case setBlock(Target, [FilterCall], [Stmt])
        case macro(String, [Param], [Stmt])
        case callBlock(Expr, [Param], [Stmt])
        case filterBlock([FilterCall], [Stmt])
        case with([(Target, Expr)], [Stmt])
        case group([Stmt])
        case breakS, continueS
    }
    let kind: Kind
    let line: Int
    init(_ kind: Kind, _ line: Int) { self.kind = kind; self.line = line }
}

/// Recursive-descent parser following Jinja2's grammar and operator precedence.
struct TemplateParser {
    private var toks: [Token]
    private var i = 0
    private var loopDepth = 0
    /// Nesting of expressions and statements, bounded so hostile templates cannot exhaust the stack.
    private var nesting = 0
    static let maxNesting = 100

    init(tokens: [Token]) { toks = tokens }

    private var cur: Token { toks[i] }
    private func peek(_ k: Int = 1) -> Token { toks[min(i + k, toks.count - 1)] }
    private mutating func advance() { if i < toks.count - 1 { i += 1 } }

    private func fail(_ m: String, _ t: Token? = nil) -> TemplateError {
        let t = t ?? cur
        return TemplateError(.syntax, m, line: t.line, column: t.col)
    }

    private func describe(_ k: TokenKind) -> String {
        switch k {
        case .text: return "template data"
        case .varBegin: return "'{{'"
        case .varEnd: return "end of print statement"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "end of statement block"
        case .name(let n): return "'\(n)'"
        case .string: return "string"
        case .int, .float: return "number"
        case .op(let o): return "'\(o)'"
        case .eof: return "end of template"
        }
    }

    private func isOp(_ o: String) -> Bool { if case .op(let x) = cur.kind { return x == o }; return false }
    private func isName(_ n: String) -> Bool { if case .name(let x) = cur.kind { return x == n }; return false }
    private func isName(_ n: String, at t: Token) -> Bool { if case .name(let x) = t.kind { return x == n }; return false }

    private mutating func expectOp(_ o: String) throws {
        guard isOp(o) else { throw fail("expected '\(o)', got \(describe(cur.kind))") }
        advance()
    }
    private mutating func expectName(_ n: String) throws {
        guard isName(n) else { throw fail("expected '\(n)', got \(describe(cur.kind))") }
        advance()
    }
    private mutating func expectBlockEnd() throws {
        guard case .blockEnd = cur.kind else { throw fail("expected end of statement block, got \(describe(cur.kind))") }
        advance()
    }
    private mutating func identifier() throws -> String {
        guard case .name(let n) = cur.kind else { throw fail("expected a name, got \(describe(cur.kind))") }
        advance()
        return n
    }

    mutating func parseTemplate() throws -> [Stmt] {
        let (body, end) = try parseBody(until: [])
        if let end { throw fail("unexpected '\(end.name)'", end.token) }
        return body
    }

    /// Parses statements until a block tag whose keyword is in `ends`; returns that keyword
    /// (consumed, positioned just after it) or nil at end of template.
    private mutating func parseBody(until ends: Set<String>) throws -> ([Stmt], (name: String, token: Token)?) {
        var out: [Stmt] = []
        while true {
            let t = cur
            switch t.kind {
            case .eof:
                if !ends.isEmpty {
                    let list = ends.sorted().map { "'\($0)'" }.joined(separator: " or ")
                    throw fail("unexpected end of template, expected \(list)", t)
                }
                return (out, nil)
            case .text(let s):
                out.append(Stmt(.text(s), t.line)); advance()
            case .varBegin:
                advance()
                let e = try parseTuple()
                guard case .varEnd = cur.kind else { throw fail("expected end of print statement, got \(describe(cur.kind))") }
                advance()
                out.append(Stmt(.output(e), t.line))
            case .blockBegin:
                advance()
                let kt = cur
                guard case .name(let kw) = kt.kind else { throw fail("expected a statement name, got \(describe(kt.kind))") }
                if ends.contains(kw) { advance(); return (out, (kw, kt)) }
                out.append(try parseStatement(kw, kt))
            default:
                throw fail("unexpected \(describe(t.kind))", t)
            }
        }
    }

    private mutating func enter() throws {
        nesting += 1
        if nesting > TemplateParser.maxNesting { throw fail("template nesting is too deep") }
    }

    private mutating func parseStatement(_ kw: String, _ kt: Token) throws -> Stmt {
        try enter()
        defer { nesting -= 1 }
        advance()
        let line = kt.line
        switch kw {
        case "if":
            var branches: [(Expr, [Stmt])] = []
            var test = try parseTuple(withCondexpr: false)
            try expectBlockEnd()
            while true {
                let (body, end) = try parseBody(until: ["elif", "else", "endif"])
                branches.append((test, body))
                switch end!.name {
                case "elif":
                    test = try parseTuple(withCondexpr: false); try expectBlockEnd()
                case "else":
                    try expectBlockEnd()
                    let (eb, _) = try parseBody(until: ["endif"])
                    try expectBlockEnd()
                    return Stmt(.ifS(branches, eb), line)
                default:
                    try expectBlockEnd()
                    return Stmt(.ifS(branches, nil), line)
                }
            }
        case "for":
            let target = try parseAssignTarget(allowAttr: false)
            try expectName("in")
            let iter = try parseTuple(withCondexpr: false, extraEnd: ["recursive"])
            var filter: Expr? = nil
            if isName("if") { advance(); filter = try parseExpression() }
            if isName("recursive") { throw fail("recursive loops are not supported") }
            try expectBlockEnd()
            loopDepth += 1
            let (body, end) = try parseBody(until: ["endfor", "else"])
            loopDepth -= 1
            var elseBody: [Stmt]? = nil
            try expectBlockEnd()
            if end!.name == "else" {
                let (eb, _) = try parseBody(until: ["endfor"])
                elseBody = eb
                try expectBlockEnd()
            }
            return Stmt(.forS(target, iter, filter, body, elseBody), line)
        case "set":
            let target = try parseAssignTarget(allowAttr: true)
            if isOp("=") {
                advance()
                let e = try parseTuple()
                try expectBlockEnd()
                return Stmt(.set(target, e), line)
            }
            let filters = try parseFilterChain()
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endset"])
            try expectBlockEnd()
            return Stmt(.setBlock(target, filters, body), line)
        case "macro":
            let name = try identifier()
            let params = try parseParams()
            try expectBlockEnd()
            let saved = loopDepth; loopDepth = 0
            let (body, _) = try parseBody(until: ["endmacro"])
            loopDepth = saved
            if case .name = cur.kind { advance() }
            try expectBlockEnd()
            return Stmt(.macro(name, params, body), line)
        case "call":
            let params = isOp("(") ? try parseParams() : []
            let callExpr = try parseExpression()
            guard case .call = callExpr.kind else { throw fail("expected a call expression", kt) }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endcall"])
            try expectBlockEnd()
            return Stmt(.callBlock(callExpr, params, body), line)
        case "filter":
            let filters = try parseFilterChain(requireFirst: true)
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endfilter"])
            try expectBlockEnd()
            return Stmt(.filterBlock(filters, body), line)
        case "with":
            var assigns: [(Target, Expr)] = []
            while !(cur.kind == .blockEnd) {
                if !assigns.isEmpty { try expectOp(",") }
                let t = try parseAssignTarget(allowAttr: false)
                try expectOp("=")
                assigns.append((t, try parseExpression()))
            }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endwith"])
            try expectBlockEnd()
            return Stmt(.with(assigns, body), line)
        case "generation":
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endgeneration"])
            try expectBlockEnd()
            return Stmt(.group(body), line)
        case "break", "continue":
            guard loopDepth > 0 else { throw fail("'\(kw)' outside of a loop", kt) }
            try expectBlockEnd()
            return Stmt(kw == "break" ? .breakS : .continueS, line)
        case "elif", "else", "endif", "endfor", "endset", "endmacro", "endcall", "endfilter", "endwith", "endgeneration", "endraw":
            throw fail("unexpected '\(kw)'", kt)
        default:
            throw fail("unknown tag '\(kw)'", kt)
        }
    }

    private mutating func parseParams() throws -> [Param] {
        try expectOp("(")
        var ps: [Param] = []
        while !isOp(")") {
            if !ps.isEmpty { try expectOp(","); if isOp(")") { break } }
            let n = try identifier()
            var d: Expr? = nil
            if isOp("=") { advance(); d = try parseExpression() }
            ps.append(Param(name: n, defaultValue: d))
        }
        advance()
        return ps
    }

    private mutating func parseFilterChain(requireFirst: Bool = false) throws -> [FilterCall] {
        var out: [FilterCall] = []
        if requireFirst { out.append(try parseOneFilter()) }
        while isOp("|") { advance(); out.append(try parseOneFilter()) }
        return out
    }

    private mutating func parseOneFilter() throws -> FilterCall {
        let t = cur
        var name = try identifier()
        while isOp("."), case .name(let n) = peek().kind { advance(); advance(); name += "." + n }
        let args = isOp("(") ? try parseCallArgs() : []
        return FilterCall(name: name, args: args, line: t.line, col: t.col)
    }

    private mutating func parseAssignTarget(allowAttr: Bool) throws -> Target {
        var items: [Target] = []
        var sawComma = false
        let paren = isOp("(")
        if paren { advance() }
        while true {
            let n = try identifier()
            if allowAttr && isOp(".") {
                advance()
                items.append(.attr(n, try identifier()))
            } else {
                items.append(.name(n))
            }
            if isOp(",") {
                sawComma = true; advance()
                if case .name = cur.kind { continue }
                break
            }
            break
        }
        if paren { try expectOp(")") }
        return (items.count == 1 && !sawComma) ? items[0] : .tuple(items)
    }

    // MARK: expressions

    mutating func parseExpression(withCondexpr: Bool = true) throws -> Expr {
        try enter()
        defer { nesting -= 1 }
        return withCondexpr ? try parseCondExpr() : try parseOr()
    }

    private func isTupleEnd(_ extra: Set<String>) -> Bool {
        switch cur.kind {
        case .varEnd, .blockEnd, .eof: return true
        case .op(let o): return o == ")"
        case .name(let n): return extra.contains(n)
        default: return false
        }
    }

    mutating func parseTuple(withCondexpr: Bool = true, extraEnd: Set<String> = [], explicitParens: Bool = false) throws -> Expr {
        let t = cur
        var args: [Expr] = []
        var isTuple = false
        while true {
            if !args.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEnd) { break }
            args.append(try parseExpression(withCondexpr: withCondexpr))
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            if args.count == 1 { return args[0] }
            if !explicitParens { throw fail("expected an expression, got \(describe(cur.kind))") }
        }
        return Expr(.tuple(args), t.line, t.col)
    }

    private mutating func parseCondExpr() throws -> Expr {
        var e = try parseOr()
        while isName("if") {
            let t = cur
            advance()
            let test = try parseOr()
            var other: Expr? = nil
            if isName("else") { advance(); other = try parseCondExpr() }
            e = Expr(.cond(e, test, other), t.line, t.col)
        }
        return e
    }

    private mutating func parseOr() throws -> Expr {
        var l = try parseAnd()
        while isName("or") { let t = cur; advance(); l = Expr(.or(l, try parseAnd()), t.line, t.col) }
        return l
    }

    private mutating func parseAnd() throws -> Expr {
        var l = try parseNot()
        while isName("and") { let t = cur; advance(); l = Expr(.and(l, try parseNot()), t.line, t.col) }
        return l
    }

    private mutating func parseNot() throws -> Expr {
        if isName("not") {
            let t = cur; advance()
            try enter(); defer { nesting -= 1 }
            return Expr(.not(try parseNot()), t.line, t.col)
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws -> Expr {
        let t = cur
        let e = try parseMath1()
        var ops: [(String, Expr)] = []
        while true {
            if case .op(let o) = cur.kind, ["==", "!=", "<", "<=", ">", ">="].contains(o) {
                advance(); ops.append((o, try parseMath1()))
            } else if isName("in") {
                advance(); ops.append(("in", try parseMath1()))
            } else if isName("not"), isName("in", at: peek()) {
                advance(); advance(); ops.append(("notin", try parseMath1()))
            } else { break }
        }
        return ops.isEmpty ? e : Expr(.compare(e, ops), t.line, t.col)
    }

    private mutating func parseMath1() throws -> Expr {
        var l = try parseConcat()
        while case .op(let o) = cur.kind, o == "+" || o == "-" {
            let t = cur; advance()
            l = Expr(.binary(o, l, try parseConcat()), t.line, t.col)
        }
        return l
    }

    private mutating func parseConcat() throws -> Expr {
        let t = cur
        var args = [try parseMath2()]
        while isOp("~") { advance(); args.append(try parseMath2()) }
        return args.count == 1 ? args[0] : Expr(.concat(args), t.line, t.col)
    }

    private mutating func parseMath2() throws -> Expr {
        var l = try parsePow()
        while case .op(let o) = cur.kind, ["*", "/", "//", "%"].contains(o) {
            let t = cur; advance()
            l = Expr(.binary(o, l, try parsePow()), t.line, t.col)
        }
        return l
    }

    private mutating func parsePow() throws -> Expr {
        var l = try parseUnary()
        while isOp("**") { let t = cur; advance(); l = Expr(.binary("**", l, try parseUnary()), t.line, t.col) }
        return l
    }

    private mutating func parseUnary(withFilter: Bool = true) throws -> Expr {
        try enter()
        defer { nesting -= 1 }
        let t = cur
        var node: Expr
        if isOp("-") { advance(); node = Expr(.neg(try parseUnary(withFilter: false)), t.line, t.col) }
        else if isOp("+") { advance(); node = Expr(.pos(try parseUnary(withFilter: false)), t.line, t.col) }
        else { node = try parsePrimary() }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpr(node) }
        return node
    }

    private mutating func parsePrimary() throws -> Expr {
        let t = cur
        switch t.kind {
        case .name(let n):
            advance()
            switch n {
            case "true", "True": return Expr(.literal(.bool(true)), t.line, t.col)
            case "false", "False": return Expr(.literal(.bool(false)), t.line, t.col)
            case "none", "None": return Expr(.literal(.none), t.line, t.col)
            default: return Expr(.name(n), t.line, t.col)
            }
        case .string(var s):
            advance()
            while case .string(let more) = cur.kind { s += more; advance() }
            return Expr(.literal(.string(s)), t.line, t.col)
        case .int(let v): advance(); return Expr(.literal(.int(v)), t.line, t.col)
        case .float(let v): advance(); return Expr(.literal(.double(v)), t.line, t.col)
        case .op("("):
            advance()
            let e = try parseTuple(explicitParens: true)
            try expectOp(")")
            return e
        case .op("["):
            advance()
            var items: [Expr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(","); if isOp("]") { break } }
                items.append(try parseExpression())
            }
            advance()
            return Expr(.list(items), t.line, t.col)
        case .op("{"):
            advance()
            var items: [(Expr, Expr)] = []
            while !isOp("}") {
                if !items.isEmpty { try expectOp(","); if isOp("}") { break } }
                let k = try parseExpression()
                try expectOp(":")
                items.append((k, try parseExpression()))
            }
            advance()
            return Expr(.dict(items), t.line, t.col)
        default:
            throw fail("unexpected \(describe(t.kind))", t)
        }
    }

    private mutating func parsePostfix(_ start: Expr) throws -> Expr {
        var node = start
        while true {
            let t = cur
            if isOp(".") {
                advance()
                switch cur.kind {
                case .name(let n): advance(); node = Expr(.getattr(node, n), t.line, t.col)
                case .int(let v): advance(); node = Expr(.getitem(node, Expr(.literal(.int(v)), t.line, t.col)), t.line, t.col)
                default: throw fail("expected an attribute name after '.'")
                }
            } else if isOp("[") {
                advance()
                node = try parseSubscript(node, t)
                try expectOp("]")
            } else if isOp("(") {
                node = Expr(.call(node, try parseCallArgs()), t.line, t.col)
            } else {
                return node
            }
        }
    }

    private mutating func parseSubscript(_ obj: Expr, _ t: Token) throws -> Expr {
        var start: Expr? = nil
        if !isOp(":") {
            start = try parseExpression()
            if !isOp(":") { return Expr(.getitem(obj, start!), t.line, t.col) }
        }
        advance()  // ':'
        var stop: Expr? = nil, step: Expr? = nil
        if !isOp("]") && !isOp(":") && !isOp(",") { stop = try parseExpression() }
        if isOp(":") {
            advance()
            if !isOp("]") && !isOp(",") { step = try parseExpression() }
        }
        return Expr(.slice(obj, start, stop, step), t.line, t.col)
    }

    private mutating func parseCallArgs() throws -> [Arg] {
        try expectOp("(")
        var args: [Arg] = []
        while !isOp(")") {
            if !args.isEmpty { try expectOp(","); if isOp(")") { break } }
            if isOp("*") { advance(); args.append(Arg(kind: .splat, value: try parseExpression())) }
            else if isOp("**") { advance(); args.append(Arg(kind: .kwsplat, value: try parseExpression())) }
            else if case .name(let n) = cur.kind, case .op("=") = peek().kind {
                advance(); advance()
                args.append(Arg(kind: .keyword(n), value: try parseExpression()))
            } else {
                args.append(Arg(kind: .positional, value: try parseExpression()))
            }
        }
        advance()
        return args
    }

    private mutating func parseFilterExpr(_ start: Expr) throws -> Expr {
        var node = start
        while true {
            let t = cur
            if isOp("|") {
                advance()
                let f = try parseOneFilter()
                node = Expr(.filter(node, f.name, f.args), f.line, f.col)
            } else if isName("is") {
                advance()
                var negated = false
                if isName("not") { negated = true; advance() }
                var name = try identifier()
                while isOp("."), case .name(let n) = peek().kind { advance(); advance(); name += "." + n }
                var args: [Arg] = []
                if isOp("(") {
                    args = try parseCallArgs()
                } else {
                    var takesArg = false
                    switch cur.kind {
                    case .name(let n): takesArg = !["else", "or", "and"].contains(n)
                    case .string, .int, .float: takesArg = true
                    case .op(let o): takesArg = o == "[" || o == "{"
                    default: break
                    }
                    if takesArg {
                        let a = try parsePostfix(try parsePrimary())
                        args = [Arg(kind: .positional, value: a)]
                    }
                }
                node = Expr(.test(node, name, args), t.line, t.col)
                if negated { node = Expr(.not(node), t.line, t.col) }
            } else if isOp("(") {
                node = Expr(.call(node, try parseCallArgs()), t.line, t.col)
            } else {
                return node
            }
        }
    }
}

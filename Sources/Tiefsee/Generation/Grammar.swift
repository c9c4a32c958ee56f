/// A context-free grammar over Unicode code points, written in GBNF — the notation llama.cpp's
/// `grammar` field and `--grammar` files use:
///
///     root   ::= object
///     object ::= "{" ws ( pair ( "," ws pair )* )? "}"
///     ws     ::= [ \t\n]*
///
/// Terminals are quoted literals ("\n", "\x41", "\u00e9") and character classes ([a-z], [^"\\],
/// `.` for any character); `*`, `+`, `?` and `{m}`, `{m,}`, `{m,n}`, `{,n}` repeat the item
/// before them; `( … )` groups; `#` starts a comment. A rule ends at the end of its line unless
/// a parenthesis is open or the next line continues it with `|`. Sampling is constrained by
/// `GrammarMatcher`; JSON schemas are turned into this form by `JSONSchemaGrammar`.
///
/// Internally every alternative is a sequence of elements in one flat array, each sequence closed
/// by `.end`, so a position in the grammar is a single index (what the matcher keeps on its stacks).
/// Repetitions are rewritten into helper rules (x* becomes R ::= x R | ε), right-recursive so the
/// matcher's stacks stay flat.
public struct Grammar: Sendable, CustomStringConvertible {
    public enum Element: Sendable, Equatable {
        /// One code point in (or, negated, outside) the ranges.
        case chars(CharSet)
        /// Any of the alternatives of rule i.
        case rule(Int)
        /// The end of a sequence.
        case end
    }

    public struct CharSet: Sendable, Equatable {
        public var ranges: [ClosedRange<UInt32>]
        public var negated: Bool

        @inline(__always) public func contains(_ c: UInt32) -> Bool {
            var inside = false
            for r in ranges where r.contains(c) { inside = true; break }
            return inside != negated
        }

        /// Whether some code point in `lo...hi` is in the set (for a partly decoded UTF-8 character).
        public func intersects(_ lo: UInt32, _ hi: UInt32) -> Bool {
            if !negated { return ranges.contains { $0.lowerBound <= hi && $0.upperBound >= lo } }
            // Negated: is some point of lo...hi outside every range?
            var c = lo
            while c <= hi {
                guard let r = ranges.first(where: { $0.contains(c) }) else { return true }
                if r.upperBound >= hi { return false }
                c = r.upperBound + 1
            }
            return false
        }
    }

    /// The flat element array; sequences are closed by `.end`.
    public private(set) var elements: [Element] = []
    /// For rule i, the start index of each alternative in `elements`.
    public private(set) var alternatives: [[Int32]] = []
    public private(set) var ruleNames: [String] = []
    public let root: Int

    public var description: String {
        (0..<alternatives.count).map { r in
            "\(ruleNames[r]) ::= " + alternatives[r].map { start in
                var s: [String] = []
                var i = Int(start)
                while elements[i] != .end {
                    switch elements[i] {
                    case .chars(let set):
                        let body = set.ranges.map { $0.lowerBound == $0.upperBound ? "\\u{\(String($0.lowerBound, radix: 16))}"
                            : "\\u{\(String($0.lowerBound, radix: 16))}-\\u{\(String($0.upperBound, radix: 16))}" }.joined()
                        s.append("[" + (set.negated ? "^" : "") + body + "]")
                    case .rule(let j): s.append(ruleNames[j])
                    case .end: break
                    }
                    i += 1
                }
                return s.joined(separator: " ")
            }.joined(separator: " | ")
        }.joined(separator: "\n")
    }

    /// Parses GBNF text; `root` names the start rule.
    public init(gbnf text: String, root rootName: String = "root") throws {
        var p = GBNFParser(Array(text.unicodeScalars.map(\.value)))
        try p.parseGrammar()
        guard let r = p.ids[rootName] else { throw GrammarError("the grammar has no rule named \(rootName)") }
        for (name, id) in p.ids where p.rules[id] == nil {
            throw GrammarError("rule \(name) is used but never defined")
        }
        root = r
        ruleNames = p.names
        for id in 0..<p.rules.count {
            var starts: [Int32] = []
            for seq in p.rules[id]! {
                starts.append(Int32(elements.count))
                elements.append(contentsOf: seq)
                elements.append(.end)
            }
            alternatives.append(starts)
        }
        try checkNoLeftRecursion()
    }

    /// Left recursion (a rule that can reach itself before reading a character) would make the
    /// matcher loop forever: refuse such grammars up front.
    func checkNoLeftRecursion() throws {
        let n = alternatives.count
        var nullable = [Bool](repeating: false, count: n)
        var changed = true
        while changed {
            changed = false
            for r in 0..<n where !nullable[r] {
                if alternatives[r].contains(where: { seqNullable(Int($0), nullable) }) { nullable[r] = true; changed = true }
            }
        }
        // Rules reachable at the left edge of each rule.
        var left = [[Int]](repeating: [], count: n)
        for r in 0..<n {
            for start in alternatives[r] {
                var i = Int(start)
                while case .rule(let j) = elements[i] {
                    left[r].append(j)
                    if !nullable[j] { break }
                    i += 1
                }
            }
        }
        var state = [UInt8](repeating: 0, count: n)   // 0 new, 1 on the path, 2 done
        func visit(_ r: Int) throws {
            state[r] = 1
            for j in left[r] {
                if state[j] == 1 { throw GrammarError("rule \(ruleNames[j]) is left-recursive") }
                if state[j] == 0 { try visit(j) }
            }
            state[r] = 2
        }
        for r in 0..<n where state[r] == 0 { try visit(r) }
    }

    func seqNullable(_ start: Int, _ nullable: [Bool]) -> Bool {
        var i = start
        while true {
            switch elements[i] {
            case .end: return true
            case .chars: return false
            case .rule(let j): if !nullable[j] { return false }
            }
            i += 1
        }
    }
}

public struct GrammarError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = "grammar: " + d }
}

/// The GBNF reader: builds rules as lists of alternatives (sequences of elements), adding helper
/// rules for groups and repetitions.
struct GBNFParser {
    let s: [UInt32]
    var i = 0
    var ids: [String: Int] = [:]
    var names: [String] = []
    var rules: [[[Grammar.Element]]?] = []

    init(_ s: [UInt32]) { self.s = s }

    var atEnd: Bool { i >= s.count }
    func peek(_ k: Int = 0) -> UInt32? { i + k < s.count ? s[i + k] : nil }
    func err(_ what: String) -> GrammarError {
        let line = s[..<min(i, s.count)].filter { $0 == 10 }.count + 1
        return GrammarError("\(what) (line \(line))")
    }

    static func isNameChar(_ c: UInt32) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x5F
    }

    mutating func ruleID(_ name: String) -> Int {
        if let id = ids[name] { return id }
        ids[name] = rules.count; names.append(name); rules.append(nil)
        return rules.count - 1
    }

    mutating func newRule(_ base: String, _ alts: [[Grammar.Element]]) -> Int {
        var k = names.count, name = "\(base)-\(k)"
        while ids[name] != nil { k += 1; name = "\(base)-\(k)" }
        let id = ruleID(name)
        rules[id] = alts
        return id
    }

    /// Skips spaces and comments; newlines too when `newlines`.
    mutating func skipSpace(newlines: Bool) {
        while let c = peek() {
            if c == 0x20 || c == 0x09 || (newlines && (c == 0x0A || c == 0x0D)) { i += 1 }
            else if c == 0x23 { while let d = peek(), d != 0x0A { _ = d; i += 1 } }   // '#' comment
            else { break }
        }
    }

    mutating func parseName() throws -> String {
        let start = i
        while let c = peek(), GBNFParser.isNameChar(c) { i += 1 }
        guard i > start else { throw err("expected a rule name") }
        return String(String.UnicodeScalarView(s[start..<i].compactMap(Unicode.Scalar.init)))
    }

    mutating func parseGrammar() throws {
        skipSpace(newlines: true)
        while !atEnd {
            let name = try parseName()
            skipSpace(newlines: false)
            guard peek() == 0x3A, peek(1) == 0x3A, peek(2) == 0x3D else { throw err("expected ::= after \(name)") }
            i += 3
            skipSpace(newlines: true)
            let alts = try parseAlternatives(nested: false)
            let id = ruleID(name)
            guard rules[id] == nil else { throw err("rule \(name) is defined twice") }
            rules[id] = alts
            skipSpace(newlines: true)
        }
    }

    mutating func parseAlternatives(nested: Bool) throws -> [[Grammar.Element]] {
        var alts = [try parseSequence(nested: nested)]
        while true {
            if !nested {
                // A line that starts with '|' continues the rule.
                let save = i
                skipSpace(newlines: true)
                if peek() != 0x7C { i = save; break }
            }
            guard peek() == 0x7C else { break }
            i += 1
            skipSpace(newlines: true)
            alts.append(try parseSequence(nested: nested))
        }
        return alts
    }

    mutating func parseSequence(nested: Bool) throws -> [Grammar.Element] {
        var seq: [Grammar.Element] = []
        while let c = peek() {
            if c == 0x7C || c == 0x29 || c == 0x0A || c == 0x0D { break }
            var item: [Grammar.Element]
            switch c {
            case 0x22: item = try parseLiteral()
            case 0x5B: item = [.chars(try parseClass())]
            case 0x2E: i += 1; item = [.chars(.init(ranges: [0...0x10FFFF], negated: false))]
            case 0x28:
                i += 1
                skipSpace(newlines: true)
                let alts = try parseAlternatives(nested: true)
                skipSpace(newlines: true)
                guard peek() == 0x29 else { throw err("expected )") }
                i += 1
                item = [.rule(newRule("group", alts))]
            default:
                guard GBNFParser.isNameChar(c) else { throw err("unexpected character \(Character(Unicode.Scalar(c) ?? "?"))") }
                let name = try parseName()
                // `name ::=` here means the previous rule ended without a newline: not GBNF.
                item = [.rule(ruleID(name))]
            }
            skipSpace(newlines: nested)
            item = try parsePostfix(item)
            seq.append(contentsOf: item)
            skipSpace(newlines: nested)
        }
        return seq
    }

    /// `*`, `+`, `?`, `{m}`, `{m,}`, `{m,n}`, `{,n}` after an item.
    mutating func parsePostfix(_ item: [Grammar.Element]) throws -> [Grammar.Element] {
        guard let c = peek() else { return item }
        var lo = 0, hi: Int? = nil
        switch c {
        case 0x2A: i += 1; lo = 0; hi = nil
        case 0x2B: i += 1; lo = 1; hi = nil
        case 0x3F: i += 1; lo = 0; hi = 1
        case 0x7B:
            i += 1
            skipSpace(newlines: false)
            let m = parseInt()
            skipSpace(newlines: false)
            if peek() == 0x2C {
                i += 1
                skipSpace(newlines: false)
                hi = parseInt()
            } else {
                guard let m else { throw err("expected a number in {}") }
                hi = m
            }
            lo = m ?? 0
            skipSpace(newlines: false)
            guard peek() == 0x7D else { throw err("expected }") }
            i += 1
            if let h = hi, h < lo { throw err("repetition {\(lo),\(h)} has max below min") }
        default: return item
        }
        return repeatItem(item, min: lo, max: hi)
    }

    mutating func parseInt() -> Int? {
        let start = i
        var v = 0
        while let c = peek(), c >= 0x30 && c <= 0x39 { v = v * 10 + Int(c - 0x30); i += 1 }
        return i > start ? v : nil
    }

    /// item{lo,hi}: lo copies, then either a right-recursive star (no hi) or hi-lo nested optionals
    /// (x (x (x)?)?)? — one way to read each length, so the matcher holds one stack per length.
    mutating func repeatItem(_ item: [Grammar.Element], min lo: Int, max hi: Int?) -> [Grammar.Element] {
        var out: [Grammar.Element] = []
        for _ in 0..<lo { out.append(contentsOf: item) }
        if let hi {
            guard hi > lo else { return out }
            var tail: Int? = nil
            for _ in 0..<(hi - lo) {
                var seq = item
                if let t = tail { seq.append(.rule(t)) }
                tail = newRule("opt", [seq, []])
            }
            out.append(.rule(tail!))
        } else {
            let id = ruleID(uniqueName("star"))
            rules[id] = [item + [.rule(id)], []]
            out.append(.rule(id))
        }
        return out
    }

    func uniqueName(_ base: String) -> String {
        var k = names.count
        while ids["\(base)-\(k)"] != nil { k += 1 }
        return "\(base)-\(k)"
    }

    /// One character of a literal or class: plain, or an escape (\n \t \r \\ \" \] \[ \- \xHH \uHHHH \UHHHHHHHH).
    mutating func parseChar() throws -> UInt32 {
        guard let c = peek() else { throw err("unexpected end of grammar") }
        i += 1
        guard c == 0x5C else { return c }
        guard let e = peek() else { throw err("unexpected end after \\") }
        i += 1
        switch e {
        case 0x6E: return 0x0A
        case 0x74: return 0x09
        case 0x72: return 0x0D
        case 0x30: return 0
        case 0x78: return try hex(2)
        case 0x75: return try hex(4)
        case 0x55: return try hex(8)
        default: return e   // \\ \" \] \[ \- and any other character stand for themselves
        }
    }

    mutating func hex(_ n: Int) throws -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<n {
            guard let c = peek(), let d = Int(String(Character(Unicode.Scalar(c) ?? "g")), radix: 16) else {
                throw err("expected \(n) hex digits")
            }
            v = v << 4 | UInt32(d); i += 1
        }
        guard v <= 0x10FFFF else { throw err("code point \(v) out of range") }
        return v
    }

    mutating func parseLiteral() throws -> [Grammar.Element] {
        i += 1
        var out: [Grammar.Element] = []
        while true {
            guard let c = peek() else { throw err("unterminated string literal") }
            if c == 0x22 { i += 1; break }
            let ch = try parseChar()
            out.append(.chars(.init(ranges: [ch...ch], negated: false)))
        }
        return out
    }

    mutating func parseClass() throws -> Grammar.CharSet {
        i += 1
        var set = Grammar.CharSet(ranges: [], negated: false)
        if peek() == 0x5E { set.negated = true; i += 1 }
        while true {
            guard let c = peek() else { throw err("unterminated character class") }
            if c == 0x5D { i += 1; break }
            let a = try parseChar()
            if peek() == 0x2D, let n = peek(1), n != 0x5D {
                i += 1
                let b = try parseChar()
                guard b >= a else { throw err("character range out of order") }
                set.ranges.append(a...b)
            } else {
                set.ranges.append(a...a)
            }
        }
        return set
    }
}

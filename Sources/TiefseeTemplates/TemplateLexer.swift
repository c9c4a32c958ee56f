import Foundation

/// A template syntax or runtime error. `line`/`column` are 1-based (0 when unknown);
/// `description` names them. For `raise_exception(msg)` the `message` is exactly `msg`.
public struct TemplateError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case syntax, runtime, raised }
    public let kind: Kind
    public let message: String
    public internal(set) var line: Int
    public internal(set) var column: Int

    init(_ kind: Kind, _ message: String, line: Int = 0, column: Int = 0) {
        self.kind = kind; self.message = message; self.line = line; self.column = column
    }
    static func runtime(_ m: String) -> TemplateError { TemplateError(.runtime, m) }

    public var description: String {
        let what: String
        switch kind {
        case .syntax: what = "template syntax error"
        case .runtime: what = "template error"
        case .raised: what = "template raised an exception"
        }
        guard line > 0 else { return "\(what): \(message)" }
        return column > 0 ? "\(what) at line \(line), column \(column): \(message)"
            : "\(what) at line \(line): \(message)"
    }
}

/// One lexical token. Template text becomes `.text`; the inside of `{{ }}` / `{% %}` becomes
/// expression tokens framed by begin/end markers.
enum TokenKind: Equatable {
    case text(String)
    case varBegin, varEnd, blockBegin, blockEnd
    case name(String)
    case string(String)
    case int(Int)
    case float(Double)
    case op(String)
    case eof
}

struct Token {
    let kind: TokenKind
    let line: Int
    let col: Int
}

/// Splits template source into tokens, applying Jinja's whitespace rules as transformers
/// configures them: `trim_blocks` (drop the first newline after a block or comment tag),
/// `lstrip_blocks` (drop spaces/tabs before a block or comment tag that starts a line),
/// `-` markers (strip all whitespace on that side), `+` markers (disable the two options),
/// newline normalisation and removal of one trailing newline (`keep_trailing_newline=False`).
struct TemplateLexer {
    private let b: [UInt8]
    private var lineStarts: [Int] = [0]
    private var tokens: [Token] = []
    let trimBlocks: Bool
    let lstripBlocks: Bool

    init(_ source: String, trimBlocks: Bool = true, lstripBlocks: Bool = true) {
        var bytes = [UInt8]()
        bytes.reserveCapacity(source.utf8.count)
        var it = source.utf8.makeIterator()
        var pendingCR = false
        while let c = it.next() {
            if pendingCR { pendingCR = false; if c == 0x0A { continue } }
            if c == 0x0D { bytes.append(0x0A); pendingCR = true } else { bytes.append(c) }
        }
        if bytes.last == 0x0A { bytes.removeLast() }
        b = bytes
        self.trimBlocks = trimBlocks
        self.lstripBlocks = lstripBlocks
        for (i, c) in b.enumerated() where c == 0x0A { lineStarts.append(i + 1) }
    }

    // Column cache: tokens are positioned in increasing order, so columns are counted
    // incrementally from the previous token on the same line (keeps long one-line templates linear).
    private var cacheLine = -1, cacheOff = 0, cacheCol = 1

    /// 1-based line and column (in Unicode scalars) of byte offset `off`.
    func position(_ off: Int) -> (line: Int, col: Int) {
        let line = lineIndex(off)
        return (line + 1, scalarCount(from: lineStarts[line], to: off) + 1)
    }

    private func lineIndex(_ off: Int) -> Int {
        var lo = 0, hi = lineStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if lineStarts[mid] <= off { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    private func scalarCount(from a: Int, to e: Int) -> Int {
        var n = 0
        var i = a
        let end = min(e, b.count)
        while i < end { if b[i] & 0xC0 != 0x80 { n += 1 }; i += 1 }
        return n
    }

    private mutating func cachedPosition(_ off: Int) -> (line: Int, col: Int) {
        let line = lineIndex(off)
        if line == cacheLine && off >= cacheOff {
            cacheCol += scalarCount(from: cacheOff, to: off)
        } else {
            cacheCol = scalarCount(from: lineStarts[line], to: off) + 1
        }
        cacheLine = line; cacheOff = off
        return (line + 1, cacheCol)
    }

    private func fail(_ m: String, at off: Int) -> TemplateError {
        let p = position(off)
        return TemplateError(.syntax, m, line: p.line, column: p.col)
    }

    private func at(_ p: Int, _ s: String) -> Bool {
        let u = Array(s.utf8)
        guard p + u.count <= b.count else { return false }
        for k in 0..<u.count where b[p + k] != u[k] { return false }
        return true
    }

    private static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == 0x0B || c == 0x0C }

    private mutating func emit(_ k: TokenKind, _ off: Int) {
        let p = cachedPosition(off)
        tokens.append(Token(kind: k, line: p.line, col: p.col))
    }

    private mutating func emitText(_ from: Int, _ to: Int) {
        guard to > from else { return }
        emit(.text(String(decoding: b[from..<to], as: UTF8.self)), from)
    }

    /// Index of the next `{{`, `{%` or `{#` at or after `p`, or `b.count`.
    private func nextTagStart(_ p: Int) -> Int {
        var i = p
        while i + 1 < b.count {
            if b[i] == UInt8(ascii: "{") {
                let c = b[i + 1]
                if c == UInt8(ascii: "{") || c == UInt8(ascii: "%") || c == UInt8(ascii: "#") { return i }
            }
            i += 1
        }
        return b.count
    }

    /// Where the text before a tag at `tagStart` ends after whitespace control.
    private func textEnd(textStart: Int, tagStart: Int, strip: Bool, lstrip: Bool) -> Int {
        var e = tagStart
        if strip {
            while e > textStart, TemplateLexer.isSpace(b[e - 1]) { e -= 1 }
            return e
        }
        if lstrip {
            var k = e
            while k > textStart, b[k - 1] == 0x20 || b[k - 1] == 0x09 { k -= 1 }
            // Only when the tag starts its line: preceded by a newline or the template start.
            if k == 0 || b[k - 1] == 0x0A { return k }
        }
        return e
    }

    mutating func tokenize() throws -> [Token] {
        var pos = 0
        while pos < b.count {
            let t = nextTagStart(pos)
            if t >= b.count { emitText(pos, b.count); break }
            let kindChar = b[t + 1]
            var mod: UInt8 = 0
            if t + 2 < b.count, b[t + 2] == UInt8(ascii: "-") || b[t + 2] == UInt8(ascii: "+") { mod = b[t + 2] }
            let isBlockLike = kindChar != UInt8(ascii: "{")
            let strip = mod == UInt8(ascii: "-")
            let lstrip = lstripBlocks && isBlockLike && mod != UInt8(ascii: "+")

            // Raw block: emit its content verbatim.
            if kindChar == UInt8(ascii: "%"), let raw = try rawBlock(at: t, bodyStart: t + 2 + (mod != 0 ? 1 : 0)) {
                emitText(pos, textEnd(textStart: pos, tagStart: t, strip: strip, lstrip: lstrip))
                emitText(raw.contentStart, raw.contentEnd)
                pos = raw.after
                continue
            }

            emitText(pos, textEnd(textStart: pos, tagStart: t, strip: strip, lstrip: lstrip))
            var p = t + 2 + (mod != 0 ? 1 : 0)

            if kindChar == UInt8(ascii: "#") {
                // Comment: find "#}".
                var e = p
                while e + 1 < b.count, !(b[e] == UInt8(ascii: "#") && b[e + 1] == UInt8(ascii: "}")) { e += 1 }
                guard e + 1 < b.count else { throw fail("missing end of comment tag", at: t) }
                let endMod: UInt8 = e > p ? b[e - 1] : 0
                pos = afterTag(e + 2, endMod: endMod, block: true)
                continue
            }

            let isVar = kindChar == UInt8(ascii: "{")
            emit(isVar ? .varBegin : .blockBegin, t)
            var depth = 0
            while true {
                while p < b.count, TemplateLexer.isSpace(b[p]) { p += 1 }
                guard p < b.count else {
                    throw fail(isVar ? "unexpected end of template, expected '}}'" : "unexpected end of template, expected '%}'", at: t)
                }
                if depth == 0 {
                    let close = isVar ? "}}" : "%}"
                    var endMod: UInt8 = 0
                    var matched = false
                    if (b[p] == UInt8(ascii: "-") || b[p] == UInt8(ascii: "+")) && at(p + 1, close) {
                        endMod = b[p]; matched = true
                    } else if at(p, close) { matched = true }
                    if matched {
                        emit(isVar ? .varEnd : .blockEnd, p)
                        let after = p + (endMod != 0 ? 1 : 0) + 2
                        pos = afterTag(after, endMod: endMod, block: !isVar)
                        break
                    }
                }
                let c = b[p]
                if c == UInt8(ascii: "_") || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) {
                    let s = p
                    while p < b.count, b[p] == UInt8(ascii: "_") || (b[p] >= 0x41 && b[p] <= 0x5A) || (b[p] >= 0x61 && b[p] <= 0x7A) || (b[p] >= 0x30 && b[p] <= 0x39) { p += 1 }
                    emit(.name(String(decoding: b[s..<p], as: UTF8.self)), s)
                } else if c >= 0x30 && c <= 0x39 {
                    try lexNumber(&p)
                } else if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") {
                    try lexString(&p)
                } else {
                    let two = p + 1 < b.count ? String(decoding: b[p..<p + 2], as: UTF8.self) : ""
                    if ["//", "**", "==", "!=", "<=", ">="].contains(two) {
                        emit(.op(two), p); p += 2
                    } else if "+-*/%~<>=.,:|()[]{}".utf8.contains(c) {
                        if c == UInt8(ascii: "(") || c == UInt8(ascii: "[") || c == UInt8(ascii: "{") { depth += 1 }
                        if c == UInt8(ascii: ")") || c == UInt8(ascii: "]") || c == UInt8(ascii: "}") {
                            if depth == 0 { throw fail("unexpected '\(Character(Unicode.Scalar(c)))'", at: p) }
                            depth -= 1
                        }
                        emit(.op(String(Character(Unicode.Scalar(c)))), p); p += 1
                    } else {
                        let s = String(decoding: b[p..<min(p + 4, b.count)], as: UTF8.self).unicodeScalars.first.map { String($0) } ?? "?"
                        throw fail("unexpected character '\(s)'", at: p)
                    }
                }
            }
        }
        emit(.eof, b.count)
        return tokens
    }

    /// Position after a tag's closing delimiter, applying `-` (strip all whitespace) or
    /// trim_blocks (drop one newline) unless the `+` modifier was used.
    private func afterTag(_ after: Int, endMod: UInt8, block: Bool) -> Int {
        var q = after
        if endMod == UInt8(ascii: "-") {
            while q < b.count, TemplateLexer.isSpace(b[q]) { q += 1 }
        } else if block && trimBlocks && endMod != UInt8(ascii: "+"), q < b.count, b[q] == 0x0A {
            q += 1
        }
        return q
    }

    private struct Raw { let contentStart: Int; let contentEnd: Int; let after: Int }

    /// Recognises `{% raw %}` at `t`; returns the verbatim content range and the position after `{% endraw %}`.
    private func rawBlock(at t: Int, bodyStart: Int) throws -> Raw? {
        var p = bodyStart
        while p < b.count, TemplateLexer.isSpace(b[p]) { p += 1 }
        guard at(p, "raw") else { return nil }
        p += 3
        while p < b.count, TemplateLexer.isSpace(b[p]) { p += 1 }
        var endMod: UInt8 = 0
        if p < b.count, b[p] == UInt8(ascii: "-") || b[p] == UInt8(ascii: "+") { endMod = b[p]; p += 1 }
        guard at(p, "%}") else { return nil }
        let contentStart = afterTag(p + 2, endMod: endMod, block: true)
        // Find {% endraw %}
        var s = contentStart
        while s < b.count {
            guard let rel = findTag(from: s) else { break }
            var q = rel + 2
            var startMod: UInt8 = 0
            if q < b.count, b[q] == UInt8(ascii: "-") || b[q] == UInt8(ascii: "+") { startMod = b[q]; q += 1 }
            while q < b.count, TemplateLexer.isSpace(b[q]) { q += 1 }
            if at(q, "endraw") {
                q += 6
                while q < b.count, TemplateLexer.isSpace(b[q]) { q += 1 }
                var em: UInt8 = 0
                if q < b.count, b[q] == UInt8(ascii: "-") || b[q] == UInt8(ascii: "+") { em = b[q]; q += 1 }
                if at(q, "%}") {
                    let end = textEnd(textStart: contentStart, tagStart: rel, strip: startMod == UInt8(ascii: "-"),
                                      lstrip: lstripBlocks && startMod != UInt8(ascii: "+"))
                    return Raw(contentStart: contentStart, contentEnd: end, after: afterTag(q + 2, endMod: em, block: true))
                }
            }
            s = rel + 2
        }
        throw fail("missing '{% endraw %}'", at: t)
    }

    private func findTag(from p: Int) -> Int? {
        var i = p
        while i + 1 < b.count {
            if b[i] == UInt8(ascii: "{") && b[i + 1] == UInt8(ascii: "%") { return i }
            i += 1
        }
        return nil
    }

    private mutating func lexNumber(_ p: inout Int) throws {
        let s = p
        func digits() { while p < b.count, (b[p] >= 0x30 && b[p] <= 0x39) || (b[p] == UInt8(ascii: "_") && p + 1 < b.count && b[p + 1] >= 0x30 && b[p + 1] <= 0x39) { p += 1 } }
        if b[p] == UInt8(ascii: "0"), p + 1 < b.count, "xXoObB".utf8.contains(b[p + 1]) {
            let radix: Int = (b[p + 1] | 0x20) == UInt8(ascii: "x") ? 16 : (b[p + 1] | 0x20) == UInt8(ascii: "o") ? 8 : 2
            p += 2
            let ds = p
            while p < b.count, b[p] == UInt8(ascii: "_") || (b[p] < 0x80 && Int(String(Character(Unicode.Scalar(b[p]))), radix: radix) != nil) { p += 1 }
            let txt = String(decoding: b[ds..<p], as: UTF8.self).replacingOccurrences(of: "_", with: "")
            guard let v = Int(txt, radix: radix) else { throw fail("invalid number", at: s) }
            emit(.int(v), s)
            return
        }
        digits()
        var isFloat = false
        if p + 1 < b.count, b[p] == UInt8(ascii: "."), b[p + 1] >= 0x30 && b[p + 1] <= 0x39 {
            isFloat = true; p += 1; digits()
        }
        if p < b.count, b[p] == UInt8(ascii: "e") || b[p] == UInt8(ascii: "E") {
            var q = p + 1
            if q < b.count, b[q] == UInt8(ascii: "+") || b[q] == UInt8(ascii: "-") { q += 1 }
            if q < b.count, b[q] >= 0x30 && b[q] <= 0x39 { isFloat = true; p = q; digits() }
        }
        let txt = String(decoding: b[s..<p], as: UTF8.self).replacingOccurrences(of: "_", with: "")
        if isFloat {
            guard let d = Double(txt) else { throw fail("invalid number", at: s) }
            emit(.float(d), s)
        } else {
            guard let v = Int(txt) else { throw fail("integer literal too large", at: s) }
            emit(.int(v), s)
        }
    }

    private mutating func lexString(_ p: inout Int) throws {
        let s = p
        let q = b[p]
        p += 1
        let cs = p
        while p < b.count, b[p] != q {
            if b[p] == UInt8(ascii: "\\") { p += 1 }
            p += 1
        }
        guard p < b.count else { throw fail("unterminated string literal", at: s) }
        let raw = String(decoding: b[cs..<p], as: UTF8.self)
        p += 1
        emit(.string(TemplateLexer.unescape(raw)), s)
    }

    /// Python `unicode-escape` decoding as Jinja applies it to string literals; unknown
    /// escapes keep their backslash.
    static func unescape(_ raw: String) -> String {
        guard raw.contains("\\") else { return raw }
        let u = Array(raw.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        func hex(_ n: Int) -> UInt32? {
            guard i + n <= u.count else { return nil }
            var v: UInt32 = 0
            for k in 0..<n {
                guard let d = Int(String(u[i + k]), radix: 16) else { return nil }
                v = v * 16 + UInt32(d)
            }
            return v
        }
        while i < u.count {
            let c = u[i]
            guard c == "\\", i + 1 < u.count else { out.append(c); i += 1; continue }
            let e = u[i + 1]
            i += 2
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "v": out.append("\u{0B}")
            case "\n": break
            case "0"..."7":
                var v = e.value - 48
                var k = 0
                while k < 2, i < u.count, u[i].value >= 48 && u[i].value <= 55 { v = v * 8 + u[i].value - 48; i += 1; k += 1 }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            case "x", "u", "U":
                let n = e == "x" ? 2 : e == "u" ? 4 : 8
                if i + n <= u.count, let v = hex(n), let sc = Unicode.Scalar(v) { out.append(sc); i += n } else { out.append("\\"); out.append(e) }
            default: out.append("\\"); out.append(e)
            }
        }
        return String(out)
    }
}

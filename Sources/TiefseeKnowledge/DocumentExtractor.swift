import Foundation

/// One paragraph of a document with its citation anchor: the heading path above it and, for
/// paged formats (PDF), its page number (1-based).
public struct TextBlock: Equatable, Sendable {
    public var headings: [String]
    public var page: Int?
    public var text: String
    public init(headings: [String], page: Int? = nil, text: String) { self.headings = headings; self.page = page; self.text = text }
}

public struct ExtractedDocument: Sendable {
    public var title: String?
    public var blocks: [TextBlock]
}

public struct ExtractionError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

/// Turns .txt, .md, .html, .pdf (poppler's pdftotext) and .docx (word/document.xml) files into
/// paragraphs that keep their heading path and page.
public enum DocumentExtractor {
    public static let supportedExtensions: Set<String> = ["txt", "md", "markdown", "html", "htm", "pdf", "docx"]

    public static func isSupported(_ path: String) -> Bool {
        supportedExtensions.contains(URL(fileURLWithPath: path).pathExtension.lowercased())
    }

    public static func extract(path: String, data: Data) throws -> ExtractedDocument {
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "md", "markdown": return markdown(decode(data))
        case "html", "htm": return html(decode(data))
        case "pdf": return try pdf(path: path)
        case "docx": return try docx(path: path)
        default: return plainText(decode(data))
        }
    }

    static func decode(_ data: Data) -> String {
        String(data: data, encoding: .utf8) ?? String(decoding: data, as: UTF8.self)
    }

    static func collapseSpaces(_ s: Substring) -> String {
        s.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).joined(separator: " ")
    }

    // MARK: plain text

    /// Paragraphs are separated by blank lines; a line underlined with === or --- is a heading,
    /// as is a first short line with no final punctuation (a title).
    public static func plainText(_ text: String) -> ExtractedDocument {
        let lines = text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n")
        var blocks = [TextBlock]()
        var headings = [String]()
        var para = [String]()
        var title: String?
        func flush() {
            let t = collapseSpaces(Substring(para.joined(separator: " ")))
            if !t.isEmpty { blocks.append(TextBlock(headings: headings, text: t)) }
            para = []
        }
        var i = 0
        while i < lines.count {
            let line = lines[i].trimmingCharacters(in: .whitespaces)
            let next = i + 1 < lines.count ? lines[i + 1].trimmingCharacters(in: .whitespaces) : ""
            if !line.isEmpty, next.count >= 3, next.allSatisfy({ $0 == "=" }) || next.allSatisfy({ $0 == "-" }) {
                flush()
                if next.first == "=" { headings = [line]; if title == nil { title = line } } else { headings = Array(headings.prefix(1)) + [line] }
                i += 2
                continue
            }
            if line.isEmpty { flush() } else { para.append(line) }
            i += 1
        }
        flush()
        return ExtractedDocument(title: title ?? blocks.first.map { String($0.text.prefix(80)) }, blocks: blocks)
    }

    // MARK: markdown

    public static func markdown(_ text: String) -> ExtractedDocument {
        var blocks = [TextBlock]()
        var stack = [(level: Int, text: String)]()
        var para = [String]()
        var title: String?
        var inFence = false
        func flush() {
            let t = collapseSpaces(Substring(para.joined(separator: "\n")))
            if !t.isEmpty { blocks.append(TextBlock(headings: stack.map(\.text), text: stripInline(t))) }
            para = []
        }
        for raw in text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("```") || line.hasPrefix("~~~") { inFence.toggle(); para.append(""); continue }
            if !inFence, line.hasPrefix("#") {
                let level = line.prefix(while: { $0 == "#" }).count
                let rest = line.dropFirst(level)
                if level <= 6, rest.isEmpty || rest.first == " " {
                    flush()
                    let h = stripInline(rest.trimmingCharacters(in: CharacterSet(charactersIn: " #")))
                    while let last = stack.last, last.level >= level { stack.removeLast() }
                    stack.append((level, h))
                    if title == nil && level == 1 { title = h }
                    continue
                }
            }
            if line.isEmpty && !inFence { flush(); continue }
            // List items and table rows keep their own line inside a paragraph.
            var l = line
            if l.hasPrefix("- ") || l.hasPrefix("* ") || l.hasPrefix("+ ") { l = "• " + l.dropFirst(2) }
            if l.hasPrefix("|") { l = l.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.allSatisfy({ $0 == "-" || $0 == ":" }) }.joined(separator: " | ") }
            if !l.isEmpty { para.append(l) }
        }
        flush()
        return ExtractedDocument(title: title, blocks: blocks)
    }

    /// Removes markdown emphasis, inline code ticks and link targets: `[text](url)` → text.
    static func stripInline(_ s: String) -> String {
        var out = ""
        var chars = Array(s)
        var i = 0
        chars.append("\0")
        while i < chars.count - 1 {
            let c = chars[i]
            if c == "[", let close = chars[i...].firstIndex(of: "]"), close + 1 < chars.count, chars[close + 1] == "(",
               let paren = chars[(close + 1)...].firstIndex(of: ")") {
                out += String(chars[(i + 1)..<close]); i = paren + 1; continue
            }
            if c == "*" || c == "`" || (c == "_" && (chars[i + 1] == "_" || i == 0 || chars[i - 1] == " ")) { i += 1; continue }
            out.append(c); i += 1
        }
        return out
    }

    // MARK: HTML

    public static func html(_ text: String) -> ExtractedDocument {
        var blocks = [TextBlock]()
        var stack = [(level: Int, text: String)]()
        var buf = ""
        var title: String?
        var headingLevel: Int? = nil
        var titleBuf: String? = nil
        func flush() {
            let t = collapseSpaces(Substring(decodeEntities(buf)))
            buf = ""
            guard !t.isEmpty else { return }
            if let lv = headingLevel {
                while let last = stack.last, last.level >= lv { stack.removeLast() }
                stack.append((lv, t))
                if title == nil && lv == 1 { title = t }
            } else {
                blocks.append(TextBlock(headings: stack.map(\.text), text: t))
            }
        }
        let blockTags: Set<String> = ["p", "div", "li", "ul", "ol", "br", "tr", "table", "section", "article", "header",
                                      "footer", "blockquote", "pre", "dd", "dt", "dl", "main", "nav", "aside", "hr", "body"]
        var s = text[...]
        while let lt = s.firstIndex(of: "<") {
            let chunk = s[..<lt]
            if titleBuf != nil { titleBuf! += chunk } else { buf += chunk }
            s = s[lt...]
            if s.hasPrefix("<!--") {
                if let end = s.range(of: "-->") { s = s[end.upperBound...] } else { s = s[s.endIndex...] }
                continue
            }
            guard let gt = s.firstIndex(of: ">") else { s = s[s.endIndex...]; break }
            let tagText = s[s.index(after: lt)..<gt]
            s = s[s.index(after: gt)...]
            let closing = tagText.hasPrefix("/")
            let name = tagText.drop(while: { $0 == "/" }).prefix(while: { $0.isLetter || $0.isNumber }).lowercased()
            // Scripts, styles and navigation menus are not content: a menu's "Intranet" link would
            // become a passage under the page's headings and win searches for the page's name.
            if !closing && (name == "script" || name == "style" || name == "nav") {
                if let end = s.range(of: "</\(name)", options: .caseInsensitive) { s = s[end.upperBound...]
                    if let g = s.firstIndex(of: ">") { s = s[s.index(after: g)...] } }
                continue
            }
            if name == "title" {
                if closing { if let t = titleBuf { let c = collapseSpaces(Substring(decodeEntities(t))); if !c.isEmpty { title = c } }; titleBuf = nil }
                else { titleBuf = "" }
                continue
            }
            if name.count == 2, name.first == "h", let lv = Int(String(name.last!)), (1...6).contains(lv) {
                flush()  // at <hN> the paragraph before; at </hN> the heading text itself
                headingLevel = closing ? nil : lv
                continue
            }
            if name == "td" || name == "th" {
                if !closing { buf += " | " }
            } else if name == "br" {
                buf += " "
            } else if blockTags.contains(name) {
                flush()
            }
        }
        if titleBuf == nil { buf += s }
        flush()
        return ExtractedDocument(title: title, blocks: blocks)
    }

    static func decodeEntities(_ s: String) -> String {
        guard s.contains("&") else { return s }
        var out = ""
        var i = s.startIndex
        let named: [String: String] = ["amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": " ",
                                       "auml": "ä", "ouml": "ö", "uuml": "ü", "Auml": "Ä", "Ouml": "Ö", "Uuml": "Ü", "szlig": "ß",
                                       "euro": "€", "ndash": "–", "mdash": "—", "hellip": "…", "copy": "©", "eacute": "é"]
        while i < s.endIndex {
            if s[i] == "&", let semi = s[i...].prefix(12).firstIndex(of: ";") {
                let ent = String(s[s.index(after: i)..<semi])
                var rep: String? = named[ent]
                if rep == nil, ent.hasPrefix("#") {
                    let num = ent.dropFirst()
                    let v = num.hasPrefix("x") || num.hasPrefix("X") ? UInt32(num.dropFirst(), radix: 16) : UInt32(num)
                    if let v, let u = Unicode.Scalar(v) { rep = String(Character(u)) }
                }
                if let r = rep { out += r; i = s.index(after: semi); continue }
            }
            out.append(s[i]); i = s.index(after: i)
        }
        return out
    }

    // MARK: PDF (pdftotext)

    /// The last heading of passages whose text was recognised from a page image: citations and
    /// the model's prompt show that the wording may carry recognition errors.
    public static let ocrNote = "text from OCR"

    /// Pages come from pdftotext's form feeds; paragraphs from blank lines. Lines that look like
    /// headings (short, no final punctuation, followed by text) set the heading for what follows.
    /// Pages without a text layer (scans) are rendered by pdftoppm and read by tesseract.
    public static func pdf(path: String) throws -> ExtractedDocument {
        let text = try runTool("pdftotext", ["-enc", "UTF-8", path, "-"], path: path, pagesToo: true)
        var pages = text.components(separatedBy: "\u{0C}")
        if pages.count > 1 && pages.last!.isEmpty { pages.removeLast() }   // pdftotext ends every page with a form feed
        var ocrPages = Set<Int>()
        let blank = pages.indices.filter { pages[$0].trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }
        for i in blank {
            let recognised: String
            do { recognised = try ocrPage(path: path, page: i + 1) } catch {
                // Without OCR a document that has text elsewhere keeps that text; a pure scan fails.
                if blank.count == pages.count { throw error }
                continue
            }
            if !recognised.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { pages[i] = recognised; ocrPages.insert(i + 1) }
        }
        return pdfText(pages.joined(separator: "\u{0C}"), ocrPages: ocrPages)
    }

    /// One page rendered at 300 dpi in gray (pdftoppm) and read by tesseract, German and English
    /// models when both are installed (tesseract-ocr-deu), else its default.
    static func ocrPage(path: String, page: Int) throws -> String {
        let dir = NSTemporaryDirectory() + "tiefsee-ocr-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try runTool("pdftoppm", ["-r", "300", "-gray", "-png", "-f", "\(page)", "-l", "\(page)", "-singlefile", path, dir + "/page"],
                        path: path, pagesToo: false)
        var args = [dir + "/page.png", "stdout"]
        if let l = ocrLanguages { args += ["-l", l] }
        return try runTool("tesseract", args, path: path, pagesToo: false)
    }

    /// "deu+eng" when tesseract has both models, nil (its default) otherwise.
    static let ocrLanguages: String? = {
        guard let out = try? runTool("tesseract", ["--list-langs"], path: "tesseract", pagesToo: false) else { return nil }
        let langs = Set(out.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) })
        return langs.contains("deu") && langs.contains("eng") ? "deu+eng" : nil
    }()

    static func pdfText(_ text: String, ocrPages: Set<Int> = []) -> ExtractedDocument {
        var blocks = [TextBlock]()
        var heading = [String]()
        var title: String?
        for (pi, page) in text.components(separatedBy: "\u{0C}").enumerated() {
            for para in page.components(separatedBy: "\n\n") {
                var lines = para.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                guard !lines.isEmpty else { continue }
                // pdftotext often glues the title and a section heading onto the paragraph below
                // them: leading short lines without sentence punctuation are peeled off as headings.
                while let first = lines.first, isHeadingLike(first), lines.count == 1 || !isHeadingLike(lines[1]) || title == nil {
                    if title == nil { title = first; heading = [first] } else { heading = [title!, first] }
                    lines.removeFirst()
                }
                guard !lines.isEmpty else { continue }
                let body = lines[...]
                let t = collapseSpaces(Substring(body.joined(separator: " ")))
                if !t.isEmpty {
                    blocks.append(TextBlock(headings: ocrPages.contains(pi + 1) ? heading + [ocrNote] : heading, page: pi + 1, text: t))
                }
            }
        }
        return ExtractedDocument(title: title, blocks: blocks)
    }

    static func isHeadingLike(_ line: String) -> Bool {
        guard line.count <= 80, let last = line.last else { return false }
        return !".,;:!?)".contains(last) && line.split(separator: " ").count <= 10
    }

    // MARK: DOCX

    /// Paragraphs of word/document.xml; paragraphs styled Heading N / Title / Überschrift N are headings.
    public static func docx(path: String) throws -> ExtractedDocument {
        let xml = try runTool("unzip", ["-p", path, "word/document.xml"], path: path, pagesToo: false)
        return docxXML(xml)
    }

    static func docxXML(_ xml: String) -> ExtractedDocument {
        var blocks = [TextBlock]()
        var stack = [(level: Int, text: String)]()
        var title: String?
        var s = xml[...]
        while let start = s.range(of: "<w:p") {
            // "<w:p>" or "<w:p " (not <w:pPr>, <w:pStyle>).
            let after = s[start.upperBound...]
            guard let c = after.first, c == ">" || c == " " else { s = after; continue }
            guard let end = after.range(of: "</w:p>") else { break }
            let p = after[..<end.lowerBound]
            s = after[end.upperBound...]
            var style = ""
            if let st = p.range(of: "<w:pStyle w:val=\"") {
                style = String(p[st.upperBound...].prefix(while: { $0 != "\"" }))
            }
            var text = ""
            var q = p
            while let t = q.range(of: "<w:t") {
                let rest = q[t.upperBound...]
                guard let c = rest.first, c == ">" || c == " ", let gt = rest.firstIndex(of: ">") else { q = rest; continue }
                if gt > rest.startIndex && rest[rest.index(before: gt)] == "/" { q = rest[gt...]; continue }  // <w:t/>
                guard let close = rest.range(of: "</w:t>") else { break }
                text += rest[rest.index(after: gt)..<close.lowerBound]
                q = rest[close.upperBound...]
            }
            let t = collapseSpaces(Substring(decodeEntities(text)))
            guard !t.isEmpty else { continue }
            let lower = style.lowercased()
            var level: Int? = nil
            if lower == "title" { level = 0 }
            else if lower.hasPrefix("heading") || lower.hasPrefix("berschrift") || lower.hasPrefix("überschrift") {
                level = Int(lower.filter(\.isNumber)) ?? 1
            }
            if let lv = level {
                while let last = stack.last, last.level >= lv { stack.removeLast() }
                stack.append((lv, t))
                if title == nil { title = t }
            } else {
                blocks.append(TextBlock(headings: stack.map(\.text), text: t))
            }
        }
        return ExtractedDocument(title: title, blocks: blocks)
    }

    // MARK: tools

    static func runTool(_ tool: String, _ args: [String], path: String, pagesToo: Bool) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [tool] + args
        let outPipe = Pipe(), errPipe = Pipe()
        p.standardOutput = outPipe
        p.standardError = errPipe
        do { try p.run() } catch {
            throw ExtractionError(path: path, reason: "cannot run \(tool) (\(error)); install it with scripts/setup.sh")
        }
        let data = outPipe.fileHandleForReading.readDataToEndOfFile()
        let errData = errPipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if p.terminationStatus == 127 {
            throw ExtractionError(path: path, reason: "\(tool) is not installed (poppler-utils / unzip / tesseract-ocr; run scripts/setup.sh)")
        }
        guard p.terminationStatus == 0 else {
            let msg = String(decoding: errData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw ExtractionError(path: path, reason: "\(tool) failed (\(p.terminationStatus)): \(msg.prefix(200))")
        }
        return String(decoding: data, as: UTF8.self)
    }
}

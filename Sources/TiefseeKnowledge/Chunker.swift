import Foundation

/// A piece of a document small enough to embed, with its citation anchor.
public struct Chunk: Equatable, Sendable {
    public var text: String
    /// Heading path, outermost first.
    public var headings: [String]
    public var page: Int?
    public var tokenCount: Int

    public var headingPath: String { headings.joined(separator: " › ") }

    /// The text the embedding model sees: heading path, then the passage.
    public var embeddingText: String { headings.isEmpty ? text : headingPath + "\n" + text }
}

/// Structure-aware chunking: paragraphs under the same heading (and page) are packed together up
/// to `maxTokens` embedding-model tokens; a chunk never crosses a heading or page boundary; a
/// paragraph longer than the budget is cut into word windows of `maxTokens` with `overlap`
/// tokens repeated between neighbours.
public struct Chunker: Sendable {
    public var maxTokens: Int
    public var overlap: Int
    public let countTokens: @Sendable (String) -> Int

    public init(maxTokens: Int = 160, overlap: Int = 32, countTokens: @escaping @Sendable (String) -> Int) {
        self.maxTokens = maxTokens
        self.overlap = min(overlap, maxTokens / 2)
        self.countTokens = countTokens
    }

    public func chunk(_ doc: ExtractedDocument) -> [Chunk] {
        var chunks = [Chunk]()
        var cur = [String]()
        var curTokens = 0
        var anchor: (headings: [String], page: Int?)? = nil
        func emit() {
            if let a = anchor, !cur.isEmpty {
                chunks.append(Chunk(text: cur.joined(separator: "\n"), headings: a.headings, page: a.page, tokenCount: curTokens))
            }
            cur = []; curTokens = 0
        }
        for b in doc.blocks {
            var headings = b.headings
            if let t = doc.title, headings.first != t { headings.insert(t, at: 0) }
            if anchor == nil || anchor!.headings != headings || anchor!.page != b.page {
                emit()
                anchor = (headings, b.page)
            }
            let n = countTokens(b.text)
            if n > maxTokens {
                emit()
                for w in windows(b.text) {
                    chunks.append(Chunk(text: w.text, headings: headings, page: b.page, tokenCount: w.tokens))
                }
                continue
            }
            if curTokens + n > maxTokens { emit() }
            cur.append(b.text)
            curTokens += n
        }
        emit()
        return chunks
    }

    /// Word windows of at most maxTokens tokens, consecutive windows sharing ~overlap tokens.
    func windows(_ text: String) -> [(text: String, tokens: Int)] {
        let words = text.split(separator: " ").map(String.init)
        let counts = words.map { max(1, countTokens($0)) }
        var out = [(String, Int)]()
        var start = 0
        while start < words.count {
            var end = start, total = 0
            while end < words.count && (end == start || total + counts[end] <= maxTokens) { total += counts[end]; end += 1 }
            out.append((words[start..<end].joined(separator: " "), total))
            if end >= words.count { break }
            // Step back so the next window repeats about `overlap` tokens.
            var back = end, kept = 0
            while back > start + 1 && kept + counts[back - 1] <= overlap { kept += counts[back - 1]; back -= 1 }
            start = back
        }
        return out
    }
}

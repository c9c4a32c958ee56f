import Foundation
import Tiefsee

/// A retrieved passage with its source and scores.
public struct KnowledgeHit: Sendable {
    public var chunkID: Int64
    public var path: String
    public var title: String
    public var headingPath: String
    public var page: Int?
    public var text: String
    /// Reciprocal-rank-fusion score (hybrid), or the single method's score.
    public var score: Double
    /// Cosine similarity between the query and the passage embedding.
    public var similarity: Float
    /// 1-based ranks in the BM25 and vector lists (nil: not in that list's candidates).
    public var bm25Rank: Int?
    public var vectorRank: Int?
    /// The cross-encoder's relevance score when the hits were reranked.
    public var rerankScore: Float?

    /// What a reranker reads: the heading path (context the passage's own text may lack) and the text.
    public var rerankText: String { headingPath.isEmpty ? text : headingPath + "\n" + text }

    /// "file › heading (p. 3)"
    public var citation: String {
        var s = URL(fileURLWithPath: path).lastPathComponent
        let h = headingPath
        if !h.isEmpty { s += " › " + h }
        if let p = page { s += " (p. \(p))" }
        return s
    }
}

public struct DocumentInfo: Sendable {
    public var path: String
    public var title: String
    public var hash: String
    public var chunks: Int
    public var mtime: Double
}

public struct IngestProgress: Sendable {
    public var documentsDone: Int
    public var documentsTotal: Int
    public var bytesDone: Int
    public var bytesTotal: Int
    public var chunksEmbedded: Int
    public var elapsed: Double
    public var current: String
    /// Seconds left, from the bytes still to process at the rate so far (nil until measurable).
    public var eta: Double? {
        guard bytesDone > 0, elapsed > 0.2, bytesTotal > bytesDone else { return bytesTotal <= bytesDone ? 0 : nil }
        return Double(bytesTotal - bytesDone) / (Double(bytesDone) / elapsed)
    }
}

public struct IngestReport: Sendable {
    public var added: [String] = []
    public var updated: [String] = []
    public var unchanged = 0
    public var removed: [String] = []
    public var failed: [(path: String, error: String)] = []
    public var chunksEmbedded = 0
    public var embedSeconds = 0.0
    public var seconds = 0.0
    public var interrupted = false
    /// Documents whose chunks were (re)computed.
    public var processed: [String] { added + updated }
}

public enum RetrievalMode: String, Sendable, CaseIterable { case hybrid, bm25, vector }

/// A named knowledge base: one SQLite file (WAL) holding documents (path, content hash, mtime),
/// chunks (text, heading path, page, embedding) and an FTS5 index over the chunks for BM25.
///
/// Ingest commits whole documents per transaction, so a crash (Ctrl-C, kill -9) leaves every
/// document either in its old or its new state; re-running `add` finishes the job.
public final class KnowledgeBase: @unchecked Sendable {
    public let name: String
    public let path: String
    let db: SQLiteDB
    private var embedderStorage: EmbeddingModel?
    private let embedderName: String?
    private var vectorCache: (ids: [Int64], vectors: [Float])?
    public var chunkerMaxTokens = 160
    public var chunkerOverlap = 32
    /// Chunks embedded per forward batch during ingest.
    public var ingestBatchChunks = 48

    public static var directory: String { ModelCache.home + "/kb" }
    public static func path(forName name: String) -> String { directory + "/" + name + ".sqlite" }

    /// Names of the bases in `directory`.
    public static func list() -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return files.filter { $0.hasSuffix(".sqlite") }.map { String($0.dropLast(7)) }.sorted()
    }

    public static func exists(name: String) -> Bool { FileManager.default.fileExists(atPath: path(forName: name)) }

    /// Deletes a base with its WAL files.
    public static func delete(name: String) throws {
        let p = path(forName: name)
        guard FileManager.default.fileExists(atPath: p) else { throw KnowledgeError("no knowledge base named '\(name)'") }
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: p + suffix) }
    }

    public static func validName(_ n: String) -> Bool {
        !n.isEmpty && n.count <= 64 && n.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." } && !n.hasPrefix(".")
    }

    /// Opens (creating when missing) the base `name`, or the file at `path`. `embedder` is loaded
    /// lazily from `embeddingModel` (default model when nil) unless given.
    public init(name: String = "default", path: String? = nil, embedder: EmbeddingModel? = nil,
                embeddingModel: String? = nil, create: Bool = true) throws {
        guard path != nil || KnowledgeBase.validName(name) else { throw KnowledgeError("invalid knowledge base name '\(name)'") }
        self.name = name
        let p = path ?? KnowledgeBase.path(forName: name)
        if !create && !FileManager.default.fileExists(atPath: p) { throw KnowledgeError("no knowledge base named '\(name)' (\(p))") }
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        self.path = p
        db = try SQLiteDB(path: p)
        embedderStorage = embedder
        embedderName = embeddingModel
        try db.exec("""
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=NORMAL;
            PRAGMA foreign_keys=ON;
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS documents(
                id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, hash TEXT NOT NULL, mtime REAL NOT NULL,
                size INTEGER NOT NULL, title TEXT NOT NULL, chunk_count INTEGER NOT NULL, ingested_at REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS chunks(
                id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
                ord INTEGER NOT NULL, text TEXT NOT NULL, headings TEXT NOT NULL, page INTEGER,
                tokens INTEGER NOT NULL, embedding BLOB NOT NULL);
            CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
            CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
                text, headings, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2');
            CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
                INSERT INTO chunks_fts(rowid, text, headings) VALUES (new.id, new.text, new.headings);
            END;
            CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
                INSERT INTO chunks_fts(chunks_fts, rowid, text, headings) VALUES ('delete', old.id, old.text, old.headings);
            END;
            """)
    }

    public func embedder() throws -> EmbeddingModel {
        if let e = embedderStorage { return e }
        // The model the base was built with: by name in the model cache, else the folder it was
        // loaded from (a model given as a path), else the default.
        let want = try meta("embedding_model")
        let folder = try meta("embedding_model_path")
        let e = try EmbeddingModel.load(embedderName ?? want.flatMap { n in
            FileManager.default.fileExists(atPath: ModelCache.modelsDirectory + "/" + n) ? n : nil }
            ?? folder.flatMap { FileManager.default.fileExists(atPath: $0 + "/config.json") ? $0 : nil })
        embedderStorage = e
        return e
    }

    func meta(_ key: String) throws -> String? {
        var v: String?
        try db.run("SELECT value FROM meta WHERE key = ?", [.text(key)]) { v = $0.text(0) }
        return v
    }

    func setMeta(_ key: String, _ value: String) throws {
        try db.run("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                   [.text(key), .text(value)])
    }

    /// The base records which embedding model (and dimension) its vectors come from.
    func checkEmbedder(_ e: EmbeddingModel) throws {
        if let m = try meta("embedding_model"), let d = try meta("embedding_dim") {
            guard m == e.name, Int(d) == e.dimension else {
                throw KnowledgeError("knowledge base '\(name)' was built with embedding model \(m) (\(d) dims), not \(e.name) (\(e.dimension)); rebuild it or use that model")
            }
            if try meta("embedding_model_path") == nil { try setMeta("embedding_model_path", KnowledgeBase.absolutePath(e.folder)) }
        } else {
            try setMeta("embedding_model_path", KnowledgeBase.absolutePath(e.folder))
            try setMeta("embedding_model", e.name)
            try setMeta("embedding_dim", String(e.dimension))
            try setMeta("chunking", "\(chunkerMaxTokens)/\(chunkerOverlap)")
        }
    }

    // MARK: listing

    public func documents() throws -> [DocumentInfo] {
        var out = [DocumentInfo]()
        try db.run("SELECT path, title, hash, chunk_count, mtime FROM documents ORDER BY path") {
            out.append(DocumentInfo(path: $0.text(0), title: $0.text(1), hash: $0.text(2), chunks: Int($0.int(3)), mtime: $0.double(4)))
        }
        return out
    }

    public func counts() throws -> (documents: Int, chunks: Int) {
        (Int(try db.scalarInt("SELECT count(*) FROM documents") ?? 0), Int(try db.scalarInt("SELECT count(*) FROM chunks") ?? 0))
    }

    /// A canonical, comparable dump of the whole base (documents, chunks, embeddings digest), for tests.
    public func contentDigest() throws -> String {
        var h = SHA256()
        try db.run("""
            SELECT d.path, d.hash, d.title, c.ord, c.text, c.headings, coalesce(c.page, -1), c.tokens, c.embedding
            FROM chunks c JOIN documents d ON d.id = c.doc_id ORDER BY d.path, c.ord
            """) { s in
            for i in 0..<8 { h.update(Array(s.text(Int32(i)).utf8)); h.update([0]) }
            h.update(s.blob(8))
        }
        try db.run("SELECT path, hash, chunk_count FROM documents ORDER BY path") { s in
            h.update(Array("\(s.text(0))|\(s.text(1))|\(s.int(2))".utf8))
        }
        return SHA256.hex(h.finalize())
    }

    // MARK: ingest

    /// Files under `paths` (folders recursively) with supported extensions, absolute and sorted.
    public static func collectFiles(_ paths: [String]) throws -> [String] {
        let fm = FileManager.default
        var out = Set<String>()
        for p in paths {
            let abs = absolutePath(p)
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: abs, isDirectory: &isDir) else { throw KnowledgeError("\(p): no such file or folder") }
            if isDir.boolValue {
                guard let e = fm.enumerator(atPath: abs) else { continue }
                while let rel = e.nextObject() as? String {
                    let full = abs + "/" + rel
                    if URL(fileURLWithPath: rel).lastPathComponent.hasPrefix(".") { continue }
                    var d: ObjCBool = false
                    if fm.fileExists(atPath: full, isDirectory: &d), !d.boolValue, DocumentExtractor.isSupported(full) { out.insert(full) }
                }
            } else {
                out.insert(abs)
            }
        }
        return out.sorted()
    }

    static func absolutePath(_ p: String) -> String {
        let expanded = (p as NSString).expandingTildeInPath
        let abs = expanded.hasPrefix("/") ? expanded : FileManager.default.currentDirectoryPath + "/" + expanded
        var s = (abs as NSString).standardizingPath
        while s.count > 1 && s.hasSuffix("/") { s.removeLast() }
        return s
    }

    struct Pending {
        let path: String
        let hash: String
        let mtime: Double
        let size: Int
        let isNew: Bool
        var title: String
        var chunks: [Chunk]
        var error: String?
    }

    typealias KnownDocument = (hash: String, mtime: Double, size: Int)

    /// Adds or refreshes the documents under `paths`: new and changed files (by content hash) are
    /// extracted, chunked and embedded; unchanged files are skipped; files that disappeared from
    /// under these paths are dropped. `shouldStop` is polled between commits (Ctrl-C).
    @discardableResult
    public func add(paths: [String], progress: ((IngestProgress) -> Void)? = nil,
                    shouldStop: () -> Bool = { false }) throws -> IngestReport {
        let t0 = Date()
        var report = IngestReport()
        let files = try KnowledgeBase.collectFiles(paths)
        var known = [String: KnownDocument]()
        try db.run("SELECT path, hash, mtime, size FROM documents") { known[$0.text(0)] = ($0.text(1), $0.double(2), Int($0.int(3))) }
        report.removed = try dropVanished(known: known, under: paths.map(KnowledgeBase.absolutePath), listed: Set(files))
        let todo = changedFiles(files, known: known, unchanged: &report.unchanged)
        var prog = IngestProgress(documentsDone: 0, documentsTotal: todo.count, bytesDone: 0,
                                  bytesTotal: todo.reduce(0) { $0 + $1.size }, chunksEmbedded: 0, elapsed: 0, current: "")
        progress?(prog)
        if todo.isEmpty { report.seconds = Date().timeIntervalSince(t0); return report }
        let emb = try embedder()
        try checkEmbedder(emb)
        let chunker = Chunker(maxTokens: chunkerMaxTokens, overlap: chunkerOverlap,
                              countTokens: { [tok = emb.tokenizer] in tok.countTokens($0) })
        var group = [Pending]()
        func flush() throws {
            try commit(group, embedder: emb, report: &report, progress: &prog)
            prog.elapsed = Date().timeIntervalSince(t0)
            if !group.isEmpty { progress?(prog) }
            group = []
        }

        // Extraction (pdftotext, unzip, parsing, chunking) runs ahead on two threads while the
        // encoder embeds the previous group on the pool, so tool start-up and parsing overlap it.
        let ahead = IngestPrefetch(count: todo.count, window: 16, workers: 2) { [known] i in
            KnowledgeBase.prepare(todo[i], known: known[todo[i].path], chunker: chunker)
        }
        defer { ahead.cancel() }
        for (i, item) in todo.enumerated() {
            if shouldStop() { report.interrupted = true; break }
            prog.current = item.path
            switch ahead.result(i) {
            case .unchanged:
                // Touched but not changed: remember the new mtime, keep the chunks.
                try db.run("UPDATE documents SET mtime = ?, size = ? WHERE path = ?", [.double(item.mtime), .int(Int64(item.size)), .text(item.path)])
                report.unchanged += 1
                prog.documentsTotal -= 1; prog.bytesTotal -= item.size
            case .failed(let e):
                report.failed.append((item.path, e))
                prog.documentsTotal -= 1; prog.bytesTotal -= item.size
            case .ready(let d):
                group.append(d)
                if group.reduce(0, { $0 + $1.chunks.count }) >= ingestBatchChunks { try flush() }
            }
        }
        // Interrupted too: what was extracted is committed, so the next run has less to do.
        try flush()
        report.seconds = Date().timeIntervalSince(t0)
        return report
    }

    /// Deletes the known documents under `roots` that are neither listed nor on disk any more.
    func dropVanished(known: [String: KnownDocument], under roots: [String], listed: Set<String>) throws -> [String] {
        let gone = known.keys.filter { k in
            !listed.contains(k) && roots.contains { r in k == r || k.hasPrefix(r.hasSuffix("/") ? r : r + "/") }
                && !FileManager.default.fileExists(atPath: k)
        }.sorted()
        guard !gone.isEmpty else { return [] }
        try db.transaction { for g in gone { try db.run("DELETE FROM documents WHERE path = ?", [.text(g)]) } }
        vectorCache = nil
        return gone
    }

    /// The files whose size or mtime differ from what the base holds (the content hash decides later).
    func changedFiles(_ files: [String], known: [String: KnownDocument], unchanged: inout Int)
        -> [(path: String, size: Int, mtime: Double)] {
        var todo = [(path: String, size: Int, mtime: Double)]()
        for f in files {
            let attrs = try? FileManager.default.attributesOfItem(atPath: f)
            let size = (attrs?[.size] as? NSNumber)?.intValue ?? 0
            let mtime = (attrs?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            if let k = known[f], k.size == size, k.mtime == mtime { unchanged += 1; continue }
            todo.append((f, size, mtime))
        }
        return todo
    }

    /// Embeds a group of extracted documents in one batch and replaces their rows in one
    /// transaction: a crash leaves each document either wholly old or wholly new.
    func commit(_ group: [Pending], embedder e: EmbeddingModel, report: inout IngestReport,
                progress prog: inout IngestProgress) throws {
        guard !group.isEmpty else { return }
        let texts = group.flatMap { $0.chunks.map(\.embeddingText) }
        let te = Date()
        let vectors = try e.embed(texts)
        report.embedSeconds += Date().timeIntervalSince(te)
        var vi = 0
        let now = Date().timeIntervalSince1970
        try db.transaction {
            for d in group {
                try db.run("DELETE FROM documents WHERE path = ?", [.text(d.path)])
                try db.run("""
                    INSERT INTO documents(path, hash, mtime, size, title, chunk_count, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, [.text(d.path), .text(d.hash), .double(d.mtime), .int(Int64(d.size)), .text(d.title),
                          .int(Int64(d.chunks.count)), .double(now)])
                let docID = db.lastInsertRowID
                for (i, c) in d.chunks.enumerated() {
                    let v = KnowledgeBase.normalized(vectors[vi]); vi += 1
                    let blob = v.withUnsafeBytes { [UInt8]($0) }
                    try db.run("INSERT INTO chunks(doc_id, ord, text, headings, page, tokens, embedding) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               [.int(docID), .int(Int64(i)), .text(c.text), .text(c.headingPath),
                                c.page.map { .int(Int64($0)) } ?? .null, .int(Int64(c.tokenCount)), .blob(blob)])
                }
            }
        }
        for d in group {
            if d.isNew { report.added.append(d.path) } else { report.updated.append(d.path) }
            prog.documentsDone += 1
            prog.bytesDone += d.size
        }
        report.chunksEmbedded += texts.count
        prog.chunksEmbedded += texts.count
        vectorCache = nil
    }

    /// Reads, hashes, extracts and chunks one file for `add` (runs on the prefetch threads).
    static func prepare(_ item: (path: String, size: Int, mtime: Double), known: KnownDocument?,
                        chunker: Chunker) -> IngestPrefetch.Outcome {
        guard let data = FileManager.default.contents(atPath: item.path) else { return .failed("cannot read") }
        let hash = SHA256.hex(SHA256.hash(data))
        if let k = known, k.hash == hash { return .unchanged }
        do {
            let doc = try DocumentExtractor.extract(path: item.path, data: data)
            let title = doc.title ?? URL(fileURLWithPath: item.path).deletingPathExtension().lastPathComponent
            return .ready(Pending(path: item.path, hash: hash, mtime: item.mtime, size: item.size, isNew: known == nil,
                                  title: title, chunks: chunker.chunk(doc)))
        } catch {
            return .failed("\(error)")
        }
    }

    /// Removes documents by path (or every document under a folder path). Returns the removed paths.
    @discardableResult
    public func remove(paths: [String]) throws -> [String] {
        var removed = [String]()
        let all = try documents().map(\.path)
        try db.transaction {
            for p in paths {
                let abs = KnowledgeBase.absolutePath(p)
                for d in all where d == abs || d.hasPrefix(abs + "/") || d == p {
                    try db.run("DELETE FROM documents WHERE path = ?", [.text(d)])
                    removed.append(d)
                }
            }
        }
        vectorCache = nil
        return removed
    }

    static func normalized(_ v: [Float]) -> [Float] {
        var ss: Float = 0
        for x in v { ss += x * x }
        let inv = 1 / max(ss.squareRoot(), 1e-12)
        return v.map { $0 * inv }
    }

    // MARK: retrieval

    func loadVectors() throws -> (ids: [Int64], vectors: [Float]) {
        if let c = vectorCache { return c }
        var ids = [Int64](), vecs = [Float]()
        try db.run("SELECT id, embedding FROM chunks ORDER BY id") { s in
            ids.append(s.int(0))
            let b = s.blob(1)
            vecs.append(contentsOf: b.bindMemory(to: Float.self))
        }
        vectorCache = (ids, vecs)
        return (ids, vecs)
    }

    /// FTS5 query: the question's words OR-ed (each quoted, so no query syntax leaks through).
    static func ftsQuery(_ text: String) -> String? {
        var words = [String]()
        var seen = Set<String>()
        for w in text.lowercased().split(whereSeparator: { !($0.isLetter || $0.isNumber) }) where w.count >= 2 || w.first!.isNumber {
            let s = String(w)
            if KnowledgeBase.stopwords.contains(s) || seen.contains(s) { continue }
            seen.insert(s)
            words.append("\"" + s + "\"")
        }
        return words.isEmpty ? nil : words.joined(separator: " OR ")
    }

    static let stopwords: Set<String> = [
        "the", "a", "an", "of", "to", "in", "on", "for", "and", "or", "is", "are", "was", "were", "be", "by", "at", "with",
        "what", "which", "who", "whom", "how", "when", "where", "why", "does", "do", "did", "our", "we", "us", "i", "you",
        "it", "its", "this", "that", "there", "from", "as", "can", "should", "must", "much", "many", "my", "your", "me",
        "der", "die", "das", "den", "dem", "des", "ein", "eine", "einen", "einem", "einer", "und", "oder", "ist", "sind",
        "was", "wer", "wie", "wo", "wann", "warum", "welche", "welcher", "welches", "für", "fur", "mit", "von", "zu", "im",
        "in", "am", "an", "auf", "bei", "es", "wir", "unser", "unsere", "ich", "man", "muss", "müssen", "viel", "viele",
    ]

    public func bm25Search(_ query: String, limit: Int) throws -> [(id: Int64, score: Double)] {
        guard let q = KnowledgeBase.ftsQuery(query) else { return [] }
        var out = [(Int64, Double)]()
        try db.run("""
            SELECT rowid, bm25(chunks_fts, 1.0, 0.5) AS s FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY s LIMIT ?
            """, [.text(q), .int(Int64(limit))]) { out.append(($0.int(0), -$0.double(1))) }
        return out
    }

    public func vectorSearch(_ q: [Float], limit: Int) throws -> [(id: Int64, score: Float)] {
        let (ids, vecs) = try loadVectors()
        guard !ids.isEmpty else { return [] }
        let dim = vecs.count / ids.count
        guard dim == q.count else { throw KnowledgeError("query vector has \(q.count) dims, the base \(dim)") }
        var scores = [Float](repeating: 0, count: ids.count)
        vecs.withUnsafeBufferPointer { vp in
            q.withUnsafeBufferPointer { qp in
                for i in 0..<ids.count { scores[i] = VectorOps.dot(vp.baseAddress! + i * dim, qp.baseAddress!, dim) }
            }
        }
        let order = scores.indices.sorted { scores[$0] > scores[$1] }.prefix(limit)
        return order.map { (ids[$0], scores[$0]) }
    }

    /// Hybrid retrieval: BM25 (FTS5) and vector candidates fused by reciprocal rank fusion
    /// (score = Σ 1/(k + rank)). The relevance floor: a hit is kept when its cosine similarity to
    /// the query is at least `minSimilarity` and it also matched words of the query (BM25), or when
    /// its similarity alone reaches `strongSimilarity`. A negative `minSimilarity` disables the floor.
    /// With a `reranker`, the best `rerankCandidates` fused hits that pass the floor are scored by
    /// the cross-encoder (query and passage read together) and the top `topK` of that order returned.
    public func search(_ query: String, topK: Int = 5, mode: RetrievalMode = .hybrid,
                       minSimilarity: Float = 0.3, strongSimilarity: Float = 0.5,
                       candidates: Int = 40, rrfK: Double = 60,
                       reranker: Reranker? = nil, rerankCandidates: Int = 20) throws -> [KnowledgeHit] {
        let e = try embedder()
        try? checkEmbedder(e)
        let qv = KnowledgeBase.normalized(try e.embed([query])[0])
        let bm = mode == .vector ? [] : try bm25Search(query, limit: candidates)
        let ve = mode == .bm25 ? [] : try vectorSearch(qv, limit: candidates)
        var fused = [Int64: Double]()
        var bmRank = [Int64: Int](), veRank = [Int64: Int]()
        for (r, h) in bm.enumerated() { bmRank[h.id] = r + 1; fused[h.id, default: 0] += 1 / (rrfK + Double(r + 1)) }
        for (r, h) in ve.enumerated() { veRank[h.id] = r + 1; fused[h.id, default: 0] += 1 / (rrfK + Double(r + 1)) }
        // Ties (same fused score) are broken by vector rank, then id, so results are stable.
        let ranked = fused.keys.sorted {
            let a = fused[$0]!, b = fused[$1]!
            if a != b { return a > b }
            let ra = veRank[$0] ?? Int.max, rb = veRank[$1] ?? Int.max
            return ra != rb ? ra < rb : $0 < $1
        }
        let want = reranker == nil ? topK : max(topK, rerankCandidates)
        var hits = [KnowledgeHit]()
        for id in ranked {
            guard var h = try hit(id) else { continue }
            h.similarity = try similarity(id, qv)
            if minSimilarity >= 0 {
                let lexical = try bmRank[id] != nil || (mode == .vector && bm25Matches(id, query))
                if !(h.similarity >= strongSimilarity || (h.similarity >= minSimilarity && lexical)) { continue }
            }
            h.score = fused[id]!
            h.bm25Rank = bmRank[id]; h.vectorRank = veRank[id]
            hits.append(h)
            if hits.count >= want { break }
        }
        guard let r = reranker, !hits.isEmpty else { return hits }
        let order = try r.rank(query: query, documents: hits.map(\.rerankText), topN: topK)
        return order.map { o in var h = hits[o.index]; h.rerankScore = o.score; return h }
    }

    /// Whether chunk `id` contains any word of the query (for the floor in vector-only mode).
    func bm25Matches(_ id: Int64, _ query: String) throws -> Bool {
        guard let q = KnowledgeBase.ftsQuery(query) else { return false }
        return (try db.scalarInt("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid = ?", [.text(q), .int(id)]) ?? 0) > 0
    }

    func similarity(_ id: Int64, _ q: [Float]) throws -> Float {
        var s: Float = 0
        try db.run("SELECT embedding FROM chunks WHERE id = ?", [.int(id)]) { st in
            let b = st.blob(0).bindMemory(to: Float.self)
            if b.count == q.count { q.withUnsafeBufferPointer { s = VectorOps.dot(b.baseAddress!, $0.baseAddress!, q.count) } }
        }
        return s
    }

    func hit(_ id: Int64) throws -> KnowledgeHit? {
        var h: KnowledgeHit?
        try db.run("""
            SELECT c.id, d.path, d.title, c.headings, c.page, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id = ?
            """, [.int(id)]) { s in
            h = KnowledgeHit(chunkID: s.int(0), path: s.text(1), title: s.text(2), headingPath: s.text(3),
                             page: s.isNull(4) ? nil : Int(s.int(4)), text: s.text(5), score: 0, similarity: 0)
        }
        return h
    }
}

/// Extraction results computed ahead of the ingest loop by a few threads, handed out in order;
/// at most `window` results wait unconsumed.
final class IngestPrefetch: @unchecked Sendable {
    enum Outcome { case ready(KnowledgeBase.Pending), unchanged, failed(String) }
    private let cond = NSCondition()
    private var results: [Int: Outcome] = [:]
    private var next = 0, consumed = 0
    private var cancelled = false
    private let count: Int, window: Int

    init(count: Int, window: Int, workers: Int, _ work: @escaping @Sendable (Int) -> Outcome) {
        self.count = count
        self.window = window
        for _ in 0..<max(1, min(workers, count)) {
            let t = Thread { [self] in
                while let i = self.claim() {
                    let r = work(i)
                    self.cond.lock(); self.results[i] = r; self.cond.broadcast(); self.cond.unlock()
                }
            }
            t.stackSize = 1 << 22
            t.start()
        }
    }

    /// The next index to extract, waiting while `window` results are ahead of the consumer.
    private func claim() -> Int? {
        cond.lock(); defer { cond.unlock() }
        while !cancelled && next < count && next >= consumed + window { cond.wait() }
        guard !cancelled, next < count else { return nil }
        next += 1
        return next - 1
    }

    /// Result `i` (waits for it); results must be taken in order.
    func result(_ i: Int) -> Outcome {
        cond.lock(); defer { cond.unlock() }
        while results[i] == nil { cond.wait() }
        consumed = i + 1
        cond.broadcast()
        return results.removeValue(forKey: i)!
    }

    func cancel() { cond.lock(); cancelled = true; cond.broadcast(); cond.unlock() }
}

public struct KnowledgeError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

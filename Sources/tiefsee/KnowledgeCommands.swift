import Foundation
import Tiefsee
import TiefseeKnowledge
#if canImport(Glibc)
import Glibc
#endif

enum KnowledgeCommand {
    /// One kb subcommand: its usage, what it does and the options it accepts (any other is an error).
    struct Subcommand {
        let names: [String]
        let usage: String
        let about: String
        let spec: [OptionSpec]
        let run: (Args, String) throws -> Void
    }

    static let kbOption = OptionSpec("kb", nil, .text, value: "NAME", help: "the knowledge base (default: default)")
    static let rerankOption = OptionSpec("rerank", nil, .text, value: "M", help: "reorder the best 20 candidates with cross-encoder M")
    static let kOption = OptionSpec("k", "-k", .int(1...1000), value: "N", help: "passages returned (default 5)")
    static let jsonOption = OptionSpec("json", nil, .flag, help: "results as JSON")

    static let subcommands: [Subcommand] = [
        Subcommand(names: ["add"], usage: "kb add PATH… [options]", about: """
            ingest files and folders (.txt .md .html .pdf .docx; scanned PDF pages through OCR); a
            progress bar on a terminal, a line per 10% otherwise; re-running only re-embeds what
            changed and drops files deleted under PATH; Ctrl-C stops after the current batch (the
            base stays consistent; run add again to finish)
            """, spec: [kbOption,
                        OptionSpec("embedding-model", nil, .text, value: "M", help: "the embedding model of a new base (default all-minilm-l6-v2)"),
                        OptionSpec("batch", nil, .int(1...100_000), value: "N", help: "chunks embedded per batch"),
                        OptionSpec("quiet", nil, .flag, help: "no progress output"), OptionSpec.threads],
            run: add),
        Subcommand(names: ["search"], usage: "kb search \"QUERY\" [options]", about: """
            hybrid BM25 + vector search (reciprocal rank fusion); hits with scores and sources
            """, spec: [kbOption, kOption,
                        OptionSpec("mode", nil, .choice(RetrievalMode.allCases.map(\.rawValue)), value: "M", help: "hybrid (default), bm25 or vector"),
                        OptionSpec("min-score", nil, .number(-1...1), value: "S", help: "relevance floor, cosine similarity (default 0.3)"),
                        rerankOption, jsonOption, OptionSpec.threads],
            run: search),
        Subcommand(names: ["eval"], usage: "kb eval QUESTIONS.json [options]", about: "recall@k per retrieval mode (--json also lists the misses)",
                   spec: [kbOption, kOption, rerankOption, jsonOption, OptionSpec.threads], run: evaluate),
        Subcommand(names: ["ls", "list"], usage: "kb ls [--kb NAME]", about: "without --kb: the bases; with --kb: the documents of that base",
                   spec: [kbOption], run: { a, _ in try list(a) }),
        Subcommand(names: ["rm", "remove"], usage: "kb rm PATH… [--kb NAME] | kb rm --all --kb NAME", about: """
            remove documents (a folder removes everything under it); --all deletes the whole base
            """, spec: [kbOption, OptionSpec("all", nil, .flag, help: "delete the whole base (needs --kb)")], run: remove),
    ]

    static var help: String {
        let subs = subcommands.map { c in
            "  " + c.usage + "\n" + c.about.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n") + "\n"
                + OptionSpec.helpText(c.spec).split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n")
        }.joined(separator: "\n\n")
        return """
        usage: tiefsee kb SUBCOMMAND [options]

        \(subs)

        Bases live in $TIEFSEE_HOME/kb/NAME.sqlite (default ~/.cache/tiefsee/kb); NAME defaults to "default".
        """
    }

    static func run(_ argv: ArraySlice<String>) throws {
        guard let sub = argv.first, sub != "--help", sub != "-h" else { print(help); return }
        guard let c = subcommands.first(where: { $0.names.contains(sub) }) else {
            throw CLIError("unknown kb subcommand '\(sub)' (see tiefsee kb --help)")
        }
        let a = try Args(argv.dropFirst(), spec: [OptionSpec.help] + c.spec)
        if a.has("help") { print(help); return }
        try a.configureThreads()
        try c.run(a, a.string("kb") ?? "default")
    }

    static func add(_ a: Args, name: String) throws {
        guard !a.positional.isEmpty else { throw CLIError("kb add needs at least one file or folder") }
        let kb = try KnowledgeBase(name: name, embeddingModel: a.string("embedding-model"))
        if let b = try a.int("batch") { kb.ingestBatchChunks = b }
        Interrupt.install()
        let quiet = a.has("quiet")
        let tty = isatty(STDERR_FILENO) != 0 && !quiet
        var lastDraw = Date.distantPast
        var lastTenth = -1
        let report = try kb.add(paths: a.positional, progress: { p in
            guard !quiet, p.documentsTotal > 0 else { return }
            let frac = p.bytesTotal > 0 ? Double(p.bytesDone) / Double(p.bytesTotal) : 1
            let docRate = p.elapsed > 0 ? Double(p.documentsDone) / p.elapsed : 0
            let eta = p.eta.map { String(format: "ETA %ds", Int($0.rounded())) } ?? "ETA …"
            guard tty else {
                // Not a terminal (a log, a pipe): one plain line per tenth of the work.
                let tenth = Int(frac * 10)
                if tenth == lastTenth { return }
                lastTenth = tenth
                err(String(format: "kb add: %3d%% %d/%d documents, %d chunks, %.1f documents/s, %@",
                           Int(frac * 100), p.documentsDone, p.documentsTotal, p.chunksEmbedded, docRate, eta))
                return
            }
            let now = Date()
            if now.timeIntervalSince(lastDraw) < 0.1 && p.documentsDone < p.documentsTotal { return }
            lastDraw = now
            let width = 28, filled = Int(frac * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            FileHandle.standardError.write(String(format: "\r\u{1B}[2K%@ %3d%% %d/%d docs, %d chunks (%.1f docs/s) %@",
                                                  bar, Int(frac * 100), p.documentsDone, p.documentsTotal, p.chunksEmbedded,
                                                  docRate, eta).data(using: .utf8)!)
        }, shouldStop: { Interrupt.requested })
        if tty { FileHandle.standardError.write("\r\u{1B}[2K".data(using: .utf8)!) }
        let c = try kb.counts()
        print("kb '\(name)': \(report.added.count) added, \(report.updated.count) updated, \(report.removed.count) removed, \(report.unchanged) unchanged; \(report.chunksEmbedded) chunks embedded in \(String(format: "%.1f", report.seconds)) s (embedding \(String(format: "%.1f", report.embedSeconds)) s); now \(c.documents) documents, \(c.chunks) chunks")
        for f in report.failed { err("  failed: \(f.path): \(f.error)") }
        if report.interrupted { err("interrupted: the base is consistent; run the same kb add again to finish") ; exit(130) }
    }

    static func search(_ a: Args, name: String) throws {
        guard let q = a.positional.first else { throw CLIError("kb search needs a query") }
        let kb = try KnowledgeBase(name: name, create: false)
        let mode = RetrievalMode(rawValue: a.string("mode") ?? "hybrid")!
        let t0 = Date()
        let reranker = try a.string("rerank").map { try Reranker.load($0) }
        let hits = try kb.search(q, topK: try a.int("k") ?? 5, mode: mode, minSimilarity: Float(try a.double("min-score") ?? 0.3),
                                 reranker: reranker)
        let ms = Date().timeIntervalSince(t0) * 1000
        if a.has("json") {
            let arr = hits.map { h -> JSONValue in
                .object([("path", .string(h.path)), ("heading", .string(h.headingPath)), ("page", h.page.map { .int($0) } ?? .null),
                         ("score", .double(h.score)), ("similarity", .double(Double(h.similarity))),
                         ("bm25_rank", h.bm25Rank.map { .int($0) } ?? .null), ("vector_rank", h.vectorRank.map { .int($0) } ?? .null),
                         ("rerank_score", h.rerankScore.map { .double(Double($0)) } ?? .null),
                         ("text", .string(h.text))])
            }
            print(JSONValue.object([("hits", .array(arr))]).serialized())
            return
        }
        if hits.isEmpty { print("no relevant passages (relevance floor \(a.string("min-score") ?? "0.3"))"); return }
        for (i, h) in hits.enumerated() {
            let ranks = "bm25 #\(h.bm25Rank.map(String.init) ?? "–"), vector #\(h.vectorRank.map(String.init) ?? "–")"
            let rr = h.rerankScore.map { String(format: "  rerank %.4f", $0) } ?? ""
            print(String(format: "%d. score %.4f  cos %.3f%@  (%@)", i + 1, h.score, h.similarity, rr, ranks))
            print("   \(h.citation)")
            print("   " + String(h.text.prefix(240)).replacingOccurrences(of: "\n", with: " "))
        }
        err(String(format: "%.0f ms", ms))
    }

    /// kb eval QUESTIONS.json [--kb NAME] [-k N]: recall@k per retrieval mode (developer tool).
    static func evaluate(_ a: Args, name: String) throws {
        guard let qp = a.positional.first else { throw CLIError("kb eval needs a questions.json") }
        let kb = try KnowledgeBase(name: name, create: false)
        let qs = try RetrievalEvaluation.loadQuestions(qp)
        let reranker = try a.string("rerank").map { try Reranker.load($0) }
        let r = try RetrievalEvaluation.run(kb: kb, questions: qs, k: try a.int("k") ?? 5, reranker: reranker)
        for label in ["hybrid", "bm25", "vector", "hybrid+floor"] + (reranker == nil ? [] : ["hybrid+rerank"]) {
            print(String(format: "%-13@ recall@%d = %.3f", label, try a.int("k") ?? 5, r.recall[label] ?? 0))
        }
        print(String(format: "%d questions, mean query latency %.1f ms", r.questions, r.meanQuerySeconds * 1000))
        if a.has("json") { for (l, m) in r.misses { for q in m { print("miss[\(l)]: \(q)") } } }
    }

    static func list(_ a: Args) throws {
        guard let name = a.string("kb") else {
            let names = KnowledgeBase.list()
            if names.isEmpty { print("no knowledge bases in \(KnowledgeBase.directory)"); return }
            for n in names {
                let kb = try KnowledgeBase(name: n, create: false)
                let c = try kb.counts()
                print("\(n)\t\(c.documents) documents\t\(c.chunks) chunks")
            }
            return
        }
        let kb = try KnowledgeBase(name: name, create: false)
        for d in try kb.documents() { print("\(d.path)\t\(d.chunks) chunks\t\(d.title)") }
    }

    static func remove(_ a: Args, name: String) throws {
        if a.has("all") {
            guard a.string("kb") != nil else { throw CLIError("kb rm --all needs --kb NAME") }
            try KnowledgeBase.delete(name: name)
            print("deleted knowledge base '\(name)'")
            return
        }
        guard !a.positional.isEmpty else { throw CLIError("kb rm needs paths (or --all --kb NAME)") }
        let kb = try KnowledgeBase(name: name, create: false)
        let removed = try kb.remove(paths: a.positional)
        for r in removed { print("removed \(r)") }
        if removed.isEmpty { print("nothing matched") }
    }
}

enum AskCommand {
    static let help = """
    usage: tiefsee ask "QUESTION" [MODEL] [--kb NAME] [-k N] [--min-score S] [--rerank M] [--answer-anyway] [generation options]

    Answers from a knowledge base: the best passages (hybrid search) are numbered in the prompt,
    the model is told that company documents take precedence over its own knowledge and to cite
    [n]; the sources follow the answer. R1-family models get DeepSeek-R1's search template
    ([citation:X]). When nothing relevant is found it says so (--answer-anyway lets the model answer).
    --rerank M reorders the retrieved candidates with cross-encoder M before the best k are used.

    \(OptionSpec.helpText(spec))
    """

    static let spec: [OptionSpec] = [
        OptionSpec("kb", nil, .text, value: "NAME", help: "the knowledge base (default: default)"),
        OptionSpec("k", "-k", .int(1...50), value: "N", help: "passages in the prompt (default 3)"),
        OptionSpec("min-score", nil, .number(-1...1), value: "S", help: "relevance floor (cosine similarity)"),
        OptionSpec("answer-anyway", nil, .flag, help: "let the model answer when no passage is relevant"),
    ] + GenerateFlags.spec

    static func run(_ argv: ArraySlice<String>) throws {
        let a = try Args(argv, spec: spec)
        if a.has("help") { print(help); return }
        guard let question = a.positional.first else { throw CLIError("no question given") }
        guard a.positional.count <= 2 else { throw CLIError("ask takes QUESTION and MODEL at most, got \(a.positional.count) arguments") }
        var f = try GenerateFlags(a)
        if a.string("temp") == nil { f.options.sampling.temperature = 0 }
        if a.string("max-tokens") == nil { f.options.maxTokens = 200 }
        let kb = try KnowledgeBase(name: a.string("kb") ?? "default", create: false)
        let engine = try loadEngine(a.positional.count > 1 ? a.positional[1] : nil, verbose: f.verbose, options: f.engine)
        let answerer = KnowledgeAnswerer(engine: engine, kb: kb)
        answerer.topK = try a.int("k") ?? 3
        answerer.reranker = try a.string("rerank").map { try Reranker.load($0) }
        if let m = try a.double("min-score") { answerer.minSimilarity = Float(m) }
        answerer.refuseWithoutKnowledge = !a.has("answer-anyway")
        answerer.draft = try DraftFlags.load(a, target: engine, verbose: f.verbose)
        answerer.mtp = try DraftFlags.mtp(a, engine: engine, verbose: f.verbose)
        Interrupt.install()
        let ans = try answerer.ask(question, options: f.options, contextSize: f.contextSize ?? 4096) { _ in !Interrupt.requested }
        print(ans.text)
        if !ans.sources.isEmpty { print("\nSources:\n" + ans.sourceList) }
    }
}

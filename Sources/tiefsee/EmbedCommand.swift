import Foundation
import Tiefsee
import TiefseeKnowledge

enum EmbedCommand {
    static let help = """
    usage: tiefsee embed [MODEL] "text" ["text" …] [--json] [--threads N]

    Sentence embeddings from a sentence-transformers model folder (BERT + WordPiece, pooling and
    normalisation from its modules.json / 1_Pooling/config.json). MODEL is a folder or a folder
    name in the model cache; without it (or with "-") the default all-minilm-l6-v2 is used
    (scripts/fetch-embedding-model.sh). The first argument is taken as MODEL when it names one.

    \(OptionSpec.helpText(spec))
    """

    static let spec: [OptionSpec] = [
        OptionSpec.help,
        OptionSpec("json", nil, .flag, help: "print {\"embeddings\": [[…], …]} (otherwise one line per\ntext: dimension and the first values)"),
        OptionSpec.threads,
    ]

    static func run(_ argv: ArraySlice<String>) throws {
        let a = try Args(argv, spec: spec)
        if a.has("help") { print(help); return }
        try a.configureThreads()
        var texts = a.positional
        var modelArg: String? = nil
        if let first = texts.first {
            if first == "-" { texts.removeFirst() }
            else if texts.count > 1 && isModel(first) { modelArg = first; texts.removeFirst() }
        }
        guard !texts.isEmpty else { throw CLIError("no text given (see tiefsee embed --help)") }
        let model = try EmbeddingModel.load(modelArg)
        let vectors = try model.embed(texts)
        if a.has("json") {
            // Shortest round-trip Float text keeps the output compact and exact.
            let rows = vectors.map { v in "[" + v.map { "\($0)" }.joined(separator: ",") + "]" }
            print("{\"embeddings\":[" + rows.joined(separator: ",") + "]}")
        } else {
            for (t, v) in zip(texts, vectors) {
                let head = v.prefix(6).map { String(format: "%.5f", $0) }.joined(separator: " ")
                print("[\(v.count)] \(head) …  \(t.prefix(60))")
            }
        }
    }

    static func isModel(_ s: String) -> Bool {
        var isDir: ObjCBool = false
        let fm = FileManager.default
        if fm.fileExists(atPath: s, isDirectory: &isDir), isDir.boolValue, fm.fileExists(atPath: s + "/config.json") { return true }
        let c = ModelCache.modelsDirectory + "/" + s
        return fm.fileExists(atPath: c + "/config.json")
    }
}

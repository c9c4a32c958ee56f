import Foundation
import Tiefsee

enum QuantizeCommand {
    static let spec: [OptionSpec] = [
        OptionSpec("type", nil, .choice(QuantizationScheme.allCases.map(\.rawValue)), value: "T",
                   help: "the file type (llama.cpp's names): " + QuantizationScheme.allCases.map(\.rawValue).joined(separator: ", ")),
        OptionSpec("imatrix", nil, .text, value: "FILE",
                   help: "importance matrix (llama.cpp's GGUF imatrix, from tiefsee imatrix or llama-imatrix):\nweights rounding errors by activation size; required for IQ2_XXS, IQ2_XS, IQ1_S, IQ1_M"),
        OptionSpec("tensor-type", nil, .list, value: "RE=T",
                   help: "give tensors whose name matches the regular expression RE type T\n(repeatable; the first match wins; e.g. ffn_down=IQ2_XXS,attn_=Q4_K)"),
        OptionSpec("output-tensor-type", nil, .text, value: "T", help: "type of output.weight (same as --tensor-type '^output\\.weight$=T')"),
        OptionSpec("token-embedding-type", nil, .text, value: "T", help: "type of token_embd.weight"),
        OptionSpec("quiet", nil, .flag, help: "no progress bar"),
        .help,
    ]

    static let help = """
    usage: tiefsee quantize IN OUT.gguf --type T [--imatrix FILE] [--tensor-type RE=T …] [--quiet]

    Converts a Hugging Face model folder (f32/f16/bf16/FP8 safetensors) or a GGUF into a GGUF
    with llama.cpp's tensor names, metadata and block layouts. Mixes follow llama-quantize:
    1-D tensors (norms, biases) and the MoE router stay F32; the output head (or tied token
    embedding) is Q6_K in the K mixes (Q5_K in the IQ1/IQ2 ones); attn_v, attn_output and
    ffn_down get more bits on some layers by llama.cpp's rules per type; rows whose length is not
    a multiple of 256 fall back (IQ types to IQ4_NL, Q2_K/Q3_K to Q4_0, Q4_K/Q5_K/Q6_K to
    Q5_0/Q5_1/Q8_0). Tensors are streamed one by one: memory stays around one tensor (or one
    expert) in f32.

    \(OptionSpec.helpText(spec))
    """

    static func run(_ argv: ArraySlice<String>) throws {
        let a = try Args(argv, spec: spec)
        if a.has("help") { print(help); return }
        guard a.positional.count == 2 else { throw CLIError("expected IN and OUT (see --help)") }
        guard let tn = a.string("type") else {
            throw CLIError("missing --type (\(QuantizationScheme.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let scheme = QuantizationScheme(name: tn)!   // checked by the option's choices
        var overrides = try (a.list("tensor-type") ?? []).map { try TensorTypeOverride($0) }
        for (opt, pattern) in [("output-tensor-type", "^output\\.weight$"), ("token-embedding-type", "^token_embd\\.weight$")] {
            if let t = a.string(opt) { overrides.insert(try TensorTypeOverride("\(pattern)=\(t)"), at: 0) }
        }
        let importance = try a.string("imatrix").map { try ImportanceMatrix(path: $0) }
        let start = Date()
        let quiet = a.has("quiet")
        let plan = try quantizeModel(input: a.positional[0], output: a.positional[1], scheme: scheme, importance: importance,
                                     overrides: overrides, progress: quiet ? nil : progressBar(start))
        var counts = [String: Int]()
        for t in plan.tensors { counts[t.type.rawValue, default: 0] += 1 }
        let mix = counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        err("wrote \(a.positional[1]): \(plan.tensors.count) tensors (\(mix)), \(scheme.rawValue), \(String(format: "%.1f", Date().timeIntervalSince(start)))s")
        if !plan.unused.isEmpty {
            err("note: \(plan.unused.count) source tensors not converted: \(plan.unused.prefix(5).joined(separator: ", "))\(plan.unused.count > 5 ? ", …" : "")")
        }
    }

    static func fmt(_ b: Int) -> String {
        let d = Double(b)
        if d >= 1e9 { return String(format: "%.2f GB", d / 1e9) }
        if d >= 1e6 { return String(format: "%.1f MB", d / 1e6) }
        return String(format: "%.0f kB", d / 1e3)
    }

    /// A progress line on stderr: tensors, bytes written, ETA, the current tensor.
    static func progressBar(_ start: Date) -> (Int, Int, Int, Int, String) -> Void {
        var lastDraw = Date.distantPast
        return { i, n, done, total, name in
            let now = Date()
            guard i == n || now.timeIntervalSince(lastDraw) > 0.2 else { return }
            lastDraw = now
            let el = now.timeIntervalSince(start)
            let eta = done > 0 ? el * Double(total - done) / Double(done) : 0
            let width = 24, filled = total > 0 ? width * done / total : width
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let line = String(format: "[%@] %d/%d  %@ / %@  ETA %.0fs  %@", bar, i, n, fmt(done), fmt(total), eta, name)
            FileHandle.standardError.write(("\r\u{1B}[K" + line).data(using: .utf8)!)
            if i == n { FileHandle.standardError.write("\n".data(using: .utf8)!) }
        }
    }
}

enum ImatrixCommand {
    static let spec: [OptionSpec] = [
        OptionSpec("text", "-f", .text, value: "FILE", help: "the calibration text (plain text, tokenized as is)"),
        OptionSpec("output", "-o", .text, value: "OUT", help: "where to write the imatrix (GGUF; default imatrix.gguf)"),
        OptionSpec("chunk-size", "-c", .int(16...65536), value: "N", help: "tokens per chunk, each run from an empty cache (default 512)"),
        OptionSpec("chunks", nil, .int(1...1_000_000), value: "N", help: "use at most N chunks (default: all whole chunks of the text)"),
        .threads,
        .help,
    ]

    static let help = """
    usage: tiefsee imatrix [MODEL] --text FILE [-o OUT.imatrix] [--chunk-size 512] [--chunks N]

    Computes an importance matrix: runs the model over the text in chunks and sums, for every
    weight matrix of the layers (each expert of a MoE layer apart), the squared activations
    each input column sees. Written in llama.cpp's GGUF imatrix format (general.type imatrix,
    NAME.in_sum2 / NAME.counts), which llama-quantize and `tiefsee quantize --imatrix` read.
    MODEL must be a GGUF (the imatrix uses its tensor names).

    \(OptionSpec.helpText(spec))
    """

    static func run(_ argv: ArraySlice<String>) throws {
        let a = try Args(argv, spec: spec)
        if a.has("help") { print(help); return }
        try a.configureThreads()
        guard let textPath = a.string("text") else { throw CLIError("missing --text FILE (see --help)") }
        guard let text = try? String(contentsOfFile: textPath, encoding: .utf8) else { throw CLIError("cannot read \(textPath) as UTF-8 text") }
        let files = try ModelFiles.open(ModelLocator.resolve(a.positional.first))
        guard let gguf = files.gguf else {
            throw CLIError("tiefsee imatrix needs a GGUF model (its tensor names key the imatrix); convert the folder first with tiefsee quantize --type Q8_0")
        }
        let model = try ModelLoader.load(files)
        let tokens = try loadTokenizer(files.location.path).0.encode(text, parseSpecial: false)
        let chunkSize = try a.int("chunk-size") ?? 512
        let out = a.string("output") ?? "imatrix.gguf"
        let start = Date()
        let im = try ImportanceMatrix.collect(
            model: model, tokens: tokens, chunkSize: chunkSize, maxChunks: try a.int("chunks"),
            dataset: URL(fileURLWithPath: textPath).lastPathComponent,
            matrices: { name in gguf.info(name).map { $0.dims.count == 3 ? $0.dims[2] : 1 } ?? 1 }
        ) { c, n in
            FileHandle.standardError.write(String(format: "\r\u{1B}[Kchunk %d/%d  %.1f s", c, n, Date().timeIntervalSince(start)).data(using: .utf8)!)
        }
        FileHandle.standardError.write("\n".data(using: .utf8)!)
        try im.write(to: out)
        err("wrote \(out): \(im.entries.count) matrices, \(im.chunkCount) chunks of \(chunkSize) tokens from \(textPath)")
    }
}

import Foundation
import Tiefsee

/// Loads only the tokenizer of a GGUF, model folder, tokenizer.json or cached model name.
func loadTokenizer(_ path: String?) throws -> (Tokenizer, ModelLocation) {
    let loc = try ModelLocator.resolve(path)
    switch loc {
    case .gguf(let p): return (try Tokenizer.load(ggufPath: p), loc)
    case .hfFolder(let d): return (try Tokenizer.load(modelFolder: d), loc)
    case .tokenizerJSON(let p): return (try Tokenizer.load(tokenizerJSON: p), loc)
    }
}

func readStdinBytes() -> [UInt8] {
    [UInt8](FileHandle.standardInput.readDataToEndOfFile())
}

enum TokenizeCommand {
    static let help = """
    usage: tiefsee tokenize PATH ["TEXT" | --stdin] [--no-special] [--json]

    Prints the token ids of TEXT, comma-separated. PATH is a GGUF file, a model folder, a
    tokenizer.json file or a cached model name. --stdin reads the exact bytes of standard input
    as the text. Added/special tokens written in the text are matched as those tokens and
    nothing else is added (Hugging Face's add_special_tokens=False); --no-special treats them
    as plain text. --json prints {"ids": [...], "pieces": [...]} (pieces: the vocabulary strings).
    """

    static let spec: [OptionSpec] = [
        OptionSpec.help,
        OptionSpec("stdin", nil, .flag, help: "the text is standard input's exact bytes"),
        OptionSpec("no-special", nil, .flag, help: "special tokens written in the text are plain text"),
        OptionSpec("json", nil, .flag, help: "print {\"ids\": [...], \"pieces\": [...]}"),
    ]

    static func run(_ argv: ArraySlice<String>) throws {
        let a = try Args(argv, spec: spec)
        if a.has("help") { print(help); return }
        guard let path = a.positional.first else { throw CLIError("missing PATH (see --help)") }
        let text: String
        if a.has("stdin") {
            let bytes = readStdinBytes()
            guard let s = String(validating: bytes, as: UTF8.self) else { throw CLIError("standard input is not valid UTF-8") }
            text = s
        } else {
            guard a.positional.count >= 2 else { throw CLIError("missing TEXT (or use --stdin)") }
            text = a.positional[1]
        }
        let (tok, _) = try loadTokenizer(path)
        let ids = tok.encode(text, parseSpecial: !a.has("no-special"))
        if a.has("json") {
            let j = JSONValue.object([("ids", .array(ids.map { .int($0) })),
                                      ("pieces", .array(ids.map { .string(tok.piece($0)) }))])
            print(j.serialized())
        } else {
            print(ids.map(String.init).joined(separator: ","))
        }
    }
}

enum DetokenizeCommand {
    static let help = """
    usage: tiefsee detokenize PATH IDS [--raw] [--skip-special]

    Prints the text of comma-separated token ids exactly; --raw adds no trailing newline.
    """

    static let spec: [OptionSpec] = [
        OptionSpec.help,
        OptionSpec("raw", nil, .flag, help: "no trailing newline"),
        OptionSpec("skip-special", nil, .flag, help: "leave special tokens out"),
    ]

    static func run(_ argv: ArraySlice<String>) throws {
        let a = try Args(argv, spec: spec)
        if a.has("help") { print(help); return }
        guard a.positional.count >= 2 else { throw CLIError("usage: tiefsee detokenize PATH 1,2,3") }
        let (tok, _) = try loadTokenizer(a.positional[0])
        var ids = [Int]()
        for part in a.positional[1...].joined(separator: ",").split(whereSeparator: { $0 == "," || $0 == " " }) {
            guard let v = Int(part), v >= 0, v < tok.vocabSize else {
                throw CLIError("'\(part)' is not a token id of this vocabulary (0..<\(tok.vocabSize))")
            }
            ids.append(v)
        }
        let s = tok.decode(ids, skipSpecial: a.has("skip-special"))
        out(a.has("raw") ? s : s + "\n")
    }
}

enum TemplateCommand {
    static let help = """
    usage: tiefsee template PATH --messages FILE.json [--tools FILE.json] [--no-generation-prompt]
                            [--var NAME=JSON]… [--chat-encoding deepseek-v3.2|deepseek-v4]

    Renders the chat template of PATH (GGUF, model folder or cached name) for an OpenAI-style
    messages array and prints the prompt byte-exactly (no added newline). Use - for stdin.
    DeepSeek-V3.2/V4 models (or --chat-encoding) use DeepSeek's prompt encoder instead; it
    reads --var thinking=true, drop_thinking=false.
    """

    static let spec: [OptionSpec] = [
        OptionSpec.help,
        OptionSpec("messages", nil, .text, value: "FILE", help: "the messages (JSON array; - for stdin)"),
        OptionSpec("tools", nil, .text, value: "FILE", help: "the tools (JSON array)"),
        OptionSpec("var", nil, .text, value: "NAME=JSON", help: "a template variable"),
        OptionSpec("no-generation-prompt", nil, .flag, help: "no assistant header at the end"),
        EngineFlags.spec.first { $0.long == "chat-encoding" }!,
    ]

    static func run(_ argv: ArraySlice<String>) throws {
        let a = try Args(argv, spec: spec)
        if a.has("help") { print(help); return }
        guard let mpath = a.string("messages") else { throw CLIError("missing --messages FILE.json") }
        func readJSON(_ p: String) throws -> JSONValue {
            let bytes: [UInt8]
            if p == "-" { bytes = readStdinBytes() } else {
                guard let d = FileManager.default.contents(atPath: p) else { throw CLIError("cannot read \(p)") }
                bytes = [UInt8](d)
            }
            do { return try JSONValue.parse(bytes) } catch { throw CLIError("\(p): \(error)") }
        }
        guard let messages = try readJSON(mpath).array else { throw CLIError("\(mpath) must hold a JSON array of messages") }
        var tools: [JSONValue]? = nil
        if let t = a.string("tools") {
            guard let arr = try readJSON(t).array else { throw CLIError("\(t) must hold a JSON array of tools") }
            tools = arr
        }
        var extra: [String: JSONValue] = [:]
        if let v = a.string("var") {
            guard let eq = v.firstIndex(of: "=") else { throw CLIError("--var expects NAME=JSON") }
            extra[String(v[..<eq])] = (try? JSONValue.parse(String(v[v.index(after: eq)...]))) ?? .string(String(v[v.index(after: eq)...]))
        }
        if let e = a.string("chat-encoding") {
            guard let enc = DeepSeekEncoding(rawValue: e) else {
                throw CLIError("--chat-encoding expects one of \(DeepSeekEncoding.allCases.map(\.rawValue).joined(separator: ", ")), got '\(e)'")
            }
            out(try enc.render(messages: messages, tools: tools, options: DeepSeekEncodingOptions(kwargs: extra)))
            return
        }
        let loc = try ModelLocator.resolve(a.positional.first)
        // A model (GGUF, or a folder with config.json) or, as AutoTokenizer takes it, a folder of
        // only tokenizer.json + tokenizer_config.json.
        let template: String?, special: (String) -> String?
        if case .hfFolder(let dir) = loc, !FileManager.default.fileExists(atPath: dir + "/config.json") {
            let chat = TokenizerFolderConfig(folder: dir)
            template = chat.chatTemplate; special = chat.specialTokenText
        } else {
            let files = try ModelFiles.open(loc)
            if let enc = DeepSeekEncoding.forArchitecture(files.architectureName) {
                out(try enc.render(messages: messages, tools: tools, options: DeepSeekEncodingOptions(kwargs: extra)))
                return
            }
            template = files.chatTemplate; special = files.specialTokenText
        }
        guard let src = template else { throw CLIError("\(loc.path) has no chat template") }
        let (tok, _) = try loadTokenizer(loc.path)
        let bos = special("bos_token") ?? tok.bosID.map { tok.piece($0) } ?? ""
        let eos = special("eos_token") ?? tok.eosID.map { tok.piece($0) } ?? ""
        let rendered = try ChatTemplate(source: src).render(messages: messages, tools: tools,
                                                            addGenerationPrompt: !a.has("no-generation-prompt"),
                                                            bosToken: bos, eosToken: eos, extra: extra)
        out(rendered)
    }
}

enum LogitsCommand {
    static let help = """
    usage: tiefsee logits [MODEL] (--tokens 1,2,3 | --text "…") [--last K] [--json] [--threads N] [--routing]

    Runs the tokens teacher-forced in one pass and prints JSON:
      {"ids": [...] (with --text), "argmax": [one per position],
       "logits": [[full vocabulary row] for each of the last K positions (default 1)]}
    --routing (MoE models) adds "routing": [per layer: null for a dense layer, else per token
      {"experts": [ids, chosen order], "weights": [combine weights]}].
    """

    static let spec: [OptionSpec] = [
        OptionSpec.help,
        OptionSpec("tokens", nil, .text, value: "IDS", help: "comma-separated token ids"),
        OptionSpec("text", nil, .text, value: "TEXT", help: "text, tokenized with the model's tokenizer"),
        OptionSpec("last", nil, .int(1...Int.max), value: "K", help: "logit rows printed (default 1)"),
        OptionSpec("ctx", nil, .int(1...Int.max), value: "N", help: "cache capacity (default: the tokens)"),
        OptionSpec("json", nil, .flag, help: "JSON output (the default; accepted for scripts)"),
        OptionSpec("routing", nil, .flag, help: "MoE models: per layer and token the chosen experts"),
        OptionSpec.threads,
    ]

    static func run(_ argv: ArraySlice<String>) throws {
        let a = try Args(argv, spec: spec)
        if a.has("help") { print(help); return }
        try a.configureThreads()
        // With --tokens no tokenizer is needed: the model alone is loaded, so a folder of just
        // config.json + safetensors works.
        let files = try ModelFiles.open(ModelLocator.resolve(a.positional.first))
        let model = try ModelLoader.load(files)
        var ids: [Int]
        var withIDs = false
        if let s = a.string("tokens") {
            ids = []
            for p in s.split(whereSeparator: { $0 == "," || $0 == " " }) {
                guard let v = Int(p), v >= 0, v < model.config.vocabSize else {
                    throw CLIError("'\(p)' is not a token id of this model (0..<\(model.config.vocabSize))")
                }
                ids.append(v)
            }
        } else if let text = a.string("text") {
            ids = try loadTokenizer(files.location.path).0.encode(text, parseSpecial: true)
            withIDs = true
        } else {
            throw CLIError("give --tokens IDS or --text TEXT")
        }
        guard !ids.isEmpty else { throw CLIError("no tokens to run") }
        let last = try a.int("last") ?? 1
        let ctx = max(try a.int("ctx") ?? ids.count, ids.count)
        let cache = model.makeCache(capacity: ctx)
        let T = ids.count
        let V = model.outputHead.outFeatures
        let stats = a.has("routing") ? model.startRoutingStats(keepDecisions: true) : nil
        let logits: FloatBuffer
        do {
            defer { if stats != nil { model.stopRoutingStats() } }
            logits = try model.forward(ids, cache: cache, lastK: T)
        }
        var argmax = [JSONValue]()
        for t in 0..<T { argmax.append(.int(Sampler.argmax(logits.p + t * V, V))) }
        var rows = [String]()
        for t in max(0, T - last)..<T {
            rows.append("[" + (0..<V).map { floatJSON(logits.p[t * V + $0]) }.joined(separator: ",") + "]")
        }
        var s = "{"
        if withIDs { s += "\"ids\":" + JSONValue.array(ids.map { .int($0) }).serialized() + "," }
        s += "\"argmax\":" + JSONValue.array(argmax).serialized() + ",\"logits\":[" + rows.joined(separator: ",") + "]"
        if let st = stats { s += ",\"routing\":" + routingJSON(st) }
        print(s + "}")
    }

    /// Per layer: null (dense) or per token {"experts": [...], "weights": [...]}.
    static func routingJSON(_ st: RoutingStats) -> String {
        let decisions = st.decisions
        let layers = (0..<st.numLayers).map { l -> String in
            guard st.sparseLayers[l] else { return "null" }
            return "[" + decisions[l].map { c in
                "{\"experts\":" + JSONValue.array(c.experts.map { .int($0) }).serialized()
                    + ",\"weights\":[" + c.weights.map(floatJSON).joined(separator: ",") + "]}"
            }.joined(separator: ",") + "]"
        }
        return "[" + layers.joined(separator: ",") + "]"
    }

    static func floatJSON(_ f: Float) -> String {
        if f.isNaN || f.isInfinite { return "null" }
        return "\(f)"
    }
}

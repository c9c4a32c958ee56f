import Foundation
import Tiefsee
#if canImport(Glibc)
import Glibc
#endif

/// Options shared by `run`, `chat` and `ask`.
struct GenerateFlags {
    static let spec: [OptionSpec] = [
        OptionSpec("system", nil, .text, value: "TEXT", help: "system message"),
        OptionSpec("max-tokens", "-n", .int(1...Int.max), value: "N", help: "tokens to generate (default 512)"),
        OptionSpec("temp", nil, .number(0...100), value: "T", help: "temperature, 0 = greedy (default 0.7)"),
        OptionSpec("top-k", nil, .int(0...Int.max), value: "K", help: "sample from the K most likely tokens, 0 = all (default 40)"),
        OptionSpec("top-p", nil, .number(0...1), value: "P", help: "nucleus sampling: the smallest set holding P of the mass, (0, 1] (default 0.95)"),
        OptionSpec("min-p", nil, .number(0...1), value: "P", help: "drop tokens below P × the top token's probability (default 0.05)"),
        OptionSpec("repeat-penalty", nil, .number(0...100), value: "R", help: "penalise tokens of the last 256: positive logits ÷ R, negative × R (default 1: off)"),
        OptionSpec("presence-penalty", nil, .number(-2...2), value: "P", help: "OpenAI's presence penalty (default 0)"),
        OptionSpec("frequency-penalty", nil, .number(-2...2), value: "F", help: "OpenAI's frequency penalty (default 0)"),
        OptionSpec("seed", "-s", .text, value: "N", help: "random seed: the same seed gives the same text"),
        OptionSpec("stop", nil, .list, value: "TEXT", help: "stop string; repeat the option or give a comma list (a,b)"),
        .threads,
        OptionSpec("ctx", "-c", .int(16...Int.max), value: "N", help: "context size in tokens (default: the model's, bounded by memory)"),
        OptionSpec("grammar", nil, .text, value: "FILE", help: "only output this GBNF grammar allows (llama.cpp's notation)"),
        OptionSpec("json-schema", nil, .text, value: "S", help: "only JSON valid under this schema (a file, or the schema text)"),
        OptionSpec("hide-thinking", nil, .flag, help: "do not print <think>…</think> reasoning"),
        OptionSpec("no-color", nil, .flag, help: "print reasoning without dimming it (as NO_COLOR=1 does)"),
        OptionSpec("think", nil, .choice(["on", "off"]), value: "on|off",
                   help: "thinking switch of hybrid models (DeepSeek-V3.1/V3.2/V4 `thinking`,\nQwen3 `enable_thinking`); default: the model's own default"),
        OptionSpec("verbose", nil, .flag, help: "print load time, prompt/generation speed and the memory estimate"),
        .help,
    ] + EngineFlags.spec + DraftFlags.spec

    static let help = OptionSpec.helpText(spec)

    var options = GenerationOptions()
    var system: String?
    var contextSize: Int?
    var verbose = false
    var hideThinking = false
    var color = true
    var engine = EngineOptions()
    /// Chat template variables (`--think`).
    var templateKwargs: [String: JSONValue] = [:]

    /// Reads the values `spec` declared (types and ranges are already checked by the parser).
    init(_ a: Args) throws {
        engine = try EngineFlags.options(a)
        if let n = try a.int("max-tokens") { options.maxTokens = n }
        if let t = try a.double("temp") { options.sampling.temperature = t }
        if let v = try a.int("top-k") { options.sampling.topK = v }
        if let v = try a.double("top-p") { guard v > 0 else { throw CLIError("--top-p must be in (0, 1]") }; options.sampling.topP = v }
        if let v = try a.double("min-p") { options.sampling.minP = v }
        if let v = try a.double("repeat-penalty") { guard v > 0 else { throw CLIError("--repeat-penalty must be positive") }; options.sampling.repetitionPenalty = v }
        if let v = try a.double("presence-penalty") { options.sampling.presencePenalty = v }
        if let v = try a.double("frequency-penalty") { options.sampling.frequencyPenalty = v }
        if let s = a.string("seed") {
            guard let v = UInt64(s) else { throw CLIError("--seed expects a non-negative integer, got '\(s)'") }
            options.sampling.seed = v
        }
        if let s = a.list("stop") { options.stop = s }
        if let t = try a.int("threads") { ThreadPool.configureShared(threads: t) }
        contextSize = try a.int("ctx")
        options.grammar = try GenerateFlags.grammar(a)
        system = a.string("system")
        verbose = a.has("verbose")
        hideThinking = a.has("hide-thinking")
        color = !a.has("no-color")
        if let t = a.string("think") {
            let on = t == "on"
            templateKwargs = ["thinking": .bool(on), "enable_thinking": .bool(on)]
        }
    }
}

extension GenerateFlags {
    /// --grammar FILE or --json-schema (a file or the schema itself).
    static func grammar(_ a: Args) throws -> Grammar? {
        func read(_ path: String, _ flag: String) throws -> String {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CLIError("\(flag): cannot read \(path)") }
            return text
        }
        switch (a.string("grammar"), a.string("json-schema")) {
        case (nil, nil): return nil
        case (.some, .some): throw CLIError("give --grammar or --json-schema, not both")
        case (let g?, nil):
            do { return try Grammar(gbnf: try read(g, "--grammar")) } catch let e as GrammarError { throw CLIError("--grammar \(g): \(e)") }
        case (nil, let s?):
            let text = s.trimmingCharacters(in: .whitespaces).hasPrefix("{") ? s : try read(s, "--json-schema")
            do { return try JSONSchemaGrammar.grammar(for: try JSONValue.parse(text)) } catch { throw CLIError("--json-schema: \(error)") }
        }
    }
}

/// Prints streamed text, showing R1-style reasoning dimmed (or hiding it).
struct ReasoningPrinter {
    var splitter: ReasoningSplitter
    let hide: Bool
    let color: Bool

    init(startInThinking: Bool, hide: Bool, color allowed: Bool = true) {
        splitter = ReasoningSplitter(startInThinking: startInThinking)
        self.hide = hide
        color = allowed && isatty(STDOUT_FILENO) != 0 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
    }

    mutating func print(_ text: String) { show(splitter.feed(text)) }
    mutating func finish() { show(splitter.flush()) }

    func show(_ parts: [ReasoningSplitter.Part]) {
        for p in parts {
            switch p {
            case .reasoning(let s):
                if hide { continue }
                out(color ? "\u{1B}[2m\(s)\u{1B}[0m" : s)
            case .content(let s):
                out(s)
            }
        }
    }
}

/// Engine options shared by run, chat, bench and serve.
enum EngineFlags {
    /// The options `options(_:)` reads; every command that loads a model accepts them.
    static let spec: [OptionSpec] = [
        OptionSpec("expert-cache-mb", nil, .int(0...Int.max), value: "N",
                   help: "MoE models larger than memory: also keep the N MiB of most used\nexperts resident (default 0; chosen experts are always prefetched)"),
        OptionSpec("chat-encoding", nil, .choice(DeepSeekEncoding.allCases.map(\.rawValue)), value: "E",
                   help: "prompt format instead of the chat template: deepseek-v3.2 or\ndeepseek-v4 (default: those for V3.2/V4 architectures)"),
        OptionSpec("cache-type-k", nil, .choice(KVCacheType.allCases.map(\.rawValue)), value: "T",
                   help: "KV cache storage of keys: f32 (default), f16, q8_0, q4_0\n(MLA models: the latent cache)"),
        OptionSpec("cache-type-v", nil, .choice(KVCacheType.allCases.map(\.rawValue)), value: "T",
                   help: "KV cache storage of values: f32 (default), f16, q8_0, q4_0"),
    ]
    static var names: Set<String> { Set(spec.map(\.long)) }
    static let help = OptionSpec.helpText(spec)

    /// TIEFSEE_PAGING_HINTS=0 turns the expert paging hints off and TIEFSEE_EXPERT_COPIES=1 makes
    /// resident experts anonymous copies instead of locked file pages: both only for comparing
    /// (BENCHMARKS.md has the figures).
    static func options(_ a: Args) throws -> EngineOptions {
        let env = ProcessInfo.processInfo.environment
        let mb = try a.int("expert-cache-mb") ?? 0
        guard mb >= 0 else { throw CLIError("--expert-cache-mb must be ≥ 0") }
        var encoding: DeepSeekEncoding? = nil
        if let e = a.string("chat-encoding") {
            guard let v = DeepSeekEncoding(rawValue: e) else {
                throw CLIError("--chat-encoding expects one of \(DeepSeekEncoding.allCases.map(\.rawValue).joined(separator: ", ")), got '\(e)'")
            }
            encoding = v
        }
        var o = EngineOptions(experts: ExpertResidencyOptions(cacheBytes: mb << 20, pagingHints: env["TIEFSEE_PAGING_HINTS"] != "0",
                                                              lockInPlace: env["TIEFSEE_EXPERT_COPIES"] != "1"), chatEncoding: encoding)
        if env["TIEFSEE_PAGING_HINTS"] == "0" && mb == 0 { o.experts = nil }
        do {
            if let k = a.string("cache-type-k") { o.cacheKeyType = try KVCacheType.parse(k) }
            if let v = a.string("cache-type-v") { o.cacheValueType = try KVCacheType.parse(v) }
        } catch { throw CLIError("--cache-type-k/-v: \(error)") }
        return o
    }
}

/// `--draft MODEL` and `--draft-max N`: speculative decoding with a draft model (run, chat,
/// ask, bench --lookup, serve).
enum DraftFlags {
    static let spec: [OptionSpec] = [
        OptionSpec("draft", nil, .text, value: "MODEL",
                   help: "a smaller model with the same vocabulary proposes tokens that the\nmodel checks in one batched step (greedy requests; same text)"),
        OptionSpec("draft-max", nil, .int(1...64), value: "N", help: "most tokens the draft model proposes per check (default 8)"),
        OptionSpec("mtp", nil, .flag,
                   help: "the model's own multi-token-prediction layer (DeepSeek-V3/R1 and V4\nfiles that have one) proposes the next token, checked in the same\nbatched step (greedy requests; same text)"),
        OptionSpec("mtp-max", nil, .int(1...8), value: "N", help: "tokens --mtp proposes per check, chaining the layer (default 1)"),
    ]
    static var names: Set<String> { Set(spec.map(\.long)) }
    static let help = OptionSpec.helpText(spec)

    /// The draft model for `target`, nil without --draft; a vocabulary mismatch is an error.
    static func load(_ a: Args, target: Engine, verbose: Bool = false) throws -> DraftModel? {
        guard let path = a.string("draft") else {
            guard a.string("draft-max") == nil else { throw CLIError("--draft-max needs --draft MODEL") }
            return nil
        }
        let n = try a.int("draft-max") ?? 8
        guard n >= 1 else { throw CLIError("--draft-max must be at least 1") }
        let engine = try Engine.load(path)
        do {
            let d = try DraftModel(engine: engine, target: target, maxDraft: n)
            if verbose { err("draft model \(engine.files.location.path), up to \(n) tokens per check") }
            return d
        } catch let e as DraftVocabularyMismatch { throw CLIError(e.description) }
    }

    /// `--mtp`: the model's MTP layer as the drafter, nil without the flag; a model without
    /// the layer is an error.
    static func mtp(_ a: Args, engine: Engine, verbose: Bool = false) throws -> MTPDraft? {
        guard a.has("mtp") else {
            guard a.string("mtp-max") == nil else { throw CLIError("--mtp-max needs --mtp") }
            return nil
        }
        guard a.string("draft") == nil else { throw CLIError("--mtp and --draft are two drafters: choose one") }
        let n = try a.int("mtp-max") ?? 1
        do {
            let d = try MTPDraft(model: engine.model, maxDraft: n)
            if verbose {
                let row = d.mtp.activeWeightBytesPerRow, step = engine.model.activeWeightBytesPerToken
                err(String(format: "multi-token prediction: layer %d, up to %d token%@ per check; a proposal reads %@ of weights (%.1f%% of a model step's %@)",
                           d.mtp.layerIndex, n, n == 1 ? "" : "s", formatBytes(row), 100 * Double(row) / Double(max(step, 1)), formatBytes(step)))
            }
            return d
        } catch let e as ModelLoadError { throw CLIError("\(e)") }
    }
}

/// Loads the model, first saying whether it will fit in memory (MemoryPlan.swift): always when
/// it will not (streamed experts, paged weights), with --verbose also when it does.
func loadEngine(_ model: String?, verbose: Bool, options: EngineOptions = EngineOptions(), contextTokens: Int? = nil) throws -> Engine {
    if let files = try? ModelFiles.open(ModelLocator.resolve(model)),
       let plan = MemoryPlan.estimate(files, contextTokens: contextTokens, options: options), verbose || plan.verdict != .fits {
        err(plan.summary)
    }
    let t0 = Date()
    let isTTY = isatty(STDERR_FILENO) != 0
    if isTTY { FileHandle.standardError.write("loading model…\r".data(using: .utf8)!) }
    let engine = try Engine.load(model, options: options)
    if isTTY { FileHandle.standardError.write("\u{1B}[2K\r".data(using: .utf8)!) }
    if verbose {
        err(String(format: "loaded %@ (%@) in %.2f s", engine.files.location.path, engine.config.family.rawValue, Date().timeIntervalSince(t0)))
    }
    return engine
}

func promptEndsInThinking(_ prompt: String) -> Bool {
    let trimmed = prompt.trimmingCharacters(in: .whitespacesAndNewlines)
    return trimmed.hasSuffix("<think>")
}

enum RunCommand {
    static let help = """
    usage: tiefsee run [MODEL] -p PROMPT [options]

    Generates a reply to PROMPT and streams it. The model's chat template is applied
    (as a single user turn) unless --raw is given, which continues PROMPT as plain text.
    Before loading it estimates the memory the weights and KV cache need: when that is more than
    is available, it says whether the routed experts will stream from disk (MoE) or all weights
    will be paged (--verbose says so when it fits too).

    \(OptionSpec.helpText(spec))
    """

    static let spec: [OptionSpec] = [
        OptionSpec("prompt", "-p", .text, value: "TEXT", help: "the prompt (or the argument after MODEL)"),
        OptionSpec("raw", nil, .flag, help: "plain text completion, no chat template"),
        OptionSpec("show-experts", nil, .flag, help: "MoE models: after generating, print per layer how often each\nexpert was chosen and the share of parameters active per token"),
        OptionSpec("ids", nil, .flag, help: "after the text, print the generated token ids (\"ids: 1,2,3\")"),
    ] + GenerateFlags.spec

    static func run(_ argv: ArraySlice<String>) throws {
        let a = try Args(argv, spec: spec)
        if a.has("help") { print(help); return }
        let f = try GenerateFlags(a)
        guard a.positional.count <= 2 else { throw CLIError("run takes MODEL and PROMPT at most, got \(a.positional.count) arguments") }
        guard let promptText = a.string("prompt") ?? (a.positional.count > 1 ? a.positional[1] : nil) else {
            throw CLIError("no prompt given (use -p \"…\")")
        }
        let engine = try loadEngine(a.positional.first, verbose: f.verbose, options: f.engine, contextTokens: f.contextSize)
        let session = Session(engine: engine, contextSize: f.contextSize ?? engine.defaultContextSize(),
                              draft: try DraftFlags.load(a, target: engine, verbose: f.verbose),
                              mtp: try DraftFlags.mtp(a, engine: engine, verbose: f.verbose))
        let text: String
        if a.has("raw") {
            text = promptText
        } else {
            var messages = [JSONValue]()
            if let s = f.system { messages.append(.object([("role", .string("system")), ("content", .string(s))])) }
            messages.append(.object([("role", .string("user")), ("content", .string(promptText))]))
            text = try engine.renderChat(messages, extra: f.templateKwargs)
        }
        let ids = engine.encodePrompt(text)
        var printer = ReasoningPrinter(startInThinking: promptEndsInThinking(text), hide: f.hideThinking, color: f.color)
        Interrupt.install()
        let showExperts = a.has("show-experts")
        let stats = showExperts ? engine.model.startRoutingStats() : nil
        defer { if stats != nil { engine.model.stopRoutingStats() } }
        let r = try session.generate(prompt: ids, options: f.options) { piece in
            printer.print(piece)
            return !Interrupt.requested
        }
        printer.finish()
        out("\n")
        if a.has("ids") { out("ids: " + r.tokens.map(String.init).joined(separator: ",") + "\n") }
        if let s = stats {
            if engine.model.moeBlocks.isEmpty {
                out("--show-experts: \(engine.config.family.rawValue) is a dense model (no experts)\n")
            } else {
                out(s.report(parameters: ParameterCount.of(config: engine.config, weights: engine.files.weights)) + "\n")
            }
        }
        if f.verbose {
            err(String(format: "prompt: %d tokens, %.1f tokens/s | generated: %d tokens, %.1f tokens/s | finish: %@",
                       r.promptTokens, r.promptTokensPerSecond, r.tokens.count, r.generatedTokensPerSecond, r.finishReason.rawValue))
            if r.draftedTokens > 0 {
                err(String(format: "drafts: %d of %d proposed tokens accepted (%.0f%%) in %d checks", r.acceptedDraftTokens,
                           r.draftedTokens, 100 * Double(r.acceptedDraftTokens) / Double(r.draftedTokens), r.verifySteps))
            }
            if let x = engine.expertResidency {
                err(String(format: "experts: %.0f MiB resident, %d lookups served from it, %d made resident",
                           Double(x.bytesResident) / 1048576, x.hits, x.admissions))
            }
        }
    }
}

/// Ctrl-C handling: the first press stops the current answer, not the program.
enum Interrupt {
    nonisolated(unsafe) static var flag: Int32 = 0
    static var requested: Bool { flag != 0 }
    static func clear() { flag = 0 }
    static func install() {
        signal(SIGINT) { _ in Interrupt.flag = 1 }
    }
}

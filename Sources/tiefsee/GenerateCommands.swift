import Foundation
import Tiefsee
#if canImport(Glibc)
import Glibc
#endif

/// Options shared by `run` and `chat`.
struct GenerateFlags {
    static let options: Set<String> = Set(["prompt", "system", "max-tokens", "temp", "top-p", "top-k", "min-p", "seed",
                                       "threads", "ctx", "stop", "repeat-penalty", "presence-penalty", "frequency-penalty",
                                       "grammar", "json-schema", "think"]).union(EngineFlags.names)
    static let flags: Set<String> = ["help", "verbose", "hide-thinking", "raw", "chat", "show-experts", "no-color", "ids"]
    static let aliases = ["-p": "--prompt", "-n": "--max-tokens", "-t": "--threads", "-c": "--ctx", "-s": "--seed", "-h": "--help"]

    static let help = """
      -p, --prompt TEXT        the prompt (run)
      --system TEXT            system message
      -n, --max-tokens N       tokens to generate (default 512)
      --temp T                 temperature, 0 = greedy (default 0.7)
      --top-k K / --top-p P / --min-p P   sampling filters (defaults 40 / 0.95 / 0.05)
      --repeat-penalty R, --presence-penalty P, --frequency-penalty F
      -s, --seed N             random seed: the same seed gives the same text
      --stop TEXT              stop string (may repeat as comma list)
      -t, --threads N          worker threads (default: all cores)
      -c, --ctx N              context size in tokens (default: the model's, bounded by memory)
      --grammar FILE           only output this GBNF grammar allows (llama.cpp's notation)
      --json-schema S          only JSON valid under this schema (a file, or the schema text)
      --hide-thinking          do not print <think>…</think> reasoning
      --think on|off           thinking switch of hybrid models (DeepSeek-V3.1/V3.2/V4 `thinking`,
                               Qwen3 `enable_thinking`); default: the model's own default
      --verbose                print prompt/generation speed at the end
    \(EngineFlags.help)
    """

    var options = GenerationOptions()
    var system: String?
    var contextSize: Int?
    var verbose = false
    var hideThinking = false
    var engine = EngineOptions()
    /// Chat template variables (`--think`).
    var templateKwargs: [String: JSONValue] = [:]

    init(_ a: Args) throws {
        engine = try EngineFlags.options(a)
        if let n = try a.int("max-tokens") { guard n > 0 else { throw CLIError("--max-tokens must be positive") }; options.maxTokens = n }
        if let t = try a.double("temp") { guard t >= 0 else { throw CLIError("--temp must be ≥ 0") }; options.sampling.temperature = t }
        if let v = try a.int("top-k") { options.sampling.topK = max(0, v) }
        if let v = try a.double("top-p") { guard v > 0 && v <= 1 else { throw CLIError("--top-p must be in (0, 1]") }; options.sampling.topP = v }
        if let v = try a.double("min-p") { options.sampling.minP = max(0, v) }
        if let v = try a.double("repeat-penalty") { options.sampling.repetitionPenalty = v }
        if let v = try a.double("presence-penalty") { options.sampling.presencePenalty = v }
        if let v = try a.double("frequency-penalty") { options.sampling.frequencyPenalty = v }
        if let s = a.string("seed") {
            guard let v = UInt64(s) else { throw CLIError("--seed expects a non-negative integer, got '\(s)'") }
            options.sampling.seed = v
        }
        if let s = a.string("stop") { options.stop = s.split(separator: ",").map(String.init) }
        if let t = try a.int("threads") {
            guard t > 0 && t <= 256 else { throw CLIError("--threads must be between 1 and 256") }
            ThreadPool.configureShared(threads: t)
        }
        if let c = try a.int("ctx") { guard c >= 16 else { throw CLIError("--ctx must be at least 16") }; contextSize = c }
        options.grammar = try GenerateFlags.grammar(a)
        system = a.string("system")
        verbose = a.has("verbose")
        hideThinking = a.has("hide-thinking")
        if let t = a.string("think") {
            guard let on = ["on": true, "off": false, "true": true, "false": false][t.lowercased()] else {
                throw CLIError("--think expects on or off, got '\(t)'")
            }
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

    init(startInThinking: Bool, hide: Bool) {
        splitter = ReasoningSplitter(startInThinking: startInThinking)
        self.hide = hide
        color = isatty(STDOUT_FILENO) != 0 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
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
    static let names: Set<String> = ["expert-cache-mb", "chat-encoding", "cache-type-k", "cache-type-v"]

    static let help = """
      --expert-cache-mb N      MoE models larger than memory: also keep the N MiB of most used
                               experts resident (default 0; chosen experts are always prefetched)
      --chat-encoding E        prompt format instead of the chat template: deepseek-v3.2 or
                               deepseek-v4 (default: those for V3.2/V4 architectures)
      --cache-type-k T, --cache-type-v T   KV cache storage: f32 (default), f16, q8_0, q4_0
                               (MLA models: the latent cache, set by -k)
    """

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

    \(GenerateFlags.help)
      --raw                    plain text completion, no chat template
      --show-experts           MoE models: after generating, print per layer how often each
                               expert was chosen and the share of parameters active per token
      --ids                    after the text, print the generated token ids ("ids: 1,2,3")
    """

    static func run(_ argv: ArraySlice<String>) throws {
        let a = try Args(argv, options: GenerateFlags.options, flags: GenerateFlags.flags, aliases: GenerateFlags.aliases)
        if a.has("help") { print(help); return }
        let f = try GenerateFlags(a)
        guard let promptText = a.string("prompt") ?? (a.positional.count > 1 ? a.positional[1] : nil) else {
            throw CLIError("no prompt given (use -p \"…\")")
        }
        let engine = try loadEngine(a.positional.first, verbose: f.verbose, options: f.engine, contextTokens: f.contextSize)
        let session = Session(engine: engine, contextSize: f.contextSize ?? engine.defaultContextSize())
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
        var printer = ReasoningPrinter(startInThinking: promptEndsInThinking(text), hide: f.hideThinking)
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

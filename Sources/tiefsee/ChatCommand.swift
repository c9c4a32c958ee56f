import Foundation
import Tiefsee
#if canImport(Glibc)
import Glibc
#endif

enum ChatCommand {
    static let help = """
    usage: tiefsee chat [MODEL] [options]

    Interactive chat with the model's chat template. Commands: /reset (forget the
    conversation), /exit (quit). Ctrl-C stops the current answer; at the prompt it quits.
    When the conversation outgrows the context, the oldest turns are dropped (with a notice).

    \(GenerateFlags.help)
    """

    static func run(_ argv: ArraySlice<String>) throws {
        let a = try Args(argv, spec: GenerateFlags.spec)
        if a.has("help") { print(help); return }
        let f = try GenerateFlags(a)
        guard a.positional.count <= 1 else { throw CLIError("chat takes at most one MODEL argument (the conversation is read from standard input)") }
        let engine = try loadEngine(a.positional.first, verbose: f.verbose, options: f.engine)
        let session = Session(engine: engine, contextSize: f.contextSize ?? engine.defaultContextSize(),
                              draft: try DraftFlags.load(a, target: engine, verbose: f.verbose),
                              mtp: try DraftFlags.mtp(a, engine: engine, verbose: f.verbose))
        installInterruptWithoutRestart()
        let interactive = isatty(STDIN_FILENO) != 0
        if interactive {
            err("tiefsee chat — \(URL(fileURLWithPath: engine.files.location.path).lastPathComponent), context \(session.contextSize) tokens. /reset, /exit; Ctrl-C stops an answer.")
        }
        var system: [JSONValue] = []
        if let s = f.system { system = [.object([("role", .string("system")), ("content", .string(s))])] }
        var turns: [JSONValue] = []
        while true {
            if interactive { out("> ") }
            Interrupt.clear()
            guard let line = readLine(strippingNewline: true) else {
                if interactive { out("\n") }
                return
            }
            let input = line.trimmingCharacters(in: .whitespaces)
            if input.isEmpty { continue }
            if input == "/exit" || input == "/quit" { return }
            if input == "/reset" { turns = []; session.reset(); err("(conversation reset)"); continue }
            turns.append(.object([("role", .string("user")), ("content", .string(input))]))
            // Fit the conversation into the context: drop the oldest turns, keep the system prompt.
            let reserve = min(f.options.maxTokens, session.contextSize / 4)
            var ids: [Int] = []
            var prompt = ""
            while true {
                prompt = try engine.renderChat(system + turns, extra: f.templateKwargs)
                ids = engine.encodePrompt(prompt)
                if ids.count + reserve <= session.contextSize || turns.count <= 1 { break }
                let drop = turns.count >= 3 ? 2 : 1
                turns.removeFirst(drop)
                err("(context full: dropped the oldest turn)")
            }
            if ids.count >= session.contextSize {
                err("this message is too long for the context (\(ids.count) tokens, context \(session.contextSize)); try a shorter one")
                turns.removeLast()
                continue
            }
            var options = f.options
            options.maxTokens = min(options.maxTokens, session.contextSize - ids.count)
            options.startsInThinking = promptEndsInThinking(prompt)
            var printer = ReasoningPrinter(startInThinking: promptEndsInThinking(prompt), hide: f.hideThinking, color: f.color)
            let r = try session.generate(prompt: ids, options: options) { piece in
                printer.print(piece)
                return !Interrupt.requested
            }
            printer.finish()
            out("\n")
            if r.finishReason == .cancelled { err("(stopped)") }
            if f.verbose {
                err(String(format: "(%d tokens, %.1f tokens/s, finish: %@)", r.tokens.count, r.generatedTokensPerSecond, r.finishReason.rawValue))
            }
            turns.append(.object([("role", .string("assistant")), ("content", .string(r.content))]))
        }
    }

    /// SIGINT without SA_RESTART: at the prompt, readLine returns nil and the chat ends;
    /// during an answer, the flag stops generation at the next token.
    static func installInterruptWithoutRestart() {
        var sa = sigaction()
        sa.__sigaction_handler.sa_handler = { _ in Interrupt.flag = 1 }
        sa.sa_flags = 0
        sigemptyset(&sa.sa_mask)
        sigaction(SIGINT, &sa, nil)
    }
}

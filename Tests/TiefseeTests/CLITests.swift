import Foundation
import XCTest
@testable import Tiefsee

/// Drives the `tiefsee` executable as a user would.
final class CLITests: XCTestCase {
    /// The executable next to the test bundle (same build configuration).
    var binary: String {
        // On Linux the test bundle is an executable in the build folder, next to `tiefsee`.
        let testExe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let sibling = testExe.deletingLastPathComponent().appendingPathComponent("tiefsee").path
        return FileManager.default.isExecutableFile(atPath: sibling) ? sibling : repoRoot + "/.build/debug/tiefsee"
    }

    struct Result { let status: Int32; let stdout: String; let stderr: String }

    func run(_ args: [String], stdin: String? = nil, env: [String: String] = [:]) throws -> Result {
        let r = try runProcess(binary, args, stdin: stdin, env: env)
        return Result(status: r.status, stdout: r.stdout, stderr: r.stderr)
    }

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw XCTSkip("tiefsee executable not built at \(binary)")
        }
    }

    /// A one-line error naming the problem, a non-zero exit, no stack trace.
    func assertCleanError(_ r: Result, mentions: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotEqual(r.status, 0, file: file, line: line)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "expected one line, got: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(mentions), "'\(r.stderr)' should mention '\(mentions)'", file: file, line: line)
        XCTAssertFalse(r.stderr.contains("Fatal error") || r.stderr.contains("Backtrace"), file: file, line: line)
    }

    /// DeepSeek-V4: the KV bytes per token of each layer kind (window only, 1 entry per 4 tokens
    /// with the indexer's keys, 1 per 128), the fixed part, and the MTP block it carries.
    func testInfoPrintsDeepSeekV4CachePerLayerKind() throws {
        let r = try run(["info", fixturePath("dsv4/tiny")])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        func line(_ s: String) -> String { lines.first { $0.contains(s) } ?? "" }
        XCTAssertTrue(line("KV cache:").contains("113 B per token (f32) + 55.0 KiB fixed"), r.stdout)
        XCTAssertTrue(line("sliding window 16").contains("1 layer          0 B per token per layer, 4.0 KiB fixed"), r.stdout)
        XCTAssertTrue(line("compressed_sparse_attention").contains("2 layers        56 B per token per layer"), r.stdout)
        XCTAssertTrue(line("heavily_compressed_attention").contains("1 layer          1 B per token per layer, 36.0 KiB fixed"), r.stdout)
        XCTAssertTrue(line("multi-token prediction").contains("1 layer(s)"), r.stdout)
        XCTAssertTrue(line("multi-token prediction").contains("drafts with --mtp"), r.stdout)
    }

    /// `bench --kernels --json`: a timing per weight type (the low-bit ones included) and
    /// instruction set, no model needed.
    func testBenchKernelsJSON() throws {
        let r = try run(["bench", "--kernels", "-r", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try XCTUnwrap(try JSONValue.parse(r.stdout).array)
        let types = Set(rows.compactMap { $0["type"]?.string })
        for t in lowBitTypes + [.q4_K, .q8_0] { XCTAssertTrue(types.contains(t.rawValue), "no timing for \(t.rawValue)") }
        for row in rows {
            XCTAssertGreaterThan(row["row_ns_per_block"]?.double ?? 0, 0, "\(row)")
            XCTAssertGreaterThan(row["batch8_ns_per_block"]?.double ?? 0, 0, "\(row)")
            XCTAssertGreaterThan(row["rows2_ns_per_block"]?.double ?? 0, 0, "\(row)")
            // the panel kernel takes every type but Q2_K
            if row["type"]?.string == "Q2_K" { XCTAssertEqual(row["panel64_ns_per_block_token"], .null, "\(row)") }
            else { XCTAssertGreaterThan(row["panel64_ns_per_block_token"]?.double ?? 0, 0, "\(row)") }
        }
        XCTAssertEqual(rows.first { $0["type"]?.string == "IQ2_XXS" }?["bits_per_weight"]?.double, 2.0625)
        assertCleanError(try run(["bench", "--kernels", "model.gguf"]), mentions: "takes no model")
    }

    /// `info` on the low-bit MoE fixture: bits per weight overall and per kind of tensor, and
    /// whether it fits in memory.
    func testInfoPrintsBitsPerWeightByKind() throws {
        let r = try run(["info", fixturePath("gguf/lowbit-mixed.gguf")])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        func line(_ s: String) -> String { lines.first { $0.contains(s) } ?? "" }
        XCTAssertTrue(line("bits/weight:").contains("2.419 overall"), r.stdout)
        XCTAssertTrue(line("routed experts").contains("1.792 bits/weight"), r.stdout)
        XCTAssertTrue(line("shared experts").contains("3.583 bits/weight"), r.stdout)
        XCTAssertTrue(line("embeddings/head").contains("3.438 bits/weight"), r.stdout)
        XCTAssertTrue(line("attention ").contains("bits/weight"), r.stdout)
        XCTAssertTrue(line("IQ1_S ").contains("1.562 bits/weight"), r.stdout)
        XCTAssertTrue(line("memory:").hasPrefix("memory: fits"), r.stdout)
    }

    /// `run --mtp` on the DeepSeek-V3 fixture (its random MTP layer): the same text as without,
    /// the drafts' acceptance in the stats, the proposal's cost with --verbose; a model without
    /// the layer is refused in one line.
    func testRunWithMTPDrafts() throws {
        let args = ["run", fixturePath("moe/deepseek-v3"), "-p", "the cat sat", "--raw", "-n", "24", "--temp", "0"]
        let plain = try run(args)
        XCTAssertEqual(plain.status, 0, plain.stderr)
        let mtp = try run(args + ["--mtp", "--verbose"])
        XCTAssertEqual(mtp.status, 0, mtp.stderr)
        XCTAssertEqual(mtp.stdout, plain.stdout)
        XCTAssertTrue(mtp.stderr.contains("multi-token prediction: layer 3, up to 1 token per check; a proposal reads"), mtp.stderr)
        XCTAssertNotNil(mtp.stderr.range(of: #"drafts: \d+ of \d+ proposed tokens accepted"#, options: .regularExpression), mtp.stderr)
        let chained = try run(args + ["--mtp", "--mtp-max", "3"])
        XCTAssertEqual(chained.stdout, plain.stdout, chained.stderr)
        assertCleanError(try run(["run", fixturePath("moe/deepseek-v32"), "-p", "x", "-n", "2", "--mtp"]), mentions: "no multi-token-prediction layer")
        assertCleanError(try run(args + ["--mtp-max", "2"]), mentions: "--mtp-max needs --mtp")
    }

    /// `run` says before loading that a MoE larger than the memory available will stream its
    /// routed experts from disk (and still runs), and with --verbose that a model fits.
    func testRunEstimatesMemoryBeforeLoading() throws {
        let model = fixturePath("moe/deepseek-v3")
        let args = ["run", model, "-p", "the cat", "--raw", "-n", "4", "--temp", "0"]
        let fits = try run(args + ["--verbose"])
        XCTAssertEqual(fits.status, 0, fits.stderr)
        XCTAssertTrue(fits.stderr.contains("memory: fits"), fits.stderr)
        XCTAssertFalse(try run(args).stderr.contains("memory:"), "silent when it fits")
        // The f32 fixture: 847 KiB of weights, 384 KiB of them routed experts, + 240 KiB of KV cache.
        let tight = try run(args, env: ["TIEFSEE_MEMORY_BYTES": "800000"])
        XCTAssertEqual(tight.status, 0, tight.stderr)
        XCTAssertTrue(tight.stderr.contains("routed experts") && tight.stderr.contains("will stream from disk"), tight.stderr)
        XCTAssertFalse(tight.stdout.isEmpty)
        let tiny = try run(args, env: ["TIEFSEE_MEMORY_BYTES": "1000"])
        XCTAssertTrue(tiny.stderr.contains("paged in from disk on every token"), tiny.stderr)
    }

    func testErrorsAreOneLine() throws {
        assertCleanError(try run(["run", "no-such-model-name", "-p", "hi"]), mentions: "not found")
        assertCleanError(try run(["run", "/nonexistent/model.gguf", "-p", "hi"]), mentions: "no such file")
        let dir = NSTemporaryDirectory() + "tiefsee-gpt2-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try #"{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 10}"#.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        assertCleanError(try run(["run", dir, "-p", "hi"]), mentions: "unsupported model architecture 'GPT2LMHeadModel'")
        assertCleanError(try run(["frobnicate"]), mentions: "unknown command")
        assertCleanError(try run(["run", "-p", "hi", "--temp", "hot"]), mentions: "--temp expects a number")
        _ = try requireDefaultModel()
        let long = String(repeating: "hello ", count: 100)
        assertCleanError(try run(["run", "-p", long, "--ctx", "32"]), mentions: "prompt is too long")
    }

    /// Options are declared once (OptionSpec): what a command does not declare is an error, values
    /// are checked by type and range the same way in every command, and help lists what parses.
    func testOptionsAreDeclaredOnce() throws {
        assertCleanError(try run(["run", "-p", "hi", "--chat"]), mentions: "unknown option --chat")
        assertCleanError(try run(["chat", "--raw"]), mentions: "unknown option --raw")
        assertCleanError(try run(["chat", "--ids"]), mentions: "unknown option --ids")
        assertCleanError(try run(["chat", "-p", "hi"]), mentions: "unknown option -p")
        assertCleanError(try run(["ask", "q", "--raw"]), mentions: "unknown option --raw")
        assertCleanError(try run(["quantize", "a", "b", "-t", "Q8_0"]), mentions: "unknown option -t")
        for cmd in [["run", "-p", "hi"], ["embed", "x"], ["logits", "--tokens", "1"], ["kb", "search", "q"], ["ask", "q"],
                    ["serve"]] {
            assertCleanError(try run(cmd + ["--threads", "0"]), mentions: "--threads must be between 1 and 256, got 0")
        }
        // Each subcommand accepts only its own options.
        assertCleanError(try run(["kb", "ls", "--threads", "2"]), mentions: "unknown option --threads")
        assertCleanError(try run(["kb", "rm", "x", "--rerank", "m"]), mentions: "unknown option --rerank")
        assertCleanError(try run(["kb", "search", "q", "--mode", "fuzzy"]), mentions: "--mode expects one of hybrid, bm25, vector")
        assertCleanError(try run(["user", "list", "--admin"]), mentions: "unknown option --admin")
        assertCleanError(try run(["group", "grant", "g", "kb", "--remove"]), mentions: "unknown option --remove")
        assertCleanError(try run(["serve", "--parallel", "0"]), mentions: "--parallel must be between 1 and 64, got 0")
        assertCleanError(try run(["serve", "--port", "70000"]), mentions: "--port must be between 0 and 65535")
        assertCleanError(try run(["bench", "-p", "12x"]), mentions: "--n-prompt expects comma-separated positive integers")
        assertCleanError(try run(["bench", "-r", "0"]), mentions: "--repetitions must be between 1 and 10000, got 0")
        for (cmd, listed) in [(["serve", "--help"], "-np, --parallel N"), (["bench", "--help"], "-p, --n-prompt N,…"),
                              (["kb", "--help"], "--mode M"), (["embed", "--help"], "-t, --threads N")] {
            let h = try run(cmd)
            XCTAssertEqual(h.status, 0)
            XCTAssertTrue(h.stdout.contains(listed), "\(cmd[0]) --help lacks \(listed)")
        }
        assertCleanError(try run(["run", "-p", "hi", "--think", "maybe"]), mentions: "--think expects one of on, off")
        assertCleanError(try run(["run", "-p", "hi", "--cache-type-k", "q5_9"]), mentions: "--cache-type-k expects one of")
        assertCleanError(try run(["run", "-p", "hi", "--top-p", "1.5"]), mentions: "--top-p must be between 0.0 and 1.0")
        assertCleanError(try run(["run", "-p", "hi", "-n", "1", "-n", "2"]), mentions: "option --max-tokens given twice")
        let help = try run(["run", "--help"])
        XCTAssertEqual(help.status, 0)
        for o in ["--no-color", "--stop TEXT", "-t, --threads N", "--cache-type-v T", "--ids"] {
            XCTAssertTrue(help.stdout.contains(o), "run --help lacks \(o)")
        }
        XCTAssertFalse(help.stdout.contains("--chat "), "an option that does nothing must not be listed")
    }

    /// `--stop` takes comma lists and may repeat: generation stops at whichever comes first.
    func testStopTakesListsAndRepeats() throws {
        _ = try requireDefaultModel()
        let base = ["run", "--raw", "-p", "1, 2, 3, 4, 5, 6, 7, 8,", "--temp", "0", "-n", "24"]
        let free = try run(base)
        XCTAssertEqual(free.status, 0, free.stderr)
        XCTAssertTrue(free.stdout.contains("12"), free.stdout)
        let stopped = try run(base + ["--stop", "zzz, 11", "--stop", "qqq"])
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        XCTAssertTrue(stopped.stdout.contains("10"), stopped.stdout)
        XCTAssertFalse(stopped.stdout.contains("11"), "the ' 11' stop string must end generation: \(stopped.stdout)")
    }

    /// `logits --tokens` needs no tokenizer: the qwen2 fixture folder is config.json + safetensors
    /// only, and its rows match transformers' logits for the fixture's prompt.
    func testLogitsOnAFolderWithoutTokenizer() throws {
        let dir = fixturePath("models/qwen2-bias-tied")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/tokenizer.json"))
        let e = try JSONValue.parse(contentsOf: dir + "/expected.json")
        let prompt = try XCTUnwrap(e["prompt"]?.array?.compactMap(\.int))
        let ref = try XCTUnwrap(e["logits"]?.array?.map { $0.array!.compactMap(\.double).map(Float.init) })
        let r = try run(["logits", dir, "--tokens", prompt.map(String.init).joined(separator: ","), "--last", "\(prompt.count)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try XCTUnwrap(JSONValue.parse(r.stdout)["logits"]?.array)
        XCTAssertEqual(rows.count, prompt.count)
        for (t, row) in rows.enumerated() {
            assertClose(row.array!.compactMap(\.double).map(Float.init), ref[t], tolerance: 1e-4, "logits --tokens row \(t)")
        }
        assertCleanError(try run(["logits", dir, "--text", "hi"]), mentions: "tokenizer")
    }

    /// `template` and `tokenize` on a folder of tokenizer.json + tokenizer_config.json only.
    func testTemplateAndTokenizeOnATokenizerOnlyFolder() throws {
        let dir = NSTemporaryDirectory() + "tiefsee-tokonly-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: fixturePath("tokenizer/deepseek-v3-style/tokenizer.json"), toPath: dir + "/tokenizer.json")
        let tc: JSONValue = .object([("bos_token", .object([("content", .string("<BOS>"))])), ("eos_token", .string("<EOS>")),
                                     ("chat_template", .string("{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"))])
        try tc.serialized().write(toFile: dir + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        let msgs = dir + "/m.json"
        try #"[{"role": "user", "content": "hello"}]"#.write(toFile: msgs, atomically: true, encoding: .utf8)
        let t = try run(["template", dir, "--messages", msgs])
        XCTAssertEqual(t.status, 0, t.stderr)
        XCTAssertEqual(t.stdout, "<BOS>[user] hello<EOS>[assistant] ")
        let ids = try run(["tokenize", dir, "hello world"])
        XCTAssertEqual(ids.status, 0, ids.stderr)
        let direct = try run(["tokenize", dir + "/tokenizer.json", "hello world"])
        XCTAssertEqual(ids.stdout, direct.stdout)
        XCTAssertFalse(ids.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
    }

    /// Every bench result comes with the machine it was measured on.
    func testBenchPrintsTheMachineLine() throws {
        let model = try requireDefaultModel()
        let r = try run(["bench", model, "-p", "8", "-n", "2", "-t", "1", "-r", "1", "--ttft", "0", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let all = try XCTUnwrap(JSONValue.parse(r.stdout).array)
        let m = try XCTUnwrap(all.first)
        XCTAssertEqual(m["test"]?.string, "machine")
        XCTAssertEqual(m["cores"]?.int, ProcessInfo.processInfo.activeProcessorCount)
        XCTAssertTrue(["AVX2", "AVX-512 VNNI"].contains(m["kernels"]?.string ?? ""), "\(m)")
        XCTAssertFalse((m["cpu"]?.string ?? "").isEmpty)
        XCTAssertGreaterThanOrEqual(m["load_average"]?.double ?? -1, 0)
        XCTAssertTrue(all.contains { $0["test"]?.string == "pp8" } && all.contains { $0["test"]?.string == "tg2" })
        let forced = try run(["bench", model, "-p", "8", "-n", "2", "-t", "1", "-r", "1", "--ttft", "0"], env: ["TIEFSEE_KERNELS": "avx2"])
        XCTAssertTrue(forced.stdout.contains("machine: ") && forced.stdout.contains("kernels AVX2"), forced.stdout)
    }

    func testSeedIsReproducible() throws {
        _ = try requireDefaultModel()
        let args = ["run", "-p", "Name three colours.", "--max-tokens", "12", "--temp", "1.0", "--seed", "1234"]
        let a = try run(args), b = try run(args)
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(a.stdout, b.stdout)
        XCTAssertFalse(a.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        let c = try run(["run", "-p", "Name three colours.", "--max-tokens", "12", "--temp", "1.0", "--seed", "99"])
        XCTAssertEqual(c.status, 0)
    }

    func testTokenizeDetokenizeTemplateProbes() throws {
        let model = try requireDefaultModel()
        let t = try run(["tokenize", model, "--json", "--stdin"], stdin: "-leading dash\nand <|im_start|> special")
        XCTAssertEqual(t.status, 0, t.stderr)
        let j = try JSONValue.parse(t.stdout)
        let ids = j["ids"]!.array!.map { $0.int! }
        XCTAssertTrue(ids.contains(151644))
        XCTAssertEqual(j["pieces"]!.array!.count, ids.count)
        let noSpecial = try run(["tokenize", model, "--no-special", "<|im_start|>"])
        XCTAssertFalse(noSpecial.stdout.contains("151644"))
        let d = try run(["detokenize", model, ids.map(String.init).joined(separator: ","), "--raw"])
        XCTAssertEqual(d.stdout, "-leading dash\nand <|im_start|> special")
        let msgs = NSTemporaryDirectory() + "tiefsee-msgs-\(getpid()).json"
        try #"[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]"#.write(toFile: msgs, atomically: true, encoding: .utf8)
        defer { unlink(msgs) }
        let r = try run(["template", model, "--messages", msgs])
        XCTAssertEqual(r.stdout, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        let r2 = try run(["template", model, "--messages", msgs, "--no-generation-prompt"])
        XCTAssertEqual(r2.stdout, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")
    }

    func testLogitsProbe() throws {
        _ = try requireDefaultModel()
        let r = try run(["logits", "--tokens", "9707,11,1879,0", "--last", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try JSONValue.parse(r.stdout)
        XCTAssertEqual(j["argmax"]?.array?.count, 4)
        XCTAssertEqual(j["logits"]?.array?.count, 2)
        XCTAssertEqual(j["logits"]?[0]?.array?.count, 151936)
        let row = j["logits"]![1]!.array!.map { $0.double! }
        XCTAssertEqual(row.indices.max { row[$0] < row[$1] }, j["argmax"]![3]!.int)
        let t = try run(["logits", "--text", "Hello", "--json"])
        XCTAssertEqual(try JSONValue.parse(t.stdout)["ids"]?.array?.map { $0.int! }, [9707])
    }

    /// `tiefsee chat` under a pseudo-terminal: a turn, Ctrl-C (SIGINT) mid-answer stops only the
    /// answer, the next turn works, /exit quits cleanly.
    func testChatUnderPseudoTerminalWithInterrupt() throws {
        _ = try requireDefaultModel()
        // posix_openpt/grantpt/unlockpt are hidden behind _XOPEN_SOURCE in Glibc's module, so
        // do what they do: open the multiplexer, unlock (TIOCSPTLCK), ask the number (TIOCGPTN).
        let master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        XCTAssertGreaterThanOrEqual(master, 0)
        var unlock: Int32 = 0, ptn: UInt32 = 0
        XCTAssertEqual(ioctl(master, 0x4004_5431 /* TIOCSPTLCK */, &unlock), 0)
        XCTAssertEqual(ioctl(master, 0x8004_5430 /* TIOCGPTN */, &ptn), 0)
        let slave = open("/dev/pts/\(ptn)", O_RDWR | O_NOCTTY)
        XCTAssertGreaterThanOrEqual(slave, 0)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["chat", "--temp", "0", "--max-tokens", "48", "--ctx", "1024"]
        let fh = FileHandle(fileDescriptor: slave, closeOnDealloc: false)
        p.standardInput = fh; p.standardOutput = fh; p.standardError = fh
        try p.run()
        close(slave)
        var transcript = ""
        func readUntil(_ needle: String, timeout: Double) -> Bool {
            let end = Date().addingTimeInterval(timeout)
            var buf = [UInt8](repeating: 0, count: 4096)
            while Date() < end {
                var pfd = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
                if poll(&pfd, 1, 100) > 0 {
                    let n = read(master, &buf, buf.count)
                    if n > 0 { transcript += String(decoding: buf[0..<n], as: UTF8.self) }
                }
                if transcript.contains(needle) { return true }
            }
            return false
        }
        func type(_ s: String) { _ = s.withCString { write(master, $0, strlen($0)) } }
        XCTAssertTrue(readUntil("> ", timeout: 60), "no prompt: \(transcript)")
        type("Write a very long story about a lighthouse keeper, at least 300 words.\n")
        // Wait until the answer is streaming, then interrupt it.
        let mark = transcript.count
        let end = Date().addingTimeInterval(120)
        while Date() < end && transcript.count < mark + 40 { _ = readUntil("\u{0}", timeout: 0.5) }
        kill(p.processIdentifier, SIGINT)
        XCTAssertTrue(readUntil("(stopped)", timeout: 30), "interrupt did not stop the answer: \(transcript)")
        XCTAssertTrue(p.isRunning, "Ctrl-C must not end the program")
        let before = transcript.count
        type("Say OK.\n")
        XCTAssertTrue(readUntil("> ", timeout: 1) || true)
        let end2 = Date().addingTimeInterval(120)
        while Date() < end2 && !String(transcript.dropFirst(before)).contains("\n> ") { _ = readUntil("\u{0}", timeout: 0.5) }
        XCTAssertTrue(String(transcript.dropFirst(before)).contains("\n> "), "second turn did not finish: \(transcript)")
        type("/exit\n")
        let deadline = Date().addingTimeInterval(20)
        while p.isRunning && Date() < deadline { usleep(100_000) }
        XCTAssertFalse(p.isRunning)
        if p.isRunning { p.terminate() } else { XCTAssertEqual(p.terminationStatus, 0) }
        close(master)
    }
}

import Foundation
import Tiefsee

enum BenchCommand {
    /// Short names as llama-bench has them (-p, -n, -t, -r, -d); the lists may also be repeated.
    static let spec: [OptionSpec] = [
        OptionSpec.help,
        OptionSpec("n-prompt", "-p", .list, value: "N,…", help: "prompt lengths of the ppN tests (default 128,512)"),
        OptionSpec("n-gen", "-n", .list, value: "N,…", help: "tokens generated in the tgN tests (default 64)"),
        OptionSpec("threads", "-t", .list, value: "N,…", help: "thread counts, each measured (default 1,2)"),
        OptionSpec("repetitions", "-r", .int(1...10_000), value: "R", help: "runs per test; median and standard deviation (default 5)"),
        OptionSpec("batch", "-b", .list, value: "B,…", help: "also tgN@B: B sequences decoding together"),
        OptionSpec("n-depth", "-d", .list, value: "D,…", help: "also tgN@dD: generation after D tokens in the cache"),
        OptionSpec("ttft", nil, .int(0...1_000_000), value: "P", help: "time to first token of a P-token prompt (default 512; 0: skip)"),
        OptionSpec("json-schema", nil, .text, value: "S", help: "also the cost of a JSON schema's token mask (file or schema)"),
        OptionSpec("grammar", nil, .text, value: "FILE", help: "also the cost of a GBNF grammar's token mask"),
        OptionSpec("grammar-prompt", nil, .text, value: "TEXT", help: "the chat prompt of the grammar test"),
        OptionSpec("lookup", nil, .flag, help: "also prompt-lookup speculation on quoting answers"),
        OptionSpec("kernels", nil, .flag, help: "the quantized dot kernels instead of a model"),
        OptionSpec("compare-llama-cpp", nil, .flag, help: "also llama.cpp on the same file, with the ratios"),
        OptionSpec("json", nil, .flag, help: "results as JSON"),
    ] + EngineFlags.spec + DraftFlags.spec

    static let help = """
    usage: tiefsee bench [MODEL] [-p 128,512] [-n 64] [-t 1,2] [-r 5] [-b 4] [-d 4096] [--ttft 512]
                         [--expert-cache-mb N] [--json] [--json-schema S | --grammar FILE] [--lookup] [--mtp]
                         [--compare-llama-cpp]
           tiefsee bench --kernels [-r 5] [--json]

    \(OptionSpec.helpText(spec))

    Measures prompt processing (ppN: N prompt tokens in one batched pass) and generation
    (tgN: N tokens decoded one at a time) in tokens/s, median and standard deviation over -r
    repetitions, for each thread count. It also measures the machine's memory read bandwidth
    (before and after each generation test, the higher figure) and prints each generation
    figure as a share of the roofline: bandwidth ÷ bytes read per token (weights a token
    touches — for MoE only the active experts — plus the KV cache).
    -b B adds "tgN@B": B sequences decoding together in one batched step per token (as the
    server's continuous batching does); its figure is the aggregate tokens/s, and next to it
    the ratio to one sequence decoded the same way in alternation with it (JSON
    "vs_one_sequence").
    -d D adds "tgN@dD": N tokens decoded after D prompt tokens already in the cache (as
    llama-bench -d), so attention reads a D-long cache each step; with --cache-type-k/-v the
    cache is stored in that type.
    --ttft P measures time to first token: a P-token prompt processed and the first token
    decoded, wall clock (0 skips it). At the end it prints peak memory: the resident set's peak
    over the time-to-first-token runs (VmHWM, restarted after the bandwidth test's buffer), split
    into model-file pages the passes touched (mapped weights), the KV cache and the rest.
    --json-schema S / --grammar FILE adds "json": a chat prompt (--grammar-prompt TEXT) answered
    under the grammar, greedy, against the same number of tokens generated without it; it prints
    both tokens/s, their ratio and how many steps needed the allowed-token mask.
    --lookup adds "lookup-rag" and "lookup-code": greedy answers that quote their context (a
    passage, code to edit) with prompt-lookup speculation and without; it prints both tokens/s,
    the speed-up and the share of drafted tokens accepted. With --draft MODEL (--draft-max N)
    they are "draft-rag" and "draft-code": the draft model proposes instead of prompt lookup.
    --mtp (DeepSeek-V3/R1 and V4 files with their multi-token-prediction layer; --mtp-max N) runs them
    as "mtp-rag" and "mtp-code": the MTP layer proposes, and the accepted share is its hit rate.
    --kernels measures the quantized dot kernels instead of a model (no MODEL): for each weight
    type and instruction set, ns per weight block on one thread, for one activation row (the row
    path: decode), for 2 rows at once (the row kernels of a decode step of 2-4 sequences with VNNI, 2-3 with AVX2) and for
    8 rows at once (the packed matrix kernel: prefill, batched decode of 4 or more), on a
    1024 x 2048 matrix of random blocks; best of -r runs. --json prints [{"type", "isa",
    "bits_per_weight", "block_values", "row_ns_per_block", "rows2_ns_per_block", "batch8_ns_per_block"}].
    Every run starts with the machine line (CPU model, cores, cache sizes, kernel set, load average).
    --compare-llama-cpp also runs llama.cpp on the same file (through the llama-cpp-python package
    and scripts/compare_llama_cpp.py, developers' tools that must be installed) for each thread
    count, largest -p and first -n, and prints both engines' tokens/s and the ratios.
    --json prints [{"test": "machine", "cpu", "cores", "caches", "kernels", "load_average"},
    {"test", "threads", "tokens_per_second", "stddev", "roofline_fraction"}, …],
    time to first token as {"test": "ttftP", "threads", "seconds", "stddev"} and memory as
    {"test": "memory", "peak_rss_bytes", "mapped_weights_touched_bytes", "kv_cache_bytes",
    "expert_cache_bytes", "other_bytes"}.
    """

    /// A list option's values (`-p 128,512`, or `-p 128 -p 512`): positive integers.
    static func list(_ a: Args, _ key: String, _ def: [Int]) throws -> [Int] {
        guard let s = a.list(key) else { return def }
        let v = s.map { Int($0) }
        guard !v.isEmpty, v.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw CLIError("--\(key) expects comma-separated positive integers, got '\(s.joined(separator: ","))'")
        }
        return v.map { $0! }
    }

    static func run(_ argv: ArraySlice<String>) throws {
        let a = try Args(argv, spec: spec)
        if a.has("help") { print(help); return }
        if a.has("kernels") {
            guard a.positional.isEmpty else { throw CLIError("bench --kernels takes no model") }
            return kernels(reps: try a.int("repetitions") ?? 5, json: a.has("json"))
        }
        let pps = try list(a, "n-prompt", [128, 512])
        let tgs = try list(a, "n-gen", [64])
        let threads = try list(a, "threads", [1, 2])
        let reps = try a.int("repetitions") ?? 5
        let batches = try list(a, "batch", [])
        let depths = try list(a, "n-depth", [])
        let ttftPrompt = try a.int("ttft") ?? 512
        let grammar = try GenerateFlags.grammar(a)
        let engine = try Engine.load(a.positional.first, options: try EngineFlags.options(a))
        let model = engine.model
        let V = model.config.vocabSize
        let json = a.has("json")
        let draft = try DraftFlags.load(a, target: engine)
        let mtp = try DraftFlags.mtp(a, engine: engine)
        let name = URL(fileURLWithPath: engine.files.location.path).lastPathComponent
        let weightBytes = model.activeWeightBytesPerToken
        if !json {
            print("model: \(name) (\(model.config.family.rawValue)), bytes read per token: \(formatBytes(weightBytes)) of weights + KV cache")
            print("kernels: \(kernelInstructionSet), KV cache \(model.cacheKeyType.rawValue)/\(model.cacheValueType.rawValue)")
        }
        let machine = MachineInfo.current()
        if !json { print("machine: \(machine.summary)") }
        var results = [machine.json]
        var peakKVBytes = 0, peakRSS = 0
        var rng = SeededGenerator(seed: 42)
        func randomTokens(_ n: Int) -> [Int] { (0..<n).map { _ in Int(rng.next() % UInt64(min(V, 30000))) + 100 } }
        for t in threads {
            ThreadPool.configureShared(threads: t)
            let bw = MemoryBandwidth.measureRead()
            if !json { print(String(format: "threads %d: memory read bandwidth %.1f GB/s", t, bw / 1e9)) }
            // Warm-up: page the weights in.
            _ = try model.forward(randomTokens(8), cache: model.makeCache(capacity: 16))
            for p in pps {
                var rates = [Double]()
                for _ in 0..<reps {
                    let cache = model.makeCache(capacity: p)
                    let toks = randomTokens(p)
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    _ = try model.forward(toks, cache: cache)
                    rates.append(Double(p) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9))
                }
                results.append(report("pp\(p)", t, rates, nil, json: json))
            }
            for n in tgs {
                var rates = [Double]()
                for _ in 0..<reps {
                    let cache = model.makeCache(capacity: n + 1)
                    var logits = try model.forward(randomTokens(1), cache: cache)
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    for _ in 0..<n {
                        logits = try model.forward([Sampler.argmax(logits.p, V)], cache: cache)
                    }
                    rates.append(Double(n) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9))
                }
                // Average context during the run is about n/2 positions. The bandwidth is measured
                // again right after the runs and the higher figure taken: on a shared machine it
                // moves by 10-20% between minutes, and a low reading would overstate the fraction.
                let bytes = Double(weightBytes + model.kvBytesRead(contextLength: n / 2 + 1))
                let bandwidth = max(bw, MemoryBandwidth.measureRead())
                results.append(report("tg\(n)", t, rates, bandwidth / bytes, bandwidth: bandwidth, json: json))
            }
            for d in depths {
                for n in tgs {
                    var rates = [Double]()
                    for _ in 0..<reps {
                        let cache = model.makeCache(capacity: d + n + 1)
                        for lo in stride(from: 0, to: d, by: 512) { _ = try model.forward(randomTokens(min(512, d - lo)), cache: cache) }
                        var logits = try model.forward(randomTokens(1), cache: cache)
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        for _ in 0..<n { logits = try model.forward([Sampler.argmax(logits.p, V)], cache: cache) }
                        rates.append(Double(n) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9))
                    }
                    let bytes = Double(weightBytes + model.kvBytesRead(contextLength: d + n / 2 + 1))
                    let bandwidth = max(bw, MemoryBandwidth.measureRead())
                    results.append(report("tg\(n)@d\(d)", t, rates, bandwidth / bytes, bandwidth: bandwidth, json: json))
                }
            }
            if ttftPrompt > 0 {
                // The peak over these runs only: not the bandwidth test's buffer.
                ProcessMemory.resetPeak()
                var times = [Double]()
                for _ in 0..<reps {
                    let cache = model.makeCache(capacity: ttftPrompt + 1)
                    peakKVBytes = max(peakKVBytes, cache.bytes)
                    let toks = randomTokens(ttftPrompt)
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    let logits = try model.forward(toks, cache: cache)
                    _ = try model.forward([Sampler.argmax(logits.p, V)], cache: cache)
                    times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                }
                peakRSS = max(peakRSS, ProcessMemory.peakResidentBytes)
                results.append(reportTime("ttft\(ttftPrompt)", t, times, json: json))
            }
            if a.has("lookup") || mtp != nil {
                for (label, question) in lookupPrompts {
                    results.append(try lookupGain(engine, label, question, threads: t, reps: reps, json: json, draft: draft, mtp: mtp))
                }
            }
            if let grammar {
                results.append(try grammarCost(engine, grammar, a.string("grammar-prompt"), threads: t, reps: reps, json: json))
            }
            // Each repetition decodes one sequence alone, then the B together, the same way (one
            // batched step per token): the ratio of the two medians is the scaling, measured so
            // that the machine's drift over minutes (10-20% on a shared VM) moves both alike.
            func decodeRate(_ b: Int, _ n: Int) throws -> Double {
                let caches = (0..<b).map { _ in model.makeCache(capacity: n + 1) }
                var logits = try model.forwardBatch(caches.map { (randomTokens(1), $0, 1) })
                let t0 = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<n {
                    logits = try model.forwardBatch(zip(caches, logits).map { ([Sampler.argmax($1.p, V)], $0, 1) })
                }
                return Double(b * n) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            for b in batches {
                for n in tgs {
                    var rates = [Double](), alone = [Double]()
                    for _ in 0..<reps {
                        alone.append(try decodeRate(1, n))
                        rates.append(try decodeRate(b, n))
                    }
                    let scaling = medianAndDeviation(rates).0 / medianAndDeviation(alone).0
                    var r = report("tg\(n)@\(b)", t, rates, nil, json: json,
                                   suffix: String(format: "   (%.2fx one sequence at %.2f tokens/s, interleaved)", scaling, medianAndDeviation(alone).0))
                    if case .object(var fields) = r {
                        fields.append(("vs_one_sequence", .double(scaling)))
                        r = .object(fields)
                    }
                    results.append(r)
                }
            }
        }
        if ttftPrompt > 0 {
            let mapped = ProcessMemory.mappedResidentBytes(pathPrefix: engine.files.location.path)
            let experts = engine.expertResidency?.bytesResident ?? 0
            let other = peakRSS - mapped - peakKVBytes - experts
            if !json {
                var line = "memory: peak RSS \(formatBytes(peakRSS)) = mapped weights touched \(formatBytes(mapped))"
                    + " + KV cache \(formatBytes(peakKVBytes))"
                if experts > 0 { line += " + expert cache \(formatBytes(experts))" }
                print(line + " + other \(formatBytes(other))")
            }
            results.append(.object([("test", .string("memory")), ("peak_rss_bytes", .int(peakRSS)),
                                    ("mapped_weights_touched_bytes", .int(mapped)), ("kv_cache_bytes", .int(peakKVBytes)),
                                    ("expert_cache_bytes", .int(experts)), ("other_bytes", .int(other))]))
        }
        if a.has("compare-llama-cpp") {
            results += try compareLlamaCpp(engine.files.location.path, results, threads: threads, pp: pps.max()!,
                                           tg: tgs[0], reps: reps, json: json)
        }
        if json { print(JSONValue.array(results).serialized()) }
    }

    /// llama.cpp on the same file, in a child process (scripts/compare_llama_cpp.py's worker),
    /// one thread count at a time, next to this run's figures.
    static func compareLlamaCpp(_ model: String, _ ours: [JSONValue], threads: [Int], pp: Int, tg: Int, reps: Int,
                                json: Bool) throws -> [JSONValue] {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates = ["scripts/compare_llama_cpp.py",
                          exe.deletingLastPathComponent().appendingPathComponent("../../scripts/compare_llama_cpp.py").path]
        guard let script = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw CLIError("--compare-llama-cpp needs scripts/compare_llama_cpp.py (run from the repository)")
        }
        func rate(_ test: String, _ t: Int) -> Double? {
            ours.first { $0["test"]?.string == test && $0["threads"]?.int == t }?["tokens_per_second"]?.double
        }
        var out = [JSONValue]()
        if !json { print("llama.cpp, same file, same run:") }
        for t in threads {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["python3", script, model, "--llama-worker", "--threads", "\(t)", "--pp", "\(pp)", "--tg", "\(tg)",
                           "--reps", "\(reps)"]
            let pipe = Pipe(), errPipe = Pipe()
            p.standardOutput = pipe; p.standardError = errPipe
            try p.run()
            // stderr on its own thread, so neither pipe can fill and stall the child.
            final class Box: @unchecked Sendable { var data = Data() }
            let errBox = Box(), done = DispatchSemaphore(value: 0)
            DispatchQueue.global().async { errBox.data = errPipe.fileHandleForReading.readDataToEndOfFile(); done.signal() }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            done.wait()
            let errData = errBox.data
            p.waitUntilExit()
            guard p.terminationStatus == 0, let last = String(decoding: data, as: UTF8.self).split(separator: "\n").last,
                  let r = try? JSONValue.parse(String(last)), let lpp = r["pp"]?.double, let ltg = r["tg"]?.double else {
                let why = String(decoding: errData, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? "no output"
                throw CLIError("llama.cpp run failed (is llama-cpp-python installed?): \(why)")
            }
            let mpp = rate("pp\(pp)", t), mtg = rate("tg\(tg)", t)
            if !json {
                for (test, theirs, mine) in [("pp\(pp)", lpp, mpp), ("tg\(tg)", ltg, mtg)] {
                    let ratio = mine.map { String(format: "%.2fx", $0 / theirs) } ?? "-"
                    print(String(format: "  threads %d %@: llama.cpp %.2f tokens/s, tiefsee %@, ratio %@", t, test, theirs,
                                 mine.map { String(format: "%.2f", $0) } ?? "-", ratio))
                }
            }
            out.append(.object([("test", .string("llama.cpp")), ("threads", .int(t)), ("pp", .int(pp)), ("tg", .int(tg)),
                                ("pp_tokens_per_second", .double(lpp)), ("tg_tokens_per_second", .double(ltg)),
                                ("pp_ratio", mpp.map { .double($0 / lpp) } ?? .null), ("tg_ratio", mtg.map { .double($0 / ltg) } ?? .null)]))
        }
        return out
    }

    static let lookupPrompts: [(String, String)] = [
        ("rag", """
        Answer from the context only, quoting it.

        Context:
        [1] Orders placed before 14:00 leave the Hamburg warehouse on the same working day; orders placed later leave on the next working day.
        [2] Returns are accepted within 30 days of delivery if the item is unused and in its original packaging; the customer pays the return shipping unless the item was faulty.
        [3] Faulty items are replaced free of charge within the two-year warranty; the customer sends a photo of the fault to support@example.com first.

        Question: What are the rules for returns and for faulty items? Quote the relevant sentences.
        """),
        ("code", """
        Rename `result` to `acc` and `items` to `lines` in this function and show the whole function:

        def total(items, tax_rate):
            result = 0
            for item in items:
                if item.quantity <= 0:
                    continue
                result = result + item.price * item.quantity
            result = result * (1 + tax_rate)
            return round(result, 2)
        """),
    ]

    /// Greedy generation of the same prompt with and without speculation: prompt lookup, or
    /// the --draft model when given (then the test is "draft-LABEL"), or the --mtp layer ("mtp-LABEL").
    static func lookupGain(_ engine: Engine, _ label: String, _ question: String, threads: Int, reps: Int,
                           json: Bool, draft: DraftModel? = nil, mtp: MTPDraft? = nil) throws -> JSONValue {
        let kind = mtp != nil ? "mtp" : draft == nil ? "lookup" : "draft"
        let prompt = engine.encodePrompt(try engine.renderChat([.object([("role", .string("user")), ("content", .string(question))])]))
        var options = GenerationOptions()
        options.sampling = .greedy
        options.maxTokens = 160
        var fast = [Double](), plain = [Double]()
        var last = GenerationResult()
        for _ in 0..<reps {
            options.promptLookup = true
            last = try Session(engine: engine, contextSize: prompt.count + 161, draft: draft, mtp: mtp).generate(prompt: prompt, options: options)
            fast.append(last.generatedTokensPerSecond)
            options.promptLookup = false
            plain.append(try Session(engine: engine, contextSize: prompt.count + 161).generate(prompt: prompt, options: options).generatedTokensPerSecond)
        }
        let (f, _) = medianAndDeviation(fast), (p, _) = medianAndDeviation(plain)
        let rate = last.draftedTokens > 0 ? Double(last.acceptedDraftTokens) / Double(last.draftedTokens) : 0
        if !json {
            print(String(format: "  %@-%@ threads %d: %8.2f tokens/s with %@, %.2f without (%.2fx); %d of %d drafted tokens accepted (%.0f%%) in %d checks, %d tokens",
                         kind, label, threads, f, mtp != nil ? "MTP drafts" : draft == nil ? "prompt lookup" : "the draft model", p, f / p, last.acceptedDraftTokens, last.draftedTokens, 100 * rate, last.verifySteps, last.tokens.count))
        }
        return .object([("test", .string("\(kind)-\(label)")), ("threads", .int(threads)), ("tokens_per_second", .double(f)),
                        ("plain_tokens_per_second", .double(p)), ("drafted", .int(last.draftedTokens)),
                        ("accepted", .int(last.acceptedDraftTokens)), ("tokens", .int(last.tokens.count))])
    }

    /// Constrained generation against free generation of as many tokens, same prompt, greedy.
    static func grammarCost(_ engine: Engine, _ grammar: Grammar, _ question: String?, threads: Int, reps: Int,
                            json: Bool) throws -> JSONValue {
        let q = question ?? "List three employees of a small bakery as JSON: name, age, role, email and start date for each."
        let prompt = engine.encodePrompt(try engine.renderChat([.object([("role", .string("user")), ("content", .string(q))])]))
        var options = GenerationOptions()
        options.sampling = .greedy
        options.maxTokens = 400
        options.grammar = grammar
        var constrained = [Double](), free = [Double]()
        var tokens = 0, masked = 0
        for _ in 0..<reps {
            let session = Session(engine: engine, contextSize: prompt.count + 401)
            let r = try session.generate(prompt: prompt, options: options)
            tokens = r.tokens.count; masked = r.grammarMaskedSteps
            constrained.append(r.generatedTokensPerSecond)
            var plain = options
            plain.grammar = nil; plain.maxTokens = r.tokens.count; plain.ignoreEOS = true
            session.reset()
            free.append(try session.generate(prompt: prompt, options: plain).generatedTokensPerSecond)
        }
        let (c, _) = medianAndDeviation(constrained), (f, _) = medianAndDeviation(free)
        if !json {
            print(String(format: "  json   threads %d: %8.2f tokens/s under the grammar, %.2f without (%.1f%% of free speed); %d tokens, %d steps masked",
                         threads, c, f, 100 * c / f, tokens, masked))
        }
        return .object([("test", .string("json")), ("threads", .int(threads)), ("tokens_per_second", .double(c)),
                        ("free_tokens_per_second", .double(f)), ("tokens", .int(tokens)), ("masked_steps", .int(masked))])
    }

    /// Median and standard deviation of wall-clock seconds (time to first token).
    static func reportTime(_ test: String, _ threads: Int, _ seconds: [Double], json: Bool) -> JSONValue {
        let (median, sd) = medianAndDeviation(seconds)
        if !json { print(String(format: "  %-6@ threads %d: %8.0f ms ± %.0f", test as NSString, threads, median * 1000, sd * 1000)) }
        return .object([("test", .string(test)), ("threads", .int(threads)), ("seconds", .double(median)), ("stddev", .double(sd))])
    }

    /// `bench --kernels`: one line (or JSON object) per weight type and instruction set.
    static func kernels(reps: Int, json: Bool) {
        var results = [JSONValue]()
        if !json {
            print("kernels: ns per weight block, 1 thread, 1024 x 2048 random blocks (row: 1 activation row; rows-2: 2 rows at once, a decode step of 2 sequences; batch-8: 8 rows at once, packed; panel-8/-64: the panel kernel, ns per block and token)")
            print("type      bits/w  block  isa            row ns/block  rows-2 ns/block  batch-8 ns/block  (per token)  panel-8  panel-64")
        }
        for type in KernelBench.types {
            for k in KernelBench.measure(type, reps: reps) {
                if json {
                    results.append(.object([("type", .string(type.rawValue)), ("isa", .string(k.isa)),
                                            ("bits_per_weight", .double(type.bitsPerWeight)), ("block_values", .int(type.blockSize)),
                                            ("row_ns_per_block", .double(k.rowNsPerBlock)), ("rows2_ns_per_block", .double(k.rows2NsPerBlock)),
                                            ("batch8_ns_per_block", .double(k.batch8NsPerBlock)),
                                            ("panel8_ns_per_block_token", k.panel8NsPerToken.map { .double($0) } ?? .null),
                                            ("panel64_ns_per_block_token", k.panel64NsPerToken.map { .double($0) } ?? .null)]))
                } else {
                    print(type.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
                          + String(format: " %6.3f  %5d  ", type.bitsPerWeight, type.blockSize)
                          + k.isa.padding(toLength: 13, withPad: " ", startingAt: 0)
                          + String(format: " %12.2f  %15.2f  %16.2f  (%.2f)", k.rowNsPerBlock, k.rows2NsPerBlock, k.batch8NsPerBlock,
                                   k.batch8NsPerBlock / 8)
                          + (k.panel8NsPerToken.map { String(format: "  %7.2f", $0) } ?? "        -")
                          + (k.panel64NsPerToken.map { String(format: "  %8.2f", $0) } ?? "         -"))
                }
            }
        }
        if json { print(JSONValue.array(results).serialized()) }
    }

    static func medianAndDeviation(_ v: [Double]) -> (Double, Double) {
        let sorted = v.sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        let mean = v.reduce(0, +) / Double(v.count)
        let sd = (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(max(v.count - 1, 1))).squareRoot()
        return (median, sd)
    }

    static func report(_ test: String, _ threads: Int, _ rates: [Double], _ roofline: Double?, bandwidth: Double = 0,
                       json: Bool, suffix: String = "") -> JSONValue {
        let (median, sd) = medianAndDeviation(rates)
        if !json {
            var line = String(format: "  %-6@ threads %d: %8.2f tokens/s ± %.2f", test as NSString, threads, median, sd)
            if let r = roofline {
                line += String(format: "   (roofline %.1f tokens/s at %.1f GB/s, %.0f%%)", r, bandwidth / 1e9, 100 * median / r)
            }
            print(line + suffix)
        }
        return .object([("test", .string(test)), ("threads", .int(threads)),
                        ("tokens_per_second", .double(median)), ("stddev", .double(sd)),
                        ("roofline_fraction", roofline.map { .double(median / $0) } ?? .null)])
    }
}

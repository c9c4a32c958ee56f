import Foundation
import Tiefsee

/// Log-probability of one generated token (OpenAI `logprobs.content[i]`).
public struct TokenLogprob: Sendable {
    public var token: String
    public var bytes: [UInt8]
    public var logprob: Double
    public var top: [(token: String, bytes: [UInt8], logprob: Double)]
}

public enum JobEvent: Sendable {
    /// Text that is now certain (never half a character, never part of a stop string), with the
    /// log-probabilities of the tokens produced since the previous event when they were asked for.
    case text(String, [TokenLogprob])
    case done(JobSummary)
}

public struct JobSummary: Sendable {
    public var finishReason: FinishReason
    public var promptTokens: Int
    public var completionTokens: Int
    public var error: String?
}

/// One request's generation, handed to the scheduler. Events are queued here by the decode
/// thread and taken by the connection's thread (`next`).
public final class GenerationJob: @unchecked Sendable {
    public let prompt: [Int]
    public let options: GenerationOptions
    /// nil: no log-probabilities; otherwise how many alternatives per token (0…20).
    public let topLogprobs: Int?
    let submitted = Date()

    private let cond = NSCondition()
    private var events: [JobEvent] = []
    private var cancelled = false

    public init(prompt: [Int], options: GenerationOptions, topLogprobs: Int? = nil) {
        self.prompt = prompt; self.options = options; self.topLogprobs = topLogprobs
    }

    /// The client went away: the scheduler drops the sequence before its next step.
    public func cancel() { cond.lock(); cancelled = true; cond.signal(); cond.unlock() }
    public var isCancelled: Bool { cond.lock(); defer { cond.unlock() }; return cancelled }

    func push(_ e: JobEvent) { cond.lock(); events.append(e); cond.signal(); cond.unlock() }

    /// Waits up to `timeout` seconds for events; returns those queued (possibly none).
    public func next(timeout: Double) -> [JobEvent] {
        cond.lock(); defer { cond.unlock() }
        if events.isEmpty && !cancelled { _ = cond.wait(until: Date(timeIntervalSinceNow: timeout)) }
        let e = events
        events = []
        return e
    }
}

public struct SchedulerFullError: Error, CustomStringConvertible {
    public let queued: Int
    public var description: String { "the server is busy: \(queued) requests are already waiting; retry shortly" }
}

/// Continuous batching: one decode thread owns the model. Each step it runs every active
/// sequence's next token (and chunks of prompts still being read) through one
/// `forwardBatch`, samples each with its own sampler, streams the text, and lets sequences join
/// and leave between steps. Each of the `parallel` slots has its own KV cache, allocated once.
public final class BatchScheduler: @unchecked Sendable {
    public let engine: Engine
    public let contextSize: Int
    public let parallel: Int
    public let maxQueue: Int
    public let metrics: ServerMetrics
    /// KV states kept beyond the slots (`--cache-ram`); nil: only the slots' own prefixes are reused.
    public let promptCache: PromptCache?
    /// Prompt tokens read per step across all sequences (bounds how long one step takes, so
    /// sequences already decoding keep streaming while a long prompt is read).
    public var prefillChunk = 256
    /// `--draft`: proposes tokens for greedy requests instead of prompt lookup.
    public let draftModel: DraftModel?
    /// `--mtp`: the model's multi-token-prediction layer proposes instead (MTPDrafting.swift).
    public let mtpDraft: MTPDraft?

    final class Slot {
        let cache: KVCache
        /// What the cache holds (reused as a prefix by the next request in this slot).
        var tokens: [Int] = []
        var busy = false
        /// The draft model's cache for this slot, made on first use.
        var draftState: DraftState?
        /// With --mtp: the MTP block's cache, attached to `cache` from the start (it records
        /// the hidden state of every position the slot computes).
        var mtpState: MTPState?
        init(cache: KVCache) { self.cache = cache }

        func drafter(_ draft: DraftModel?, mtp: MTPDraft?) -> any Drafter {
            if let mtp, let mtpState { return mtp.drafter(mtpState) }
            guard let draft else { return PromptLookup() }
            if draftState == nil { draftState = draft.makeState(contextSize: cache.capacity) }
            return draft.drafter(draftState!)
        }
    }

    final class Sequence {
        let job: GenerationJob
        let slot: Slot
        var sampler: Sampler
        var detok: StreamingDetokenizer
        var stops: StopStringMatcher
        /// Sampling under options.grammar (response_format, `grammar`, a forced tool call).
        let grammar: GrammarConstraint?
        var history: [Int]
        var promptDone: Int  // prompt tokens in the cache
        var generated = 0
        var lastToken = -1
        /// Greedy requests without a grammar or log-probabilities: prompt-lookup drafts, or
        /// the scheduler's draft model.
        var lookup: (any Drafter)?
        /// The draft fed with lastToken this step.
        var draft: [Int] = []
        var pendingLogprobs: [TokenLogprob] = []
        var firstTokenAt: Date?
        init(job: GenerationJob, slot: Slot, tokenizer: Tokenizer, outputs: Int, promptDone: Int, draft: DraftModel?, mtp: MTPDraft?) {
            self.job = job; self.slot = slot
            sampler = Sampler(job.options.sampling)
            detok = StreamingDetokenizer(tokenizer: tokenizer, skipSpecial: true)
            stops = StopStringMatcher(job.options.stop)
            grammar = job.options.grammar.map { GrammarConstraint(grammar: $0, trie: TokenTrie.shared(for: tokenizer, outputs: outputs)) }
            history = job.prompt
            self.promptDone = promptDone
            if Sequence.drafts(job, slot) { lookup = slot.drafter(draft, mtp: mtp) }
        }
        /// Greedy requests without a grammar or log-probabilities, on a cache that can take back
        /// a rejected draft.
        static func drafts(_ job: GenerationJob, _ slot: Slot) -> Bool {
            let o = job.options
            return o.promptLookup && o.sampling.temperature <= 0 && o.grammar == nil && job.topLogprobs == nil && slot.cache.takesDrafts
        }
        var prefilling: Bool { promptDone < job.prompt.count }
    }

    private let slots: [Slot]
    private let cond = NSCondition()
    private var pending: [GenerationJob] = []
    private var active: [Sequence] = []
    private var running = true
    private var thread: Thread?

    public init(engine: Engine, parallel: Int, contextSize: Int, maxQueue: Int, metrics: ServerMetrics,
                promptCache: PromptCache? = nil, draft: DraftModel? = nil, mtp: MTPDraft? = nil) {
        self.engine = engine
        draftModel = draft
        mtpDraft = mtp
        self.promptCache = promptCache
        self.parallel = max(1, parallel)
        self.contextSize = contextSize
        self.maxQueue = max(0, maxQueue)
        self.metrics = metrics
        slots = (0..<max(1, parallel)).map { _ in Slot(cache: engine.model.makeCache(capacity: contextSize)) }
        if let mtp { for s in slots { s.mtpState = mtp.makeState(for: s.cache) } }
        let t = Thread { [weak self] in self?.loop() }
        t.name = "tiefsee-decode"
        t.stackSize = 8 << 20
        thread = t
        t.start()
    }

    public func shutdown() {
        cond.lock(); running = false; cond.broadcast(); cond.unlock()
    }

    /// Queues a job, or throws when `maxQueue` jobs are already waiting for a slot.
    public func submit(_ job: GenerationJob) throws {
        cond.lock(); defer { cond.unlock() }
        let busy = slots.filter(\.busy).count
        if busy + pending.count >= parallel && pending.count >= maxQueue { throw SchedulerFullError(queued: pending.count) }
        pending.append(job)
        metrics.setQueue(depth: pending.count, busy: busy)
        cond.signal()
    }

    public var queueDepth: Int { cond.lock(); defer { cond.unlock() }; return pending.count }
    public var busySlots: Int { cond.lock(); defer { cond.unlock() }; return slots.filter(\.busy).count }

    private func loop() {
        while true {
            cond.lock()
            while running && pending.isEmpty && active.isEmpty { cond.wait() }
            if !running { cond.unlock(); return }
            admit()
            cond.unlock()
            // Drop sequences whose clients left.
            for s in active where s.job.isCancelled { finish(s, .cancelled) }
            guard !active.isEmpty else { continue }
            step()
        }
    }

    /// Moves waiting jobs into free slots, each to the free slot sharing the longest prefix.
    private func admit() {
        while !pending.isEmpty, slots.contains(where: { !$0.busy }) {
            let job = pending.removeFirst()
            if job.isCancelled {
                job.push(.done(JobSummary(finishReason: .cancelled, promptTokens: job.prompt.count, completionTokens: 0)))
                continue
            }
            var best: Slot? = nil
            var bestCommon = -1
            for s in slots where !s.busy {
                // At least the last two prompt tokens are recomputed: two or more rows take the
                // batch-independent matrix kernel, so a repeated request (same seed) gets
                // exactly the logits its first run got from the full prompt.
                var c = 0
                let n = min(s.tokens.count, job.prompt.count - 2)
                while c < n && s.tokens[c] == job.prompt[c] { c += 1 }
                c = s.cache.reusablePrefix(c)   // a cache that cannot rewind keeps all or nothing
                if c > bestCommon { bestCommon = c; best = s }
            }
            let slot = best!
            slot.busy = true
            // The positions this slot is about to forget go to the prompt cache first, and a
            // saved state sharing more of this prompt than the slot does replaces its content.
            if let pc = promptCache, slot.cache.canRewind {
                if slot.tokens.count - bestCommon >= pc.minTokens { pc.save(tokens: slot.tokens, from: slot.cache) }
                if let restored = pc.restore(prompt: job.prompt, limit: job.prompt.count - 2, atLeast: bestCommon, into: slot.cache) {
                    slot.tokens = restored
                    bestCommon = restored.count
                    slot.mtpState?.forgetHiddenStates()   // they were the slot's old content
                    metrics.addPromptCacheHit(tokens: restored.count)
                }
                metrics.setPromptCache(bytes: pc.bytes, entries: pc.count)
            }
            // A drafted request needs the hidden state of every position its MTP rows read:
            // recompute from the first one the slot no longer has.
            if let st = slot.mtpState {
                let drafting = Sequence.drafts(job, slot)
                st.prepare(drafting: drafting)
                if drafting { bestCommon = st.reusableMainPrefix(job.prompt, bestCommon) }
            }
            slot.cache.truncate(to: bestCommon)
            slot.tokens = Array(slot.tokens.prefix(bestCommon))
            active.append(Sequence(job: job, slot: slot, tokenizer: engine.tokenizer,
                                   outputs: engine.model.outputHead.outFeatures, promptDone: bestCommon, draft: draftModel, mtp: mtpDraft))
        }
        metrics.setQueue(depth: pending.count, busy: slots.filter(\.busy).count)
    }

    private func step() {
        var batch: [(tokens: [Int], cache: KVCache, lastK: Int)] = []
        var members: [(Sequence, Int)] = []  // sequence, prompt tokens fed this step (0 = decoding)
        var budget = prefillChunk
        // Drafted tokens are checked in this step, as extra rows of their sequence. They pay
        // when the step is bound by reading the weights: one sequence decoding alone (its row
        // kernel reads each weight once for up to `Linear.rowKernelMaxRows` rows, and a check of
        // several rows costs little more), or a step that reads a prompt chunk anyway. With
        // several sequences decoding, the weight read is already shared, and one sequence's
        // draft would turn the whole step from a decode step (row kernels) into a prompt-like one
        // (the matrix kernel, for every sequence's rows): measured with 4 streaming clients on
        // the default model, that step cost more than the accepted drafts saved (BENCHMARKS.md).
        let decoding = active.count { !$0.prefilling }
        let readsPrompt = active.contains { $0.prefilling && $0.job.prompt.count > $0.promptDone } && prefillChunk > 0
        let draftsPay = decoding == 1 || readsPrompt
        for s in active {
            if s.prefilling {
                let n = min(s.job.prompt.count - s.promptDone, budget)
                if n <= 0 { continue }
                budget -= n
                batch.append((Array(s.job.prompt[s.promptDone..<s.promptDone + n]), s.slot.cache, 1))
                members.append((s, n))
            } else {
                let room = min(s.job.options.maxTokens - s.generated, s.slot.cache.capacity - s.slot.cache.length - 1,
                               s.slot.cache.takeBackLimit - 1)
                // A draft model that fails (its context full) only means no draft this step.
                s.draft = draftsPay ? (try? s.lookup?.draft(s.history, limit: room)) ?? [] : []
                batch.append(([s.lastToken] + s.draft, s.slot.cache, 1 + s.draft.count))
                members.append((s, 0))
            }
        }
        guard !batch.isEmpty else { return }
        let t0 = Date()
        let logits: [FloatBuffer]
        do {
            logits = try engine.model.forwardBatch(batch)
        } catch {
            for (s, _) in members { finish(s, .stop, error: "\(error)") }
            return
        }
        var decoded = 0
        for (i, (s, n)) in members.enumerated() {
            if n > 0 {
                s.slot.tokens += batch[i].tokens
                s.promptDone += n
                metrics.addPromptTokens(n)
                if s.prefilling { continue }
            } else {
                s.slot.tokens.append(s.lastToken)
                decoded += 1
            }
            decoded += verify(s, logits[i])
        }
        metrics.recordStep(tokens: members.count, seconds: Date().timeIntervalSince(t0), decoded: decoded)
    }

    /// Samples from each row the step computed for `s`: one row, or the rows of lastToken and its
    /// draft, of which the prefix greedy decoding agrees with is kept (the cache is cut back past
    /// it). Returns how many drafted tokens were accepted.
    private func verify(_ s: Sequence, _ logits: FloatBuffer) -> Int {
        let vocab = engine.model.outputHead.outFeatures
        let draft = s.draft
        s.draft = []
        var good = 0
        for i in 0...draft.count {
            guard sampleNext(s, logits.p + i * vocab) else { break }   // finished (the cache is cut in finish)
            guard i < draft.count, s.lastToken == draft[i] else { break }
            s.slot.tokens.append(draft[i])
            good += 1
        }
        if !draft.isEmpty {
            s.lookup?.record(drafted: draft.count, accepted: good)
            metrics.addDrafts(draft.count, accepted: good)
            if s.slot.busy { s.slot.cache.truncate(to: s.slot.tokens.count) }
        }
        return good
    }

    /// Samples the token after `row` and streams it; false when the sequence finished.
    @discardableResult
    private func sampleNext(_ s: Sequence, _ row: UnsafeMutablePointer<Float>) -> Bool {
        let vocab = engine.model.outputHead.outFeatures
        let eog = engine.tokenizer.eogIDs
        let opts = s.job.options
        var raw: [Float]? = nil
        if s.job.topLogprobs != nil { raw = Array(UnsafeBufferPointer(start: row, count: vocab)) }
        var next: Int
        if let g = s.grammar {
            next = g.sample(&s.sampler, row, count: vocab, history: s.history) ?? -1
            g.accept(next)
        } else {
            next = s.sampler.sample(row, count: vocab, history: s.history)
        }
        if s.firstTokenAt == nil {
            s.firstTokenAt = Date()
            metrics.observeTTFT(s.firstTokenAt!.timeIntervalSince(s.job.submitted))
        }
        if next < 0 || (eog.contains(next) && !opts.ignoreEOS) { finish(s, .stop); return false }
        s.generated += 1
        s.history.append(next)
        metrics.addCompletionTokens(1)
        if let raw, let k = s.job.topLogprobs { s.pendingLogprobs.append(logprob(raw, next, k)) }
        let piece = s.stops.feed(s.detok.push(next))
        if !piece.isEmpty { s.job.push(.text(piece, s.pendingLogprobs)); s.pendingLogprobs = [] }
        if s.stops.stopped { finish(s, .stop); return false }
        if s.grammar?.mustEnd == true { finish(s, .stop); return false }
        if s.generated >= opts.maxTokens { finish(s, .length); return false }
        if s.slot.tokens.count >= s.slot.cache.capacity { finish(s, .length); return false }
        s.lastToken = next
        return true
    }

    private func logprob(_ raw: [Float], _ chosen: Int, _ k: Int) -> TokenLogprob {
        var mx = -Float.infinity
        for v in raw where v > mx { mx = v }
        var sum = 0.0
        for v in raw { sum += Double(expf(v - mx)) }
        let lse = Double(mx) + log(sum)
        let tok = engine.tokenizer
        func entry(_ id: Int) -> (String, [UInt8], Double) {
            let b = Array(tok.tokenBytes(id))
            return (String(decoding: b, as: UTF8.self), b, Double(raw[id]) - lse)
        }
        var top: [(token: String, bytes: [UInt8], logprob: Double)] = []
        if k > 0 {
            top = raw.withUnsafeBufferPointer { p in VectorOps.largest(p.baseAddress!, raw.count, k) }.map { entry($0.id) }.map { ($0.0, $0.1, $0.2) }
        }
        let e = entry(chosen)
        return TokenLogprob(token: e.0, bytes: e.1, logprob: e.2, top: top)
    }

    private func finish(_ s: Sequence, _ reason: FinishReason, error: String? = nil) {
        if reason != .cancelled {
            let tail = s.stops.feed(s.detok.finish()) + s.stops.flush()
            if !tail.isEmpty || !s.pendingLogprobs.isEmpty { s.job.push(.text(tail, s.pendingLogprobs)) }
        }
        s.job.push(.done(JobSummary(finishReason: reason, promptTokens: s.job.prompt.count,
                                    completionTokens: s.generated, error: error)))
        if reason == .cancelled { metrics.addCancelled() }
        // A sequence that never finished reading its prompt leaves the cache with what it holds.
        s.slot.cache.truncate(to: s.slot.tokens.count)
        cond.lock()
        s.slot.busy = false
        active.removeAll { $0 === s }
        metrics.setQueue(depth: pending.count, busy: slots.filter(\.busy).count)
        cond.unlock()
    }
}

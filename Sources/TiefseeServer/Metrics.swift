import Foundation

/// Counters for GET /metrics (Prometheus text exposition format 0.0.4).
public final class ServerMetrics: @unchecked Sendable {
    private let lock = NSLock()
    private var requests: [String: Int] = [:]  // "endpoint|status"
    private var promptTokens = 0
    private var completionTokens = 0
    private var cancelled = 0
    private var draftTokens = 0
    private var acceptedDraftTokens = 0
    private var promptCacheHits = 0
    private var promptCacheTokens = 0
    private var promptCacheBytes = 0
    private var promptCacheEntries = 0
    private var queueDepth = 0
    private var busySlots = 0
    public let slots: Int
    private var steps = 0
    /// Recent decode steps: (time, tokens generated) for the tokens/s gauge.
    private var recent: [(Date, Int)] = []
    static let ttftBuckets: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
    private var ttftCounts = [Int](repeating: 0, count: ServerMetrics.ttftBuckets.count)
    private var ttftSum = 0.0
    private var ttftCount = 0

    public init(slots: Int) { self.slots = slots }

    func countRequest(endpoint: String, status: Int) {
        lock.lock(); requests["\(endpoint)|\(status)", default: 0] += 1; lock.unlock()
    }
    func addPromptTokens(_ n: Int) { lock.lock(); promptTokens += n; lock.unlock() }
    func addCompletionTokens(_ n: Int) { lock.lock(); completionTokens += n; lock.unlock() }
    func addDrafts(_ drafted: Int, accepted: Int) { lock.lock(); draftTokens += drafted; acceptedDraftTokens += accepted; lock.unlock() }
    func addPromptCacheHit(tokens: Int) { lock.lock(); promptCacheHits += 1; promptCacheTokens += tokens; lock.unlock() }
    func setPromptCache(bytes: Int, entries: Int) { lock.lock(); promptCacheBytes = bytes; promptCacheEntries = entries; lock.unlock() }
    func addCancelled() { lock.lock(); cancelled += 1; lock.unlock() }
    func setQueue(depth: Int, busy: Int) { lock.lock(); queueDepth = depth; busySlots = busy; lock.unlock() }
    func recordStep(tokens: Int, seconds: Double, decoded: Int) {
        lock.lock()
        steps += 1
        let now = Date()
        recent.append((now, decoded))
        recent.removeAll { now.timeIntervalSince($0.0) > 10 }
        lock.unlock()
    }
    func observeTTFT(_ s: Double) {
        lock.lock()
        for (i, b) in ServerMetrics.ttftBuckets.enumerated() where s <= b { ttftCounts[i] += 1 }
        ttftSum += s; ttftCount += 1
        lock.unlock()
    }

    public var busy: Int { lock.lock(); defer { lock.unlock() }; return busySlots }

    /// One unlabelled Prometheus sample with its HELP and TYPE lines.
    static func sample<V>(_ name: String, _ help: String, _ type: String, _ value: V) -> String {
        "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
    }

    public func render() -> String {
        lock.lock(); defer { lock.unlock() }
        var o = ""
        o += "# HELP tiefsee_requests_total HTTP requests by endpoint and status.\n# TYPE tiefsee_requests_total counter\n"
        for k in requests.keys.sorted() {
            let p = k.split(separator: "|", maxSplits: 1)
            o += "tiefsee_requests_total{endpoint=\"\(p[0])\",status=\"\(p[1])\"} \(requests[k]!)\n"
        }
        o += ServerMetrics.sample("tiefsee_prompt_tokens_total", "Prompt tokens processed.", "counter", promptTokens)
        o += ServerMetrics.sample("tiefsee_draft_tokens_total", "Tokens proposed by prompt lookup, the draft model or the MTP layer.", "counter", draftTokens)
        o += ServerMetrics.sample("tiefsee_draft_tokens_accepted_total", "Proposed tokens the model agreed with.", "counter", acceptedDraftTokens)
        o += ServerMetrics.sample("tiefsee_prompt_cache_hits_total", "Requests that started from a state kept in RAM (--cache-ram).", "counter", promptCacheHits)
        o += ServerMetrics.sample("tiefsee_prompt_cache_tokens_total", "Prompt tokens restored from RAM instead of being read.", "counter", promptCacheTokens)
        o += ServerMetrics.sample("tiefsee_prompt_cache_bytes", "Bytes of KV states kept in RAM.", "gauge", promptCacheBytes)
        o += ServerMetrics.sample("tiefsee_prompt_cache_entries", "KV states kept in RAM.", "gauge", promptCacheEntries)
        o += ServerMetrics.sample("tiefsee_generated_tokens_total", "Tokens generated.", "counter", completionTokens)
        o += ServerMetrics.sample("tiefsee_cancelled_total", "Generations stopped because the client went away.", "counter", cancelled)
        o += ServerMetrics.sample("tiefsee_queue_depth", "Requests waiting for a slot.", "gauge", queueDepth)
        o += ServerMetrics.sample("tiefsee_slots_busy", "Sequences decoding now.", "gauge", busySlots)
        o += ServerMetrics.sample("tiefsee_slots_total", "KV cache slots (--parallel).", "gauge", slots)
        let now = Date()
        let window = recent.filter { now.timeIntervalSince($0.0) <= 10 }
        var tps = 0.0
        if let first = window.first, window.count > 1 {
            let span = now.timeIntervalSince(first.0)
            if span > 0 { tps = Double(window.dropFirst().reduce(0) { $0 + $1.1 }) / span }
        }
        o += ServerMetrics.sample("tiefsee_tokens_per_second", "Generated tokens per second over the last 10 s.", "gauge",
                                  String(format: "%.3f", tps))
        o += ServerMetrics.sample("tiefsee_decode_steps_total", "Batched decode steps.", "counter", steps)
        o += "# HELP tiefsee_time_to_first_token_seconds Time from request to first generated token.\n# TYPE tiefsee_time_to_first_token_seconds histogram\n"
        for (i, b) in ServerMetrics.ttftBuckets.enumerated() {
            o += "tiefsee_time_to_first_token_seconds_bucket{le=\"\(b)\"} \(ttftCounts[i])\n"
        }
        o += "tiefsee_time_to_first_token_seconds_bucket{le=\"+Inf\"} \(ttftCount)\n"
        o += "tiefsee_time_to_first_token_seconds_sum \(String(format: "%.6f", ttftSum))\n"
        o += "tiefsee_time_to_first_token_seconds_count \(ttftCount)\n"
        return o
    }
}

/// Speculative decoding's proposal side. A drafter guesses the next tokens cheaply; the target
/// model checks them all in one batched forward (Generator.swift, Scheduler.swift), keeps the
/// prefix its own greedy choice agrees with and rewinds its KV cache past the rest. Whatever
/// the drafter proposes, the text is the one plain greedy decoding writes: a drafter only
/// changes how many weight reads it takes.
public protocol Drafter {
    /// Up to `limit` tokens proposed to follow `history` (the prompt and what was generated);
    /// empty when there is nothing worth checking.
    mutating func draft(_ history: [Int], limit: Int) throws -> [Int]
    /// What the target did with the last draft: `accepted` of `drafted` tokens kept.
    mutating func record(drafted: Int, accepted: Int)
    var drafted: Int { get }
    var accepted: Int { get }
    var verifySteps: Int { get }
}

extension Drafter {
    public var acceptanceRate: Double { drafted > 0 ? Double(accepted) / Double(drafted) : 0 }
}

extension PromptLookup: Drafter {}

/// Counts shared by the drafters.
public struct DraftCounters: Sendable {
    public var drafted = 0
    public var accepted = 0
    public var verifySteps = 0
    public init() {}
    mutating func add(drafted d: Int, accepted a: Int) { drafted += d; accepted += a; verifySteps += 1 }
}

/// `--draft` (or `--mtp`) with prompt lookup in front: a match in the context is proposed first
/// (it costs nothing, and it is what quoting answers repeat); the draft model or MTP layer is
/// asked only when the context has none. Each check's outcome goes back to whichever drafter
/// proposed.
public struct LookupThenModel: Drafter {
    var lookup = PromptLookup()
    var model: any Drafter
    private var lastFromLookup = false
    private var counters = DraftCounters()
    public var drafted: Int { counters.drafted }
    public var accepted: Int { counters.accepted }
    public var verifySteps: Int { counters.verifySteps }

    public init(model: any Drafter) { self.model = model }

    public mutating func draft(_ history: [Int], limit: Int) throws -> [Int] {
        let d = lookup.draft(history, limit: limit)
        lastFromLookup = !d.isEmpty
        return lastFromLookup ? d : try model.draft(history, limit: limit)
    }

    public mutating func record(drafted d: Int, accepted a: Int) {
        counters.add(drafted: d, accepted: a)
        if lastFromLookup { lookup.record(drafted: d, accepted: a) } else { model.record(drafted: d, accepted: a) }
    }
}

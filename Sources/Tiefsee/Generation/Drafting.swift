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

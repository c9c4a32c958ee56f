import Foundation

/// How often each expert was chosen, per layer, while collection runs (and, optionally,
/// every token's decision). Obtain one from `TransformerModel.startRoutingStats`.
public final class RoutingStats: @unchecked Sendable {
    public let numLayers: Int
    public let numExperts: Int
    public let expertsPerToken: Int
    /// Whether each layer is sparse (dense layers have no counts and no decisions).
    public let sparseLayers: [Bool]
    public let keepDecisions: Bool
    private let lock = NSLock()
    private var _counts: [[Int]]
    private var _tokens: [Int]
    private var _decisions: [[ExpertChoice]]

    init(config: ModelConfig, keepDecisions: Bool) {
        numLayers = config.numLayers
        numExperts = config.moe?.numExperts ?? 0
        expertsPerToken = config.moe?.numExpertsPerToken ?? 0
        sparseLayers = (0..<config.numLayers).map { config.moe != nil && config.isMoELayer($0) }
        self.keepDecisions = keepDecisions
        _counts = sparseLayers.map { $0 ? [Int](repeating: 0, count: config.moe?.numExperts ?? 0) : [] }
        _tokens = [Int](repeating: 0, count: numLayers)
        _decisions = [[ExpertChoice]](repeating: [], count: numLayers)
    }

    func record(layer: Int, _ choices: [ExpertChoice]) {
        lock.lock(); defer { lock.unlock() }
        guard layer < numLayers else { return }
        _tokens[layer] += choices.count
        for c in choices { for e in c.experts where e < _counts[layer].count { _counts[layer][e] += 1 } }
        if keepDecisions { _decisions[layer] += choices }
    }

    /// Per layer: how many times each expert was chosen (empty for dense layers).
    public var counts: [[Int]] { lock.lock(); defer { lock.unlock() }; return _counts }
    /// Per layer: tokens routed.
    public var tokens: [Int] { lock.lock(); defer { lock.unlock() }; return _tokens }
    /// Per layer: each routed token's choice, in processing order (with `keepDecisions`).
    public var decisions: [[ExpertChoice]] { lock.lock(); defer { lock.unlock() }; return _decisions }

    public func reset() {
        lock.lock(); defer { lock.unlock() }
        _counts = _counts.map { [Int](repeating: 0, count: $0.count) }
        _tokens = _tokens.map { _ in 0 }
        _decisions = _decisions.map { _ in [] }
    }

    /// The human-readable summary `tiefsee run --show-experts` prints.
    public func report(parameters: ParameterCount? = nil) -> String {
        let counts = self.counts, tokens = self.tokens
        var lines = ["experts chosen per layer (\(expertsPerToken) of \(numExperts) experts per token):"]
        for l in 0..<numLayers {
            guard sparseLayers[l] else { lines.append("layer \(l): dense"); continue }
            let list = counts[l].enumerated().map { "\($0.offset):\($0.element)" }.joined(separator: " ")
            lines.append("layer \(l): \(list)  (sum \(counts[l].reduce(0, +)) = \(tokens[l]) tokens × \(expertsPerToken))")
        }
        if let p = parameters {
            let pct = p.total > 0 ? 100 * Double(p.activePerToken) / Double(p.total) : 0
            lines.append(String(format: "parameters: %@ of %@ active per token (%.1f%%)",
                                ParameterCount.format(p.activePerToken), ParameterCount.format(p.total), pct))
        }
        return lines.joined(separator: "\n")
    }
}

extension TransformerModel {
    /// The sparse feed-forward blocks (empty for dense models).
    public var moeBlocks: [MoEBlock] { layers.compactMap { $0.feedForward as? MoEBlock } }

    /// Starts collecting routing statistics on every MoE layer (replacing a running collection).
    @discardableResult
    public func startRoutingStats(keepDecisions: Bool = false) -> RoutingStats {
        let s = RoutingStats(config: config, keepDecisions: keepDecisions)
        for b in moeBlocks { b.observer = s }
        return s
    }

    public func stopRoutingStats() { for b in moeBlocks { b.observer = nil } }

    /// Runs `body` (a generation, a forward pass) while collecting routing statistics.
    public func withRoutingStats<R>(keepDecisions: Bool = false, _ body: () throws -> R) rethrows -> (R, RoutingStats) {
        let s = startRoutingStats(keepDecisions: keepDecisions)
        defer { stopRoutingStats() }
        return (try body(), s)
    }
}

import Foundation

/// Weights in a model, and how many of them one token touches (routed experts it was not sent
/// to are not read).
public struct ParameterCount: Equatable, Sendable {
    public var total: Int
    public var activePerToken: Int

    /// Counts the tensors of `weights` (skipping FP8 scales and layers past `numLayers`, such as
    /// DeepSeek-V3's multi-token-prediction layer, and DeepSeek-V4's `mtp.*` block).
    public static func of(config c: ModelConfig, weights: WeightSource) -> ParameterCount {
        var total = 0
        for name in weights.tensorNames where !name.hasSuffix("_scale_inv") && !name.hasPrefix("mtp.") {
            if let l = layerIndex(name), l >= c.numLayers { continue }
            total += weights.tensor(name)?.elementCount ?? 0
        }
        var idle = 0
        if let m = c.moe {
            let perExpert = 3 * c.hiddenSize * m.expertIntermediateSize
            for l in 0..<c.numLayers where c.isMoELayer(l) { idle += (m.numExperts - m.numExpertsPerToken) * perExpert }
        }
        return ParameterCount(total: total, activePerToken: max(0, total - idle))
    }

    public static func layerIndex(_ name: String) -> Int? {
        for prefix in ["model.layers.", "layers.", "blk."] where name.hasPrefix(prefix) {
            return Int(name.dropFirst(prefix.count).prefix { $0.isNumber })
        }
        return nil
    }

    /// "671B", "37B", "1.2M", "220K".
    public static func format(_ n: Int) -> String {
        let d = Double(n)
        for (unit, v) in [("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)] where d >= v {
            let x = d / v
            return x >= 10 ? String(format: "%.0f%@", x, unit) : String(format: "%.1f%@", x, unit)
        }
        return "\(n)"
    }
}

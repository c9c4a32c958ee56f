import Foundation
import CKernels

/// Sampling settings, with the meanings OpenAI's API and llama.cpp give them.
public struct SamplingParameters: Equatable, Sendable {
    /// 0 means greedy (argmax).
    public var temperature: Double = 0.7
    public var topK: Int = 40          // 0 = off
    public var topP: Double = 0.95     // 1 = off
    public var minP: Double = 0.05     // 0 = off
    /// CTRL-style: positive logits divided, negative multiplied (1 = off).
    public var repetitionPenalty: Double = 1.0
    /// OpenAI-style: subtract `presence` once and `frequency × count` per occurrence.
    public var presencePenalty: Double = 0
    public var frequencyPenalty: Double = 0
    /// How many recent tokens the penalties look at (0 = all).
    public var penaltyWindow: Int = 256
    public var seed: UInt64? = nil

    public init() {}
    public static var greedy: SamplingParameters { var p = SamplingParameters(); p.temperature = 0; return p }
}

/// xoshiro256** seeded through SplitMix64: small, fast, and the same sequence for a seed.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}

public struct Sampler {
    public let params: SamplingParameters
    var rng: SeededGenerator

    public init(_ params: SamplingParameters) {
        self.params = params
        rng = SeededGenerator(seed: params.seed ?? UInt64.random(in: 0...UInt64.max))
    }

    /// Index of the largest logit (first on ties, like torch.argmax).
    public static func argmax(_ logits: UnsafePointer<Float>, _ n: Int) -> Int {
        Int(tf_argmax(Int32(n), logits))
    }

    /// Picks the next token from one row of logits. `history` is the tokens so far (prompt +
    /// generated) for the penalties. The logits are modified in place.
    public mutating func sample(_ logits: UnsafeMutablePointer<Float>, count n: Int, history: [Int]) -> Int {
        applyPenalties(logits, n, history)
        if params.temperature <= 0 { return Sampler.argmax(logits, n) }
        let invT = Float(1 / params.temperature)
        if params.topK <= 0 || params.topK >= n { return sampleWholeVocabulary(logits, n, invT) }
        return sampleSorted(topK(logits, n, params.topK), invT)
    }

    /// Candidates sorted by logit, best first: min-p, then top-p keep a prefix; one draw.
    /// `wholeMass`: the mass top-p is a share of, when `cand` is only the head of the candidates.
    mutating func sampleSorted(_ cand: [(id: Int, logit: Float)], _ invT: Float, wholeMass: Double? = nil) -> Int {
        let maxL = cand[0].logit
        let probs = cand.map { Double(expf(($0.logit - maxL) * invT)) }
        var keep = probs.count
        // min-p: drop candidates below min_p × the best probability.
        if params.minP > 0 {
            let floor = params.minP * probs[0]
            while keep > 1 && probs[keep - 1] < floor { keep -= 1 }
        }
        var total = wholeMass ?? probs[..<keep].reduce(0, +)
        // top-p: the smallest prefix whose mass reaches top_p.
        if params.topP < 1 {
            var acc = 0.0
            for i in 0..<keep {
                acc += probs[i] / total
                if acc >= params.topP { keep = i + 1; break }
            }
            total = probs[..<keep].reduce(0, +)
        }
        var r = rng.unit() * total
        for i in 0..<keep {
            r -= probs[i]
            if r < 0 { return cand[i].id }
        }
        return cand[keep - 1].id
    }

    /// No top-k: every token is a candidate. Sorting a 150k vocabulary took longer than the
    /// model's forward pass, and only top-p needs an order: without it the draw walks the
    /// probabilities in token order (min-p just zeroes the small ones); with it, the k best are
    /// taken for growing k until their mass reaches top_p, and the draw is among those.
    mutating func sampleWholeVocabulary(_ logits: UnsafePointer<Float>, _ n: Int, _ invT: Float) -> Int {
        var maxL = -Float.infinity
        for i in 0..<n where logits[i] > maxL { maxL = logits[i] }
        let floor = Float(max(params.minP, 0))   // the best token's weight is 1
        var probs = [Double](repeating: 0, count: n)
        var total = 0.0
        for i in 0..<n {
            let w = expf((logits[i] - maxL) * invT)
            if w >= floor { probs[i] = Double(w); total += Double(w) }
        }
        if params.topP < 1 {
            var k = 64
            while true {
                let best = topK(logits, n, min(k, n)).filter { probs[$0.id] > 0 }
                let mass = best.reduce(0) { $0 + probs[$1.id] }
                if mass >= params.topP * total || k >= n || best.count < min(k, n) { return sampleSorted(best, invT, wholeMass: total) }
                k *= 4
            }
        }
        var r = rng.unit() * total
        var last = 0
        for i in 0..<n where probs[i] > 0 {
            r -= probs[i]
            if r < 0 { return i }
            last = i
        }
        return last
    }

    func applyPenalties(_ logits: UnsafeMutablePointer<Float>, _ n: Int, _ history: [Int]) {
        let p = params
        guard p.repetitionPenalty != 1 || p.presencePenalty != 0 || p.frequencyPenalty != 0, !history.isEmpty else { return }
        let window = p.penaltyWindow > 0 ? history.suffix(p.penaltyWindow) : history[...]
        var counts: [Int: Int] = [:]
        for t in window where t >= 0 && t < n { counts[t, default: 0] += 1 }
        let rp = Float(p.repetitionPenalty)
        for (t, c) in counts {
            var l = logits[t]
            if rp != 1 { l = l > 0 ? l / rp : l * rp }
            l -= Float(p.presencePenalty) + Float(p.frequencyPenalty) * Float(c)
            logits[t] = l
        }
    }

    /// The k largest logits, sorted descending.
    func topK(_ logits: UnsafePointer<Float>, _ n: Int, _ k: Int) -> [(id: Int, logit: Float)] {
        VectorOps.largest(logits, n, k).map { ($0.id, $0.value) }
    }
}

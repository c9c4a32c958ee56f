import Foundation

/// Rotary position embeddings with the scaling variants transformers implements
/// (modeling_rope_utils): default, linear, llama3, yarn. The inverse frequencies are computed
/// once; cos/sin come from f32 angles like the reference, scaled by `attentionScaling` (YaRN).
public struct Rope: Sendable {
    public let dim: Int
    public let layout: RopeLayout
    public let invFreq: [Float]
    /// Multiplies cos and sin (YaRN's attention factor; 1 otherwise).
    public let attentionScaling: Float

    public init(dim: Int, theta: Double, scaling: RopeScaling, layout: RopeLayout, maxPositionEmbeddings: Int,
                freqFactors: [Float]? = nil) {
        self.dim = dim
        self.layout = layout
        let half = dim / 2
        // Exponents in f32 as torch does, then the power in double.
        let base = (0..<half).map { i -> Double in pow(theta, Double(Float(2 * i) / Float(dim))) }
        var inv = base.map { 1 / $0 }
        var scale = 1.0
        switch scaling.kind {
        case .none, .dynamic:
            break
        case .linear:
            inv = inv.map { $0 / scaling.factor }
        case .llama3:
            let old = Double(scaling.originalMaxPositionEmbeddings ?? 8192)
            let lowWave = old / scaling.lowFreqFactor
            let highWave = old / scaling.highFreqFactor
            inv = inv.map { f in
                let wave = 2 * Double.pi / f
                if wave > lowWave { return f / scaling.factor }  // long wavelengths: interpolate
                if wave < highWave { return f }                   // short wavelengths: keep
                let smooth = (old / wave - scaling.lowFreqFactor) / (scaling.highFreqFactor - scaling.lowFreqFactor)
                return (1 - smooth) * f / scaling.factor + smooth * f
            }
        case .yarn:
            // YaRN is split over three places that must agree: here (the frequency ramp and the
            // cos/sin factor mscale(factor, mscale) / mscale(factor, mscale_all_dim), which is 1 for
            // DeepSeek's equal pair), MultiHeadLatentAttention.softmaxScale in DeepSeek.swift
            // (DeepSeek puts mscale(factor, mscale_all_dim)² into the softmax temperature instead),
            // and ModelConfig's GGUF reader, which recovers mscale_all_dim from llama.cpp's
            // rope.scaling.yarn_log_multiplier (= 0.1 × mscale_all_dim).
            let factor = scaling.factor
            let orig = Double(scaling.originalMaxPositionEmbeddings ?? maxPositionEmbeddings)
            func mscale(_ s: Double, _ m: Double = 1) -> Double { s <= 1 ? 1 : 0.1 * m * log(s) + 1 }
            if let a = scaling.attentionFactor {
                scale = a
            } else if let m = scaling.mscale, let mAll = scaling.mscaleAllDim, m != 0, mAll != 0 {
                scale = mscale(factor, m) / mscale(factor, mAll)
            } else {
                scale = mscale(factor)
            }
            func correctionDim(_ rotations: Double) -> Double {
                Double(dim) * log(orig / (rotations * 2 * Double.pi)) / (2 * log(theta))
            }
            var low = correctionDim(scaling.betaFast), high = correctionDim(scaling.betaSlow)
            if scaling.truncate { low = floor(low); high = ceil(high) }
            low = max(low, 0); high = min(high, Double(dim - 1))
            if low == high { high += 0.001 }
            inv = (0..<half).map { i in
                let ramp = min(max((Double(i) - low) / (high - low), 0), 1)
                let extrapolationWeight = 1 - ramp
                let fExtra = 1 / base[i], fInter = 1 / (factor * base[i])
                return fInter * (1 - extrapolationWeight) + fExtra * extrapolationWeight
            }
        }
        if let ff = freqFactors, ff.count == half {
            // GGUF llama3 models carry the per-frequency divisors as `rope_freqs.weight`.
            inv = zip(inv, ff).map { $0 / Double($1) }
        }
        invFreq = inv.map { Float($0) }
        attentionScaling = Float(scale)
    }

    public init(config c: ModelConfig, freqFactors: [Float]? = nil) {
        self.init(dim: c.ropeDim, theta: c.ropeTheta, scaling: c.ropeScaling, layout: c.ropeLayout,
                  maxPositionEmbeddings: c.maxPositionEmbeddings, freqFactors: freqFactors)
    }

    /// cos/sin for one position, `dim/2` each.
    public func table(position: Int, cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
        let p = Float(position)
        for i in 0..<dim / 2 {
            let angle = Double(p * invFreq[i])
            cos[i] = Float(Foundation.cos(angle)) * attentionScaling
            sin[i] = Float(Foundation.sin(angle)) * attentionScaling
        }
    }

    /// Rotates the first `dim` values of `nHeads` consecutive heads of width `headStride`.
    public func apply(_ x: UnsafeMutablePointer<Float>, nHeads: Int, headStride: Int,
                      cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let half = dim / 2
        for h in 0..<nHeads {
            let v = x + h * headStride
            switch layout {
            case .halves:
                for i in 0..<half {
                    let a = v[i], b = v[i + half]
                    v[i] = a * cos[i] - b * sin[i]
                    v[i + half] = b * cos[i] + a * sin[i]
                }
            case .adjacentPairs:
                for i in 0..<half {
                    let a = v[2 * i], b = v[2 * i + 1]
                    v[2 * i] = a * cos[i] - b * sin[i]
                    v[2 * i + 1] = b * cos[i] + a * sin[i]
                }
            }
        }
    }
}

import Foundation
import XCTest
@testable import Tiefsee

/// The router as a pure function of (logits, bias, config), one row per family's rule. The
/// expected experts and weights are worked out by hand from the rule (comments show how), not
/// by running the code under test; each case is built so that a neighbouring rule would choose
/// differently.
final class RouterTableTests: XCTestCase {
    struct Case {
        let name: String
        let config: MoEConfig
        let logits: [Float]
        var bias: [Float]? = nil
        var hash: (table: [Int32], token: Int)? = nil
        let experts: [Int]
        let weights: [Float]
    }

    static func moe(_ e: Int, _ k: Int, _ scoring: MoEConfig.Scoring = .softmax, _ method: MoEConfig.TopKMethod = .greedy,
                    norm: Bool = false, scale: Double = 1, groups: (Int, Int) = (1, 1)) -> MoEConfig {
        var m = MoEConfig(numExperts: e, numExpertsPerToken: k, expertIntermediateSize: 4)
        m.scoring = scoring; m.topKMethod = method; m.normTopKProb = norm; m.routedScalingFactor = scale
        m.nGroup = groups.0; m.topKGroup = groups.1
        return m
    }

    static let ln: (Float) -> Float = { logf($0) }

    static let cases: [Case] = [
        // Mixtral: softmax, top-2, renormalised: the weights are softmax over the two chosen
        // logits (3, 2) = e/(e+1), 1/(e+1).
        Case(name: "mixtral", config: moe(4, 2, norm: true), logits: [1, 3, 2, 0],
             experts: [1, 2], weights: [0.7310586, 0.2689414]),
        // Qwen2-MoE without norm_topk_prob: softmax probabilities 1/8, 2/8, 4/8, 1/8 as they are.
        Case(name: "qwen2-moe", config: moe(4, 2), logits: [0, ln(2), ln(4), 0],
             experts: [2, 1], weights: [0.5, 0.25]),
        // DeepSeek-V2 group_limited_greedy: scores ∝ 1,8 | 6,6 | 7,0.5 | 2,2 (sum 32.5); group
        // best = 8, 6, 7, 2 → groups 0 and 2 kept → experts 1 (8), 4 (7), 0 (1); plain greedy
        // would take 2 (6) third. Weights = score × routed_scaling_factor 2.
        Case(name: "deepseek-v2 groups", config: moe(8, 3, .softmax, .groupLimitedGreedy, scale: 2, groups: (4, 2)),
             logits: [1, 8, 6, 6, 7, 0.5, 2, 2].map(ln),
             experts: [1, 4, 0], weights: [0.4923077, 0.4307692, 0.0615385]),
        // DeepSeek-V2 greedy: the same logits without groups.
        Case(name: "deepseek-v2 greedy", config: moe(8, 3, scale: 2), logits: [1, 8, 6, 6, 7, 0.5, 2, 2].map(ln),
             experts: [1, 4, 2], weights: [0.4923077, 0.4307692, 0.3692308]),
        // DeepSeek-V3 noaux_tc: sigmoid scores 0.5 except expert 2 (logit ln 3 → 0.75); selection
        // adds the bias: 0.95, 0.5 | 1.05, 0.75 | 1.0, 0.2 | 0.55, 0.5. Group score = sum of the
        // two best: 1.45, 1.8, 1.2, 1.05 → groups 1 and 0 → experts 2, 0, 3 (ungrouped it would be
        // 2, 4, 0). Weights from the unbiased scores 0.75, 0.5, 0.5, normalised, × 2.5.
        Case(name: "deepseek-v3 noaux_tc", config: moe(8, 3, .sigmoid, .noauxTC, norm: true, scale: 2.5, groups: (4, 2)),
             logits: [0, 0, ln(3), 0, 0, 0, 0, 0], bias: [0.45, 0, 0.3, 0.25, 0.5, -0.3, 0.05, 0],
             experts: [2, 0, 3], weights: [1.0714286, 0.7142857, 0.7142857]),
        // DeepSeek-V4: sqrt(softplus) scores √ln2, √ln(1+e), √ln(1+1/e), √ln(1+e²) =
        // 0.8326, 1.1460, 0.5597, 1.4584; the bias lifts expert 2 into the top 2; weights from the
        // unbiased scores of 2 and 3, normalised, × 1.5.
        Case(name: "deepseek-v4 sqrtsoftplus", config: moe(4, 2, .sqrtSoftplus, norm: true, scale: 1.5),
             logits: [0, 1, -1, 2], bias: [0, 0, 1, 0],
             experts: [2, 3], weights: [0.4160091, 1.0839909]),
        // DeepSeek-V4 hash layer: token 1's row of tid2eid picks experts 0 and 2 whatever the
        // scores say; the weights are still their normalised scores (√ln2, √ln(1+1/e)) × 1.5.
        Case(name: "deepseek-v4 hash", config: moe(4, 2, .sqrtSoftplus, norm: true, scale: 1.5),
             logits: [0, 1, -1, 2], hash: ([3, 1, 0, 2], 1),
             experts: [0, 2], weights: [0.8969867, 0.6030133]),
    ]

    func testEachFamilysRule() {
        for c in Self.cases {
            let got = c.logits.withUnsafeBufferPointer {
                ExpertRouter.route(logits: $0, config: c.config, bias: c.bias, tokenExperts: c.hash)
            }
            XCTAssertEqual(got.experts, c.experts, c.name)
            assertClose(got.weights, c.weights, tolerance: 2e-6, c.name)
        }
    }

    /// The router method on a loaded model is the same function: the DeepSeek-V3 fixture's
    /// router, fed its own logits, agrees with the pure function given its bias and config.
    func testRouterMethodIsThePureFunction() throws {
        let model = try MoETests.load("deepseek-v3")
        let block = try XCTUnwrap(model.moeBlocks.first)
        let r = block.router
        var rng = SplitMix(seed: 7)
        for _ in 0..<20 {
            let logits = (0..<r.config.numExperts).map { _ in Float(Int(rng.next() % 2001) - 1000) / 250 }
            let a = logits.withUnsafeBufferPointer { r.route(logits: $0.baseAddress!) }
            let b = logits.withUnsafeBufferPointer { ExpertRouter.route(logits: $0, config: r.config, bias: r.selectionBias) }
            XCTAssertEqual(a, b)
        }
    }
}

/// The fused MoE block (tokens grouped by expert, one pass per group of experts, shared expert
/// fused or separate) against its token-by-token reference, on fixtures with each kind of shared
/// expert, for a decode-sized batch and for one past the fused-shared limit.
final class MoEFusedReferenceTests: XCTestCase {
    func check(_ name: String) throws {
        let model = try MoETests.load(name)
        let block = try XCTUnwrap(model.moeBlocks.first, name)
        let H = block.hiddenSize
        var rng = SplitMix(seed: 11)
        for T in [1, 5, MoEBlock.maxTokensSharedFused + 9] {
            let x = (0..<(T * H)).map { _ in Float(Int(rng.next() % 2001) - 1000) / 1000 }
            let fused = FloatBuffer(count: T * H, zeroed: true), ref = FloatBuffer(count: T * H, zeroed: true)
            x.withUnsafeBufferPointer {
                block.forward($0.baseAddress!, count: T, out: fused.p)
                block.forwardReference($0.baseAddress!, count: T, out: ref.p)
            }
            let expected = Array(UnsafeBufferPointer(start: ref.p, count: T * H))
            XCTAssertGreaterThan(expected.map(abs).max()!, 1e-3, "\(name): the reference must not be all zeros")
            assertClose(fused.p, expected, tolerance: 1e-5, "\(name) T=\(T)")
        }
    }

    func testDeepSeekV3SharedExperts() throws { try check("deepseek-v3") }
    func testQwen2MoEGatedSharedExpert() throws { try check("qwen2-moe") }
    func testMixtralNoSharedExpert() throws { try check("mixtral") }
}

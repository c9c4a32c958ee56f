import Foundation
import XCTest
@testable import Tiefsee

/// The default model against transformers running the same GGUF dequantized to f32
/// (fixtures/real, scripts/gen_real_model_fixtures.py). Tiefsee keeps the weights quantized
/// and quantizes activations to 8 bits, so agreement is statistical, not bit-exact.
final class RealModelTests: XCTestCase {
    static var engine: Engine?
    static var reference: JSONValue?

    func setUpEngine() throws -> (Engine, JSONValue) {
        let path = try requireDefaultModel()
        if RealModelTests.engine == nil {
            RealModelTests.engine = try Engine.load(path)
            RealModelTests.reference = try JSONValue.parse(contentsOf: fixturePath("real/qwen2.5-coder-0.5b-reference.json"))
        }
        return (RealModelTests.engine!, RealModelTests.reference!)
    }

    /// A decode step of up to `Linear.rowKernelMaxRows` sequences (4; one token each,
    /// `Linear.decodeStep`: the row kernels for several rows) gives
    /// every sequence bit-identical logits to decoding it alone, on the real Q4_K_M/Q6_K/Q8_0
    /// file; a larger step takes the packed kernel (its float order differs: a few tenths of a
    /// logit over 24 layers) and keeps the argmax.
    func testBatchedDecodeMatchesDecodingAlone() throws {
        let (engine, _) = try setUpEngine()
        let model = engine.model
        let prompts: [[Int]] = [[9707, 11, 1879, 0], [785, 6722, 315], [40, 1079, 264, 5458, 13], [3838, 374], [1986, 2038, 374]]
        let next = [374, 3283, 1079, 279, 1667]
        func prefilled(_ p: [Int]) throws -> KVCache {
            let c = model.makeCache(capacity: 32)
            _ = try model.forward(p, cache: c)
            return c
        }
        var alone = [[Float]]()
        for (p, t) in zip(prompts, next) {
            let c = try prefilled(p)
            alone.append(try model.forward([t], cache: c).array)
        }
        for B in 2...5 {
            let caches = try prompts[0..<B].map(prefilled)
            let out = try model.forwardBatch((0..<B).map { ([next[$0]], caches[$0], 1) })
            for i in 0..<B {
                let got = out[i].array
                if B <= Linear.rowKernelMaxRows {
                    XCTAssertEqual(got, alone[i], "batch of \(B), sequence \(i): logits differ from decoding it alone")
                } else {
                    let d = zip(got, alone[i]).map { abs($0 - $1) }.max()!
                    XCTAssertLessThan(d, 0.5, "batch of \(B) (packed kernel: other float order), sequence \(i)")
                    XCTAssertEqual(got.firstIndex(of: got.max()!), alone[i].firstIndex(of: alone[i].max()!))
                }
            }
        }
    }

    func testTeacherForcedPassageAgreesWithTransformers() throws {
        let (engine, ref) = try setUpEngine()
        let passage = ref["passage"]!
        let ids = passage["ids"]!.array!.map { $0.int! }
        XCTAssertGreaterThanOrEqual(ids.count, 200)
        let V = engine.model.outputHead.outFeatures
        let cache = engine.model.makeCache(capacity: ids.count)
        let logits = try engine.model.forward(ids, cache: cache, lastK: ids.count)
        var agree = 0, clear = 0, clearAgree = 0
        var klSum = 0.0
        let tops = passage["top"]!.array!
        for t in 0..<ids.count {
            let row = logits.p + t * V
            // log-softmax of our row
            var m = row[0]
            for i in 1..<V where row[i] > m { m = row[i] }
            var s = 0.0
            for i in 0..<V { s += exp(Double(row[i] - m)) }
            let lse = Double(m) + log(s)
            let top = tops[t].array!.map { ($0[0]!.int!, $0[1]!.double!) }
            // 8-bit activations move logits by ~1e-2: where the reference's best two tokens are
            // that close, the pick is a coin toss that any change of float order can flip; where
            // they are clearly apart, ours must pick the same.
            let margin = top[0].1 - top[1].1
            if margin >= 0.05 { clear += 1 }
            if Sampler.argmax(row, V) == top[0].0 { agree += 1; if margin >= 0.05 { clearAgree += 1 } } else {
                print(String(format: "  position %d differs: reference top-1/top-2 margin %.4f nats", t, margin))
            }
            // KL(ref ‖ ours) over the reference's top-N tokens plus one bucket for the rest.
            var kl = 0.0, pRefTop = 0.0, pOursTop = 0.0
            for (id, lpRef) in top {
                let lpOurs = Double(row[id]) - lse
                let pRef = exp(lpRef)
                kl += pRef * (lpRef - lpOurs)
                pRefTop += pRef; pOursTop += exp(lpOurs)
            }
            let restRef = max(1 - pRefTop, 1e-12), restOurs = max(1 - pOursTop, 1e-12)
            kl += restRef * log(restRef / restOurs)
            klSum += kl
        }
        let agreement = Double(agree) / Double(ids.count)
        let meanKL = klSum / Double(ids.count)
        print(String(format: "real model passage: %d tokens, argmax agreement %.2f%%, mean KL %.5f nats", ids.count, agreement * 100, meanKL))
        print("real model passage: \(clearAgree) of \(clear) positions with a reference margin >= 0.05 nats agree")
        XCTAssertEqual(clearAgree, clear, "every clear reference choice is ours too")
        XCTAssertGreaterThanOrEqual(agreement, 0.97)
        XCTAssertLessThanOrEqual(meanKL, 0.001)
        // Last position: the same top-5 tokens in the same order.
        let last = logits.p + (ids.count - 1) * V
        let ours5 = (0..<V).sorted { last[$0] > last[$1] }.prefix(5)
        let ref5 = tops.last!.array!.prefix(5).map { $0[0]!.int! }
        XCTAssertEqual(Array(ours5), ref5)
    }

    func testGreedyChatAnswersMatchReference() throws {
        let (engine, ref) = try setUpEngine()
        var matches = 0
        for chat in ref["chats"]!.array! {
            let messages = chat["messages"]!.array!
            // Our template + tokenizer must give transformers' prompt ids.
            let prompt = try engine.renderChat(messages)
            XCTAssertEqual(prompt, chat["prompt"]!.string!)
            let promptIDs = chat["prompt_ids"]!.array!.map { $0.int! }
            XCTAssertEqual(engine.encodePrompt(prompt), promptIDs)
            let expected = chat["greedy"]!.array!.map { $0.int! }
            let session = Session(engine: engine, contextSize: 512)
            var opts = GenerationOptions()
            opts.sampling = .greedy
            opts.maxTokens = expected.count
            let r = try session.generate(prompt: promptIDs, options: opts)
            let n = min(32, expected.count)
            let ok = Array(r.tokens.prefix(n)) == Array(expected.prefix(n))
                || (r.finishReason == .stop && expected.starts(with: r.tokens) && engine.tokenizer.eogIDs.contains(expected[r.tokens.count]))
            if ok { matches += 1 }
            print("chat \(ok ? "matches" : "differs"): \(r.text.debugDescription)")
        }
        XCTAssertGreaterThanOrEqual(matches, 2, "at least 2 of 3 greedy answers must match the reference's first 32 tokens")
    }
}

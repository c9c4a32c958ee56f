import XCTest
@testable import Tiefsee

/// MLA's two dense attention loops (per head and row, and sharedRowAttention) give the same logits.
final class MLASharedRowTests: XCTestCase {
    func compareLoops(_ model: TransformerModel, _ seq: [Int]) throws -> Float {
        let V = model.config.vocabSize
        let saved = MultiHeadLatentAttention.sharedRowsFrom
        defer { MultiHeadLatentAttention.sharedRowsFrom = saved }
        MultiHeadLatentAttention.sharedRowsFrom = Int.max
        func run() throws -> [Float] {
            let cache = model.makeCache(capacity: 256)
            let l = try model.forward(seq, cache: cache, lastK: seq.count)
            var out = Array(UnsafeBufferPointer(start: l.p, count: seq.count * V))
            for t in [5, 9, 11] { let d = try model.forward([t], cache: cache); out += Array(UnsafeBufferPointer(start: d.p, count: V)) }
            return out
        }
        let a = try run()
        MultiHeadLatentAttention.sharedRowsFrom = 1
        let b = try run()
        var worst: Float = 0
        for i in a.indices { worst = max(worst, abs(a[i] - b[i])) }
        return worst
    }

    func testSharedRowLoopMatchesPerHeadLoop() throws {
        let model = try MoETests.load("deepseek-v2-lite")
        let d = try compareLoops(model, Array(3..<40))
        print("MLA shared-row vs per-head attention, deepseek-v2-lite fixture: logits max abs diff \(d)")
        XCTAssertLessThanOrEqual(d, 1e-4)
        let low = try ModelLoader.load(ModelFiles.open(.gguf(fixturePath("gguf/lowbit-mixed.gguf"))))
        let d2 = try compareLoops(low, Array(3..<27))
        print("MLA shared-row vs per-head attention, lowbit-mixed.gguf: logits max abs diff \(d2)")
        XCTAssertLessThanOrEqual(d2, 1e-3)
        let saved = Linear.exactActivations
        Linear.exactActivations = true
        defer { Linear.exactActivations = saved }
        let d3 = try compareLoops(low, Array(3..<27))
        print("MLA shared-row vs per-head attention, lowbit-mixed.gguf, dequantized weights: logits max abs diff \(d3)")
        XCTAssertLessThanOrEqual(d3, 1e-3)
    }
}

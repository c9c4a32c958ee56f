import XCTest
@testable import Tiefsee

/// Resident expert copies and paging hints change where expert weights are read from, never
/// what is computed.
final class ExpertResidencyTests: XCTestCase {
    /// Logits of a prompt and 40 greedy steps (every position's row).
    func run(_ model: TransformerModel, prompt: [Int], steps: Int) throws -> [[Float]] {
        let V = model.config.vocabSize
        let cache = model.makeCache(capacity: prompt.count + steps)
        var logits = try model.forward(prompt, cache: cache)
        var rows = [logits.array]
        for _ in 0..<steps {
            logits = try model.forward([Sampler.argmax(logits.p, V)], cache: cache)
            rows.append(logits.array)
        }
        return rows
    }

    func testResidentCopiesGiveIdenticalLogits() throws {
        for name in ["deepseek-v3", "qwen2-moe"] {
            let model = try MoETests.load(name)
            let prompt = try MoETests.expected(name).prompt
            let plain = try run(model, prompt: prompt, steps: 40)
            // Room for a third of one layer's experts (locked pages round up to whole pages): experts
            // are made resident, evicted and reused, as locked file pages and as copies.
            let block = try XCTUnwrap(model.moeBlocks.first)
            let perExpert = [block.experts[0].gate, block.experts[0].up, block.experts[0].down].reduce(0) { $0 + $1.weight.byteCount }
            defer { model.configureExpertResidency(nil) }
            for lock in [true, false] {
                let residency = try XCTUnwrap(model.configureExpertResidency(
                    ExpertResidencyOptions(cacheBytes: perExpert * block.experts.count / 3 + 3 * 8192, lockInPlace: lock)))
                let cached = try run(model, prompt: prompt, steps: 40)
                XCTAssertEqual(cached, plain, "\(name): logits with resident experts (\(lock ? "locked" : "copies"))")
                XCTAssertGreaterThan(residency.admissions, 0)
                XCTAssertGreaterThan(residency.hits, 0)
                XCTAssertLessThanOrEqual(residency.bytesResident, residency.options.cacheBytes)
            }
            // Hints only (no copies): the same again.
            model.configureExpertResidency(ExpertResidencyOptions(cacheBytes: 0))
            XCTAssertEqual(try run(model, prompt: prompt, steps: 40), plain, "\(name): logits with paging hints")
        }
    }

    func testDenseModelsHaveNoResidency() throws {
        let dense = try ModelLoader.load(ModelFiles.open(.hfFolder(fixturePath("models/qwen2-bias-tied"))))
        XCTAssertTrue(dense.moeBlocks.isEmpty)
        XCTAssertNil(dense.configureExpertResidency(ExpertResidencyOptions()), "a dense model has no experts to keep resident")
    }

    func testResidencyCanBeTurnedOffAgain() throws {
        let model = try MoETests.load("deepseek-v3")
        XCTAssertNotNil(model.configureExpertResidency(ExpertResidencyOptions()))
        XCTAssertTrue(model.moeBlocks.allSatisfy { $0.residency != nil })
        XCTAssertNil(model.configureExpertResidency(nil))
        XCTAssertTrue(model.moeBlocks.allSatisfy { $0.residency == nil })
    }
}

import XCTest
@testable import Tiefsee

/// Kimi-K2's tokenizer format (tiktoken.model + tokenizer_config.json) against the tiktoken
/// package with Kimi's pattern (scripts/gen_tiktoken_fixture.py: 20,000 real byte-level BPE
/// ranks, 12 specials, 25 texts in many scripts).
final class TiktokenTests: XCTestCase {
    struct Case { let text: String; let ids: [Int]; let plain: [Int] }

    func load() throws -> (Tokenizer, [Case]) {
        let dir = fixturePath("tokenizers/kimi-tiktoken")
        let j = try JSONValue.parse(contentsOf: dir + "/expected.json")
        XCTAssertEqual(j["format"]?.int, 1, "fixture format")
        let cases = j["cases"]!.array!.map { c in
            Case(text: c["text"]!.string!, ids: c["ids"]!.array!.map { $0.int! }, plain: c["ids_plain"]!.array!.map { $0.int! })
        }
        return (try Tokenizer.load(modelFolder: dir), cases)
    }

    func testIdsMatchTiktoken() throws {
        let (tok, cases) = try load()
        XCTAssertEqual(cases.count, 25)
        for c in cases {
            XCTAssertEqual(tok.encode(c.text, parseSpecial: true), c.ids, c.text)
            XCTAssertEqual(tok.encode(c.text, parseSpecial: false), c.plain, c.text)
            XCTAssertEqual(tok.decode(c.ids), c.text, "round trip")
        }
    }

    func testSpecialsAndHanSplit() throws {
        let (tok, _) = try load()
        XCTAssertEqual(tok.vocabSize, 20012)
        XCTAssertEqual(tok.bosID, 20000)
        XCTAssertEqual(tok.eosID, 20001)
        XCTAssertEqual(tok.eotID, 20002)
        XCTAssertTrue(tok.eogIDs.contains(20002))
        XCTAssertFalse(tok.addsBOS)
        // Han runs are their own pre-tokens: no token spans "文" and "E".
        let ids = tok.encode("中文English")
        let pieces = ids.map { tok.decode([$0]) }
        XCTAssertEqual(pieces.joined(), "中文English")
        XCTAssertFalse(pieces.contains { $0.contains("文E") })
    }

    func testBadFilesAreClearErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tiktoken-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (body, says) in [("QQ== 0\nnot-a-line\n", "line 2"), ("QQ== 0\n", "byte 0 has no token"), ("", "no tokens")] {
            try body.write(toFile: dir + "/tiktoken.model", atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try Tokenizer.load(modelFolder: dir)) { XCTAssertTrue("\($0)".contains(says), "\($0)") }
        }
    }
}

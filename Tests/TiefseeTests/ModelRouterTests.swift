import Foundation
import XCTest
@testable import Tiefsee
@testable import TiefseeServer

/// `serve --models-dir`: every model in a folder listed, loaded on demand by a request's
/// `model`, least recently used unloaded past --models-max, too-large models refused clearly.
final class ModelRouterTests: XCTestCase {
    func makeFolder() throws -> String {
        let dir = NSTemporaryDirectory() + "tiefsee-models-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/tiny-r1", withDestinationPath: try ReasoningFixture.make())
        try FileManager.default.createSymbolicLink(atPath: dir + "/coder.gguf", withDestinationPath: try requireDefaultModel())
        try "not a model".write(toFile: dir + "/notes.txt", atomically: true, encoding: .utf8)
        return dir
    }

    func router(_ dir: String, budget: Int? = nil) throws -> ModelRouter {
        var cfg = TestServers.baseConfig
        cfg.parallel = 1
        cfg.contextSize = 256
        return try ModelRouter(directory: dir, config: cfg, maxLoaded: 1, memoryBudget: budget) { entry, cfg in
            try OpenAIServer(engine: try Engine.load(entry.path), config: cfg, listen: false)
        }
    }

    func ask(_ port: Int, _ model: String) -> RawHTTP.Response? {
        RawHTTP.post(port: port, "/v1/chat/completions",
                     #"{"model":"\#(model)","messages":[{"role":"user","content":"What is 2+2?"}],"temperature":0,"max_tokens":40}"#)
    }

    func testLoadsOnDemandAndUnloadsTheLeastRecentlyUsed() throws {
        let r = try router(try makeFolder())
        defer { r.stop() }
        let list = try XCTUnwrap(RawHTTP.request(port: r.port, "GET", "/v1/models")?.json)
        XCTAssertEqual(list["data"]?.array?.compactMap { $0["id"]?.string }, ["coder", "tiny-r1"])
        XCTAssertEqual(r.loadedIDs, [])
        let a = try XCTUnwrap(ask(r.port, "tiny-r1"))
        XCTAssertEqual(a.status, 200, a.body)
        XCTAssertEqual(a.json?["model"]?.string, "tiny-r1")
        XCTAssertEqual(a.json?["choices"]?[0]?["message"]?["content"]?.string, ReasoningFixture.answer)
        XCTAssertEqual(r.loadedIDs, ["tiny-r1"])
        let b = try XCTUnwrap(ask(r.port, "coder"))
        XCTAssertEqual(b.status, 200, b.body)
        XCTAssertEqual(r.loadedIDs, ["coder"], "--models-max 1: the idle tiny model was unloaded")
        let streamed = try XCTUnwrap(RawHTTP.post(port: r.port, "/v1/chat/completions",
                                                  #"{"model":"tiny-r1","stream":true,"messages":[{"role":"user","content":"What is 2+2?"}],"temperature":0,"max_tokens":8}"#))
        XCTAssertTrue(RawHTTP.chatStreamText(streamed.body).done, streamed.body)
        XCTAssertEqual(r.loadedIDs, ["tiny-r1"])
        XCTAssertEqual(try XCTUnwrap(ask(r.port, "nope")).status, 404)
        let none = try XCTUnwrap(RawHTTP.post(port: r.port, "/v1/chat/completions", #"{"messages":[{"role":"user","content":"hi"}]}"#))
        XCTAssertEqual(none.status, 400)
        XCTAssertTrue(none.body.contains("coder, tiny-r1"), none.body)
        let msg = try XCTUnwrap(RawHTTP.post(port: r.port, "/v1/messages", #"{"model":"tiny-r1","max_tokens":8,"messages":[{"role":"user","content":"What is 2+2?"}]}"#))
        XCTAssertEqual(msg.status, 200, msg.body)
    }

    func testModelLargerThanTheBudgetIsRefused() throws {
        let r = try router(try makeFolder(), budget: 64 << 20)
        defer { r.stop() }
        let big = try XCTUnwrap(ask(r.port, "coder"))
        XCTAssertEqual(big.status, 507, big.body)
        XCTAssertEqual(big.json?["error"]?["code"]?.string, "model_too_large")
        XCTAssertTrue(big.json?["error"]?["message"]?.string?.contains("memory budget") == true, big.body)
        XCTAssertEqual(r.loadedIDs, [])
        XCTAssertEqual(try XCTUnwrap(ask(r.port, "tiny-r1")).status, 200, "a small model still loads")
    }
}

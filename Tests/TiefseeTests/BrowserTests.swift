import Foundation
import XCTest
@testable import Tiefsee
@testable import TiefseeKnowledge
@testable import TiefseeServer

/// The chat page in a real browser: scripts/browser_test.py drives headless Chromium (Debian's
/// chromium + chromium-driver, Python Selenium; scripts/setup.sh installs them) against servers
/// this test starts — the default model with users and a knowledge base, the R1-style
/// reasoning fixture, and the tiny DeepSeek-V3 MoE fixture. Screenshots of every step go to
/// .build/browser-screenshots (or $TIEFSEE_SCREENSHOTS). Skipped only when Chromium is absent.
final class BrowserTests: XCTestCase {
    static func executable(_ name: String, env: String) -> String? {
        if let p = ProcessInfo.processInfo.environment[env], FileManager.default.isExecutableFile(atPath: p) { return p }
        for dir in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"] where FileManager.default.isExecutableFile(atPath: dir + "/" + name) {
            return dir + "/" + name
        }
        return nil
    }

    func testChatPageInHeadlessChromium() throws {
        guard let chromium = BrowserTests.executable("chromium", env: "CHROMIUM"),
              let driver = BrowserTests.executable("chromedriver", env: "CHROMEDRIVER") else {
            print("SKIP: chromium / chromedriver not found (apt-get install -y chromium chromium-driver; scripts/setup.sh does)")
            throw XCTSkip("chromium / chromedriver not found (apt-get install -y chromium chromium-driver; scripts/setup.sh does)")
        }
        let engine = try TestServers.requireEngine()
        let embedder = try requireEmbeddingModel()
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        check.arguments = ["python3", "-c", "import selenium"]
        try check.run(); check.waitUntilExit()
        guard check.terminationStatus == 0 else {
            return XCTFail("Chromium is installed but python3 cannot import selenium: run scripts/setup.sh (pip install selenium)")
        }

        let dir = NSTemporaryDirectory() + "tiefsee-browser-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/kb", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A company handbook base with the house rules; the test uploads a policy PDF into it.
        try KnowledgeBase(name: "handbook", path: dir + "/kb/handbook.sqlite", embedder: embedder)
            .add(paths: [fixturePath("kb-corpus/docs/house-rules")])
        let db = try UserDatabase(path: dir + "/users.sqlite")
        try db.addUser("mara", password: "browser-test-password", iterations: 20_000)
        try db.addGroup("staff")
        try db.setMember(group: "staff", user: "mara")
        try db.grant(group: "staff", kb: "handbook", write: true)

        TestServers.raiseFileLimit()
        var cfg = TestServers.baseConfig
        cfg.parallel = 2
        cfg.contextSize = 2048
        cfg.users = db
        let main = try OpenAIServer(engine: engine, config: cfg,
                                    hooks: ServerKnowledge(engine: engine, embedder: embedder, directory: dir + "/kb").hooks)
        defer { main.stop() }
        var open = TestServers.baseConfig
        open.parallel = 1
        open.contextSize = nil  // the fixtures' own (small) maximum
        let reasoning = try OpenAIServer(engine: try Engine.load(try ReasoningFixture.make()), config: open)
        defer { reasoning.stop() }
        let moe = try OpenAIServer(engine: try Engine.load(fixturePath("moe/deepseek-v3")), config: open)
        defer { moe.stop() }

        let shots = ProcessInfo.processInfo.environment["TIEFSEE_SCREENSHOTS"] ?? repoRoot + "/.build/browser-screenshots"
        try? FileManager.default.removeItem(atPath: shots)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", repoRoot + "/scripts/browser_test.py",
                       "--url", "http://127.0.0.1:\(main.port)", "--user", "mara", "--password", "browser-test-password",
                       "--kb", "handbook", "--document", fixturePath("kb-corpus/docs/policies/policy-remote-work-policy.pdf"),
                       "--question", "How many days per week may employees work from home?", "--expect", "9 days",
                       "--screenshots", shots,
                       "--reasoning-url", "http://127.0.0.1:\(reasoning.port)", "--moe-url", "http://127.0.0.1:\(moe.port)"]
        var env = ProcessInfo.processInfo.environment
        env["CHROMIUM"] = chromium
        env["CHROMEDRIVER"] = driver
        env["SE_OFFLINE"] = "true"  // Selenium must not look for drivers on the network
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        print(out)
        print("browser screenshots in \(shots)")
        XCTAssertEqual(p.terminationStatus, 0, "browser test failed:\n\(out)")
        XCTAssertTrue(out.contains("BROWSER TEST PASSED"))
        let pngs = (try? FileManager.default.contentsOfDirectory(atPath: shots))?.filter { $0.hasSuffix(".png") } ?? []
        XCTAssertGreaterThanOrEqual(pngs.count, 8, "screenshots: \(pngs.sorted())")
    }
}

import Foundation
import XCTest
@testable import Tiefsee
@testable import TiefseeKnowledge
@testable import TiefseeServer

/// The user database (UserDatabase) on its own, and `tiefsee serve` with users: 2 users, 2
/// groups, 3 knowledge bases, every user × base through every API that can name a base; a
/// refused request must never search the base (counted by ServerKnowledge).
final class ServerUsersTests: XCTestCase {
    func tempDir(_ tag: String) throws -> String {
        let d = NSTemporaryDirectory() + "tiefsee-users-\(tag)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    // MARK: the database

    func testUserDatabaseKeysGroupsAndSessions() throws {
        let dir = try tempDir("db")
        let db = try UserDatabase(path: dir + "/users.sqlite")
        let attrs = try FileManager.default.attributesOfItem(atPath: dir + "/users.sqlite")
        XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, 0o600, "the file is its owner's only")
        XCTAssertThrowsError(try db.addUser("ann", password: "short"), "passwords under 8 characters are refused")
        let annKey = try db.addUser("ann", password: "ann-password-1", iterations: 1000)
        let benKey = try db.addUser("ben", password: nil)
        XCTAssertThrowsError(try db.addUser("ann", password: "another-password"), "names are unique")
        XCTAssertThrowsError(try db.addUser("bad name", password: nil))
        XCTAssertTrue(annKey.hasPrefix("tsk-") && annKey.count > 40)
        XCTAssertNotEqual(annKey, benKey)

        // Keys: only their hashes are stored; a key finds its user.
        let raw = try String(contentsOfFile: dir + "/users.sqlite", encoding: .isoLatin1)
        XCTAssertFalse(raw.contains(annKey), "the key itself is not in the file")
        XCTAssertFalse(raw.contains("ann-password-1"))
        XCTAssertEqual(db.principal(apiKey: annKey)?.name, "ann")
        XCTAssertEqual(db.principal(apiKey: benKey)?.name, "ben")
        XCTAssertNil(db.principal(apiKey: annKey + "x"))
        XCTAssertNil(db.principal(apiKey: "tsk-nope"))

        // Groups and grants: read, write, revoke.
        try db.addGroup("red"); try db.addGroup("blue")
        try db.setMember(group: "red", user: "ann")
        try db.setMember(group: "blue", user: "ann")
        try db.setMember(group: "blue", user: "ben")
        try db.grant(group: "red", kb: "alpha", write: true)
        try db.grant(group: "blue", kb: "beta")
        var ann = try XCTUnwrap(db.principal(apiKey: annKey))
        XCTAssertEqual(ann.groups, ["blue", "red"])
        XCTAssertEqual(ann.readable, ["alpha", "beta"])
        XCTAssertEqual(ann.writable, ["alpha"])
        XCTAssertTrue(ann.mayRead("alpha") && ann.mayRead("beta") && !ann.mayRead("gamma"))
        XCTAssertTrue(ann.mayWrite("alpha") && !ann.mayWrite("beta"))
        let ben = try XCTUnwrap(db.principal(apiKey: benKey))
        XCTAssertEqual(ben.readable, ["beta"])
        try db.setMember(group: "blue", user: "ann", member: false)
        ann = try XCTUnwrap(db.principal(apiKey: annKey))
        XCTAssertEqual(ann.readable, ["alpha"], "leaving a group takes its bases away at once")
        try db.grant(group: "red", kb: "alpha", revoke: true)
        XCTAssertEqual(db.principal(apiKey: annKey)?.readable, [])

        // Login: right password opens a session; wrong password, unknown user, no password: nil.
        XCTAssertNil(db.login("ann", password: "wrong-password"))
        XCTAssertNil(db.login("nobody", password: "ann-password-1"))
        XCTAssertNil(db.login("ben", password: ""), "a user without a password cannot log in")
        let (token, p) = try XCTUnwrap(db.login("ann", password: "ann-password-1"))
        XCTAssertEqual(p.name, "ann")
        XCTAssertEqual(db.principal(session: token)?.name, "ann")
        XCTAssertNil(db.principal(session: token + "x"))
        db.logout(session: token)
        XCTAssertNil(db.principal(session: token), "logout ends the session")
        let (t2, _) = try XCTUnwrap(db.login("ann", password: "ann-password-1"))
        try db.setPassword("ann", "new-password-2", iterations: 1000)
        XCTAssertNil(db.principal(session: t2), "a new password ends the sessions")
        XCTAssertNotNil(db.login("ann", password: "new-password-2"))

        // Expired sessions are refused.
        db.sessionSeconds = -1
        let (t3, _) = try XCTUnwrap(db.login("ann", password: "new-password-2"))
        XCTAssertNil(db.principal(session: t3))

        // Revoking a key by its listed prefix; removing a user removes their keys.
        let second = try db.addKey("ann")
        XCTAssertEqual(try db.users().first { $0.name == "ann" }?.keys.count, 2)
        XCTAssertEqual(try db.revokeKeys("ann", prefix: String(second.prefix(12))), 1)
        XCTAssertNil(db.principal(apiKey: second))
        XCTAssertNotNil(db.principal(apiKey: annKey))
        try db.removeUser("ann")
        XCTAssertNil(db.principal(apiKey: annKey))
        XCTAssertEqual(try db.users().map(\.name), ["ben"])
        XCTAssertEqual(try db.groups().first { $0.name == "blue" }?.members, ["ben"])
    }

    // MARK: the server

    struct Fixture {
        let server: OpenAIServer
        let knowledge: ServerKnowledge
        let db: UserDatabase
        let keys: [String: String]
        let docs: String
    }

    /// Bases alpha (the parrot), beta (parking), gamma (holidays); ann is in red and blue, ben in
    /// blue; red may read and write alpha, blue read beta, nobody gamma.
    func makeFixture() throws -> Fixture {
        let engine = try TestServers.requireEngine()
        let embedder = try requireEmbeddingModel()
        let dir = try tempDir("server")
        let facts = [
            ("alpha", "animals.md", "# Office animals\n\n## The parrot\n\nThe office parrot of the Hamburg team is named Captain Quirinius. He lives next to the coffee machine.\n"),
            ("beta", "parking.md", "# Parking\n\nEmployees park in the underground garage on level -2. Visitors use the spaces at the front gate.\n"),
            ("gamma", "holidays.md", "# Holidays\n\nEvery employee has 30 days of paid holiday per year. Requests go to the team lead two weeks ahead.\n"),
        ]
        for (kb, file, text) in facts {
            let docs = dir + "/docs/" + kb
            try FileManager.default.createDirectory(atPath: docs, withIntermediateDirectories: true)
            try text.write(toFile: docs + "/" + file, atomically: true, encoding: .utf8)
            try KnowledgeBase(name: kb, path: dir + "/kb/" + kb + ".sqlite", embedder: embedder).add(paths: [docs])
        }
        let db = try UserDatabase(path: dir + "/users.sqlite")
        let keys = ["ann": try db.addUser("ann", password: "ann-password-1", iterations: 2000),
                    "ben": try db.addUser("ben", password: "ben-password-1", iterations: 2000)]
        try db.addGroup("red"); try db.addGroup("blue")
        try db.setMember(group: "red", user: "ann")
        try db.setMember(group: "blue", user: "ann")
        try db.setMember(group: "blue", user: "ben")
        try db.grant(group: "red", kb: "alpha", write: true)
        try db.grant(group: "blue", kb: "beta")
        var cfg = TestServers.baseConfig
        cfg.parallel = 1
        cfg.contextSize = 2048
        cfg.users = db
        cfg.apiKey = "server-admin-key"
        TestServers.raiseFileLimit()
        let knowledge = ServerKnowledge(engine: engine, embedder: embedder, directory: dir + "/kb")
        let server = try OpenAIServer(engine: engine, config: cfg, hooks: knowledge.hooks)
        addTeardownBlock { server.stop() }
        return Fixture(server: server, knowledge: knowledge, db: db, keys: keys, docs: dir + "/docs")
    }

    static let questions = ["alpha": "What is the name of the office parrot?", "beta": "Where do employees park?",
                            "gamma": "How many days of paid holiday does an employee have?"]

    /// The request forms that can name a knowledge base: chat's `knowledge` field (whole and
    /// streamed), the MODEL@kb:NAME alias on chat, Messages and Responses.
    func requests(_ model: String, _ kb: String) -> [(String, String, String)] {
        let q = JSONValue.string(ServerUsersTests.questions[kb]!).serialized()
        let alias = model + "@kb:" + kb
        return [
            ("chat knowledge", "/v1/chat/completions", #"{"knowledge":"\#(kb)","messages":[{"role":"user","content":\#(q)}],"max_tokens":1,"temperature":0}"#),
            ("chat stream", "/v1/chat/completions", #"{"knowledge":{"kb":"\#(kb)","top_k":2},"stream":true,"messages":[{"role":"user","content":\#(q)}],"max_tokens":1}"#),
            ("chat alias", "/v1/chat/completions", #"{"model":"\#(alias)","messages":[{"role":"user","content":\#(q)}],"max_tokens":1}"#),
            ("messages alias", "/v1/messages", #"{"model":"\#(alias)","max_tokens":1,"messages":[{"role":"user","content":\#(q)}]}"#),
            ("responses alias", "/v1/responses", #"{"model":"\#(alias)","input":\#(q),"max_output_tokens":1}"#),
        ]
    }

    /// Sources of a whole or streamed chat reply.
    func sources(_ r: RawHTTP.Response) -> [JSONValue]? {
        if let s = r.json?["sources"]?.array { return s }
        for line in r.body.components(separatedBy: "\n") where line.hasPrefix("data: {") {
            if let s = (try? JSONValue.parse(String(line.dropFirst(6))))?["sources"]?.array { return s }
        }
        return nil
    }

    func testEveryUserAndBaseThroughEveryAPI() throws {
        let f = try makeFixture()
        let port = f.server.port, model = f.server.modelID
        let readable: [String: Set<String>] = ["ann": ["alpha", "beta"], "ben": ["beta"], "admin": ["alpha", "beta", "gamma"]]
        let credentials: [String: [String: String]] = [
            "ann": ["Authorization": "Bearer " + f.keys["ann"]!], "ben": ["x-api-key": f.keys["ben"]!],
            "admin": ["Authorization": "Bearer server-admin-key"],
        ]
        var expectedSearches: [String: Int] = [:]
        for who in ["ann", "ben", "admin"] {
            for kb in ["alpha", "beta", "gamma"] {
                for (form, path, body) in requests(model, kb) {
                    let r = try XCTUnwrap(RawHTTP.post(port: port, path, body, headers: credentials[who]!), "\(who) \(kb) \(form)")
                    let label = "\(who) reading \(kb) by \(form)"
                    if readable[who]!.contains(kb) {
                        expectedSearches[kb, default: 0] += 1
                        XCTAssertEqual(r.status, 200, "\(label): \(r.body)")
                        if path == "/v1/chat/completions" {
                            let s = try XCTUnwrap(sources(r), label)
                            XCTAssertFalse(s.isEmpty, label)
                            for src in s {
                                XCTAssertTrue(src["path"]?.string?.hasPrefix(f.docs + "/" + kb + "/") == true, "\(label): \(src)")
                                XCTAssertNotNil(src["text"]?.string, "sources carry the passage")
                            }
                        }
                    } else {
                        XCTAssertEqual(r.status, 403, "\(label): \(r.body)")
                        XCTAssertTrue(r.body.contains("knowledge_base_forbidden") || r.body.contains("permission_error"), label)
                        for text in ["Quirinius", "level -2", "30 days"] {
                            XCTAssertFalse(r.body.contains(text), "\(label): no passage text in a refusal")
                        }
                    }
                }
            }
        }
        for kb in ["alpha", "beta", "gamma"] {
            XCTAssertEqual(f.knowledge.searches(kb), expectedSearches[kb] ?? 0, "searches of \(kb): refused requests never searched")
        }
        XCTAssertEqual(f.knowledge.searches("gamma"), 5, "only the admin read gamma")

        // No credentials, or a wrong key: 401 before anything else.
        for (_, path, body) in requests(model, "beta") {
            XCTAssertEqual(RawHTTP.post(port: port, path, body)?.status, 401)
            XCTAssertEqual(RawHTTP.post(port: port, path, body, headers: ["Authorization": "Bearer tsk-wrong"])?.status, 401)
        }
        XCTAssertEqual(RawHTTP.request(port: port, "GET", "/v1/models")?.status, 401)
        XCTAssertEqual(RawHTTP.request(port: port, "GET", "/health")?.status, 200, "health stays open")
        XCTAssertEqual(RawHTTP.request(port: port, "GET", "/")?.status, 200, "the page (with its login) is open")
        XCTAssertEqual(f.knowledge.searches("beta"), expectedSearches["beta"])

        // The picker lists exactly the readable bases.
        for who in ["ann", "ben", "admin"] {
            let r = try XCTUnwrap(RawHTTP.request(port: port, "GET", "/api/knowledge", headers: credentials[who]!))
            XCTAssertEqual(r.status, 200)
            let names = Set(r.json?["data"]?.array?.compactMap { $0["name"]?.string } ?? [])
            XCTAssertEqual(names, readable[who]!, who)
        }

        // A grant made while the server runs holds from the next request on.
        try f.db.grant(group: "blue", kb: "gamma")
        let g = requests(model, "gamma")[0]
        XCTAssertEqual(RawHTTP.post(port: port, g.1, g.2, headers: credentials["ben"]!)?.status, 200)
        try f.db.grant(group: "blue", kb: "gamma", revoke: true)
        XCTAssertEqual(RawHTTP.post(port: port, g.1, g.2, headers: credentials["ben"]!)?.status, 403)
        XCTAssertEqual(f.knowledge.searches("gamma"), 6)
    }

    func testLoginSessionCookieAndUpload() throws {
        let f = try makeFixture()
        let port = f.server.port
        let s = try XCTUnwrap(RawHTTP.request(port: port, "GET", "/api/session"))
        XCTAssertEqual(s.json?["auth"]?.string, "users")
        XCTAssertEqual(s.json?["user"], .null)
        XCTAssertEqual(RawHTTP.post(port: port, "/api/login", #"{"user":"ben","password":"wrong-password"}"#)?.status, 401)
        XCTAssertEqual(RawHTTP.post(port: port, "/api/login", #"{"user":"nobody","password":"ben-password-1"}"#)?.status, 401)
        let login = try XCTUnwrap(RawHTTP.post(port: port, "/api/login", #"{"user":"ben","password":"ben-password-1"}"#))
        XCTAssertEqual(login.status, 200, login.body)
        let setCookie = try XCTUnwrap(login.headers["set-cookie"])
        XCTAssertTrue(setCookie.contains("HttpOnly"), setCookie)
        XCTAssertTrue(setCookie.contains("SameSite=Strict"), setCookie)
        XCTAssertTrue(setCookie.contains("Path=/"), setCookie)
        let token = try XCTUnwrap(setCookie.split(separator: ";").first?.split(separator: "=", maxSplits: 1).last.map(String.init))
        let cookie = ["Cookie": "tiefsee_session=" + token]
        XCTAssertEqual(RawHTTP.request(port: port, "GET", "/api/session", headers: cookie)?.json?["user"]?["name"]?.string, "ben")

        // The cookie reads what ben may read, and nothing else.
        let model = f.server.modelID
        let beta = requests(model, "beta")[0], alpha = requests(model, "alpha")[0]
        XCTAssertEqual(RawHTTP.post(port: port, beta.1, beta.2, headers: cookie)?.status, 200)
        XCTAssertEqual(RawHTTP.post(port: port, alpha.1, alpha.2, headers: cookie)?.status, 403)
        XCTAssertEqual(f.knowledge.searches("alpha"), 0)

        // Upload: ann may write alpha; ben may not; unsupported names are refused.
        let doc = Array("# Canteen\n\nThe canteen serves Labskaus every Thursday.\n".utf8)
        let annKey = ["Authorization": "Bearer " + f.keys["ann"]!]
        let up = try XCTUnwrap(RawHTTP.request(port: port, "POST", "/api/knowledge/alpha/documents?filename=canteen.md", body: doc, headers: annKey))
        XCTAssertEqual(up.status, 200, up.body)
        XCTAssertEqual(up.json?["status"]?.string, "added")
        XCTAssertEqual(up.json?["documents"]?.int, 2)
        XCTAssertGreaterThan(up.json?["chunks"]?.int ?? 0, 0)
        let again = RawHTTP.request(port: port, "POST", "/api/knowledge/alpha/documents?filename=canteen.md", body: doc, headers: annKey)
        XCTAssertEqual(again?.json?["status"]?.string, "unchanged")
        XCTAssertEqual(RawHTTP.request(port: port, "POST", "/api/knowledge/alpha/documents?filename=canteen.md", body: doc, headers: cookie)?.status, 403)
        XCTAssertEqual(RawHTTP.request(port: port, "POST", "/api/knowledge/beta/documents?filename=canteen.md", body: doc, headers: annKey)?.status, 403,
                       "read access is not write access")
        XCTAssertEqual(RawHTTP.request(port: port, "POST", "/api/knowledge/alpha/documents?filename=run.sh", body: doc, headers: annKey)?.status, 400)
        XCTAssertEqual(RawHTTP.request(port: port, "POST", "/api/knowledge/alpha/documents", body: doc, headers: annKey)?.status, 400)
        let ask = #"{"knowledge":"alpha","messages":[{"role":"user","content":"What does the canteen serve on Thursday?"}],"max_tokens":1}"#
        let r = try XCTUnwrap(RawHTTP.post(port: port, "/v1/chat/completions", ask, headers: annKey))
        XCTAssertEqual(sources(r)?.first?["file"]?.string, "canteen.md", "the uploaded document is searched")
        XCTAssertTrue(sources(r)?.first?["text"]?.string?.contains("Labskaus") == true)

        // Logout ends the session.
        let out = RawHTTP.request(port: port, "POST", "/api/logout", body: [], headers: cookie)
        XCTAssertEqual(out?.status, 200)
        XCTAssertTrue(out?.headers["set-cookie"]?.contains("Max-Age=0") == true)
        XCTAssertEqual(RawHTTP.post(port: port, beta.1, beta.2, headers: cookie)?.status, 401)
    }

    /// Without a user database nothing changes: no key needed, every base readable, the page open.
    func testWithoutUsersEverythingIsOpen() throws {
        let s = try TestServers.requireShared()
        let r = try XCTUnwrap(RawHTTP.request(port: s.port, "GET", "/api/session"))
        XCTAssertEqual(r.json?["auth"]?.string, "open")
        XCTAssertEqual(RawHTTP.post(port: s.port, "/api/login", #"{"user":"a","password":"b"}"#)?.status, 404)
        let page = try XCTUnwrap(RawHTTP.request(port: s.port, "GET", "/"))
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(page.headers["content-type"]?.hasPrefix("text/html") == true)
        XCTAssertTrue(page.headers["content-security-policy"]?.contains("default-src 'self'") == true)
        XCTAssertFalse(page.body.contains("http://") || page.body.contains("https://"), "the page loads nothing from elsewhere")
        for asset in ["/chat.js", "/markdown.js", "/chat.css"] {
            let a = try XCTUnwrap(RawHTTP.request(port: s.port, "GET", asset))
            XCTAssertEqual(a.status, 200, asset)
            XCTAssertFalse(a.body.range(of: #"(src|href)\s*=\s*["']?https?:"#, options: .regularExpression) != nil, "\(asset) references nothing outside")
            XCTAssertFalse(a.body.contains("fetch(\"http"), asset)
        }
        XCTAssertEqual(RawHTTP.request(port: s.port, "GET", "/api/model")?.json?["context_length"]?.int, s.contextSize)
        XCTAssertEqual(RawHTTP.request(port: s.port, "GET", "/api/model")?.json?["moe"], .null, "a dense model has no experts")
    }

    /// MoE models: the model panel's expert counts are the router's real decisions.
    func testModelInfoCountsExpertsOfAMoEModel() throws {
        let engine = try Engine.load(fixturePath("moe/deepseek-v3"))
        var cfg = TestServers.baseConfig
        cfg.parallel = 1
        let server = try OpenAIServer(engine: engine, config: cfg)
        defer { server.stop() }
        let before = try XCTUnwrap(RawHTTP.request(port: server.port, "GET", "/api/model")?.json)
        let moe = try XCTUnwrap(before["moe"])
        let m = try XCTUnwrap(engine.config.moe)
        XCTAssertEqual(moe["experts"]?.int, m.numExperts)
        XCTAssertEqual(moe["experts_per_token"]?.int, m.numExpertsPerToken)
        XCTAssertEqual(moe["active_share"]?.double ?? 0, Double(m.numExpertsPerToken) / Double(m.numExperts), accuracy: 1e-12)
        let layers = (0..<engine.config.numLayers).filter { engine.config.isMoELayer($0) }
        XCTAssertEqual(moe["moe_layers"]?.array?.compactMap(\.int), layers)
        XCTAssertLessThan(before["parameters"]?["active_per_token"]?.int ?? .max, before["parameters"]?["total"]?.int ?? 0)
        let r = try XCTUnwrap(RawHTTP.post(port: server.port, "/v1/completions", #"{"prompt":[1,2,3,4,5],"max_tokens":3,"temperature":0,"prompt_lookup":false}"#))
        XCTAssertEqual(r.status, 200, r.body)
        let used = try XCTUnwrap(r.json?["usage"]?["total_tokens"]?.int)
        let after = try XCTUnwrap(RawHTTP.request(port: server.port, "GET", "/api/model")?.json?["moe"]?["routing"])
        let tokens = try XCTUnwrap(after["tokens"]?.array?.compactMap(\.int))
        let counts = try XCTUnwrap(after["counts"]?.array?.map { $0.array?.compactMap(\.int) ?? [] })
        XCTAssertEqual(tokens.count, layers.count)
        for (i, t) in tokens.enumerated() {
            // Every prompt token and every generated token but the last went through the layer.
            XCTAssertEqual(t, used - 1, "layer \(layers[i])")
            XCTAssertEqual(counts[i].reduce(0, +), t * m.numExpertsPerToken, "each token chose k experts")
            XCTAssertEqual(counts[i].count, m.numExperts)
        }
    }
}

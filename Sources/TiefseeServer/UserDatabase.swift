import Foundation
import Tiefsee
import TiefseeKnowledge

/// Who a request is authenticated as, with the knowledge bases that identity may read and
/// write. Resolved from the user database on every request, so a grant or a removal made with
/// `tiefsee group …` / `tiefsee user remove` holds from the next request on.
public struct Principal: Sendable, Equatable {
    public let name: String
    /// Admins (and the server's own `--api-key`) read and write every base.
    public let admin: Bool
    public let groups: [String]
    public let readable: Set<String>
    public let writable: Set<String>

    public init(name: String, admin: Bool, groups: [String] = [], readable: Set<String> = [], writable: Set<String> = []) {
        self.name = name; self.admin = admin; self.groups = groups; self.readable = readable; self.writable = writable
    }

    public func mayRead(_ kb: String) -> Bool { admin || readable.contains(kb) || writable.contains(kb) }
    public func mayWrite(_ kb: String) -> Bool { admin || writable.contains(kb) }
}

/// Which knowledge bases a request may use: every one (no user database: the server as it was
/// before users existed), or the principal's.
public enum KnowledgeAccess: Sendable {
    case all
    case only(Principal?)

    public func mayRead(_ kb: String) -> Bool {
        switch self {
        case .all: return true
        case .only(let p): return p?.mayRead(kb) ?? false
        }
    }

    public func mayWrite(_ kb: String) -> Bool {
        switch self {
        case .all: return true
        case .only(let p): return p?.mayWrite(kb) ?? false
        }
    }
}

public struct UserInfo: Sendable {
    public let name: String
    public let admin: Bool
    public let hasPassword: Bool
    public let groups: [String]
    public let keys: [String]  // key prefixes, for telling keys apart
}

public struct GroupInfo: Sendable {
    public let name: String
    public let members: [String]
    /// Knowledge base → may write.
    public let grants: [(kb: String, write: Bool)]
}

public struct UserDatabaseError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

/// Users, API keys, groups and login sessions of `tiefsee serve`, in one SQLite file
/// (`$TIEFSEE_HOME/users.sqlite` unless given). A knowledge base belongs to the groups granted
/// it: members read it (and upload into it with a write grant). Passwords are stored as
/// PBKDF2-HMAC-SHA256 (`PasswordHash`); API keys and session tokens are 256-bit random strings
/// stored as their SHA-256, so the file never holds a usable secret.
public final class UserDatabase: @unchecked Sendable {
    public let path: String
    let db: SQLiteDB
    /// Statements are cached per connection: one request at a time uses them.
    private let lock = NSLock()
    public var sessionSeconds: Double = 24 * 3600
    /// The prefix of every API key (so keys are recognisable in configs and logs).
    public static let keyPrefix = "tsk-"

    public static var defaultPath: String { ModelCache.home + "/users.sqlite" }

    public static func validName(_ n: String) -> Bool {
        !n.isEmpty && n.count <= 64 && n.allSatisfy { $0.isLetter || $0.isNumber || "-_.@".contains($0) } && !n.hasPrefix(".")
    }

    /// Opens the database; `create: false` fails when the file does not exist.
    public init(path: String = UserDatabase.defaultPath, create: Bool = true) throws {
        if !create && !FileManager.default.fileExists(atPath: path) {
            throw UserDatabaseError("no user database at \(path) (tiefsee user add creates it)")
        }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        self.path = path
        // The file holds password hashes: created readable by its owner only (and kept in
        // rollback-journal mode, so no WAL file with its pages lies beside it).
        if !FileManager.default.fileExists(atPath: path) {
            FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        db = try SQLiteDB(path: path)
        try db.exec("""
            PRAGMA foreign_keys=ON;
            CREATE TABLE IF NOT EXISTS users(
                id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, password TEXT, admin INTEGER NOT NULL DEFAULT 0,
                created REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS api_keys(
                id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                key_hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL, created REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS groups(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
            CREATE TABLE IF NOT EXISTS members(
                group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
                user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE, PRIMARY KEY(group_id, user_id));
            CREATE TABLE IF NOT EXISTS grants(
                group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE, kb TEXT NOT NULL,
                write INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(group_id, kb));
            CREATE TABLE IF NOT EXISTS sessions(
                token_hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                expires REAL NOT NULL);
            """)
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock(); defer { lock.unlock() }
        return try body()
    }

    private func userID(_ name: String) throws -> Int64 {
        guard let id = try db.scalarInt("SELECT id FROM users WHERE name = ?", [.text(name)]) else {
            throw UserDatabaseError("no user named '\(name)'")
        }
        return id
    }

    private func groupID(_ name: String) throws -> Int64 {
        guard let id = try db.scalarInt("SELECT id FROM groups WHERE name = ?", [.text(name)]) else {
            throw UserDatabaseError("no group named '\(name)'")
        }
        return id
    }

    static func hashToken(_ token: String) -> String { SHA256.hex(SHA256.hash(Array(token.utf8))) }

    // MARK: users

    /// Adds a user (password nil: API keys only, no login) and returns a first API key.
    @discardableResult
    public func addUser(_ name: String, password: String?, admin: Bool = false, iterations: Int = PasswordHash.defaultIterations) throws -> String {
        guard UserDatabase.validName(name) else { throw UserDatabaseError("invalid user name '\(name)' (letters, digits, - _ . @; at most 64)") }
        if let p = password { try UserDatabase.checkPassword(p) }
        let stored = password.map { PasswordHash.make($0, iterations: iterations) }
        return try locked {
            if try db.scalarInt("SELECT id FROM users WHERE name = ?", [.text(name)]) != nil {
                throw UserDatabaseError("user '\(name)' already exists")
            }
            try db.run("INSERT INTO users(name, password, admin, created) VALUES (?, ?, ?, ?)",
                       [.text(name), stored.map { .text($0) } ?? .null, .int(admin ? 1 : 0), .double(Date().timeIntervalSince1970)])
            return try issueKey(db.lastInsertRowID)
        }
    }

    /// No default or trivial passwords: at least 8 characters.
    static func checkPassword(_ p: String) throws {
        guard p.count >= 8 else { throw UserDatabaseError("the password must have at least 8 characters") }
    }

    public func setPassword(_ name: String, _ password: String, iterations: Int = PasswordHash.defaultIterations) throws {
        try UserDatabase.checkPassword(password)
        let stored = PasswordHash.make(password, iterations: iterations)
        try locked {
            let id = try userID(name)
            try db.run("UPDATE users SET password = ? WHERE id = ?", [.text(stored), .int(id)])
            try db.run("DELETE FROM sessions WHERE user_id = ?", [.int(id)])
        }
    }

    public func removeUser(_ name: String) throws {
        try locked {
            let id = try userID(name)
            try db.run("DELETE FROM users WHERE id = ?", [.int(id)])
        }
    }

    public func users() throws -> [UserInfo] {
        try locked {
            var rows: [(Int64, String, Bool, Bool)] = []
            try db.run("SELECT id, name, admin, password IS NOT NULL FROM users ORDER BY name") {
                rows.append(($0.int(0), $0.text(1), $0.int(2) != 0, $0.int(3) != 0))
            }
            return try rows.map { id, name, admin, hasPassword in
                var groups: [String] = [], keys: [String] = []
                try db.run("SELECT g.name FROM members m JOIN groups g ON g.id = m.group_id WHERE m.user_id = ? ORDER BY g.name",
                           [.int(id)]) { groups.append($0.text(0)) }
                try db.run("SELECT prefix FROM api_keys WHERE user_id = ? ORDER BY id", [.int(id)]) { keys.append($0.text(0)) }
                return UserInfo(name: name, admin: admin, hasPassword: hasPassword, groups: groups, keys: keys)
            }
        }
    }

    // MARK: API keys

    /// A new API key for the user; only its hash is stored, so it is shown once.
    public func addKey(_ name: String) throws -> String {
        try locked { try issueKey(try userID(name)) }
    }

    private func issueKey(_ userID: Int64) throws -> String {
        let key = UserDatabase.keyPrefix + PasswordHash.randomToken()
        try db.run("INSERT INTO api_keys(user_id, key_hash, prefix, created) VALUES (?, ?, ?, ?)",
                   [.int(userID), .text(UserDatabase.hashToken(key)), .text(String(key.prefix(12))), .double(Date().timeIntervalSince1970)])
        return key
    }

    /// Revokes the user's keys starting with `prefix` (as `user list` shows them); returns how many.
    @discardableResult
    public func revokeKeys(_ name: String, prefix: String) throws -> Int {
        try locked {
            let id = try userID(name)
            var ids: [Int64] = []
            try db.run("SELECT id, prefix FROM api_keys WHERE user_id = ?", [.int(id)]) { s in
                if s.text(1).hasPrefix(prefix) || prefix.hasPrefix(s.text(1)) { ids.append(s.int(0)) }
            }
            for k in ids { try db.run("DELETE FROM api_keys WHERE id = ?", [.int(k)]) }
            return ids.count
        }
    }

    // MARK: groups

    public func addGroup(_ name: String) throws {
        guard UserDatabase.validName(name) else { throw UserDatabaseError("invalid group name '\(name)'") }
        try locked {
            if try db.scalarInt("SELECT id FROM groups WHERE name = ?", [.text(name)]) != nil {
                throw UserDatabaseError("group '\(name)' already exists")
            }
            try db.run("INSERT INTO groups(name) VALUES (?)", [.text(name)])
        }
    }

    public func removeGroup(_ name: String) throws {
        try locked { try db.run("DELETE FROM groups WHERE id = ?", [.int(try groupID(name))]) }
    }

    public func setMember(group: String, user: String, member: Bool = true) throws {
        try locked {
            let g = try groupID(group), u = try userID(user)
            if member {
                try db.run("INSERT OR IGNORE INTO members(group_id, user_id) VALUES (?, ?)", [.int(g), .int(u)])
            } else {
                try db.run("DELETE FROM members WHERE group_id = ? AND user_id = ?", [.int(g), .int(u)])
            }
        }
    }

    /// Gives the group read (or read and write) access to a knowledge base; `revoke` takes it away.
    public func grant(group: String, kb: String, write: Bool = false, revoke: Bool = false) throws {
        guard KnowledgeBase.validName(kb) else { throw UserDatabaseError("invalid knowledge base name '\(kb)'") }
        try locked {
            let g = try groupID(group)
            if revoke {
                try db.run("DELETE FROM grants WHERE group_id = ? AND kb = ?", [.int(g), .text(kb)])
            } else {
                try db.run("INSERT INTO grants(group_id, kb, write) VALUES (?, ?, ?) ON CONFLICT(group_id, kb) DO UPDATE SET write = excluded.write",
                           [.int(g), .text(kb), .int(write ? 1 : 0)])
            }
        }
    }

    public func groups() throws -> [GroupInfo] {
        try locked {
            var rows: [(Int64, String)] = []
            try db.run("SELECT id, name FROM groups ORDER BY name") { rows.append(($0.int(0), $0.text(1))) }
            return try rows.map { id, name in
                var members: [String] = [], grants: [(String, Bool)] = []
                try db.run("SELECT u.name FROM members m JOIN users u ON u.id = m.user_id WHERE m.group_id = ? ORDER BY u.name",
                           [.int(id)]) { members.append($0.text(0)) }
                try db.run("SELECT kb, write FROM grants WHERE group_id = ? ORDER BY kb", [.int(id)]) { grants.append(($0.text(0), $0.int(1) != 0)) }
                return GroupInfo(name: name, members: members, grants: grants)
            }
        }
    }

    // MARK: authentication

    private func principal(userID id: Int64) throws -> Principal? {
        var name: String?, admin = false
        try db.run("SELECT name, admin FROM users WHERE id = ?", [.int(id)]) { name = $0.text(0); admin = $0.int(1) != 0 }
        guard let name else { return nil }
        var groups: [String] = [], read = Set<String>(), write = Set<String>()
        try db.run("SELECT g.name FROM members m JOIN groups g ON g.id = m.group_id WHERE m.user_id = ? ORDER BY g.name",
                   [.int(id)]) { groups.append($0.text(0)) }
        try db.run("""
            SELECT gr.kb, max(gr.write) FROM grants gr JOIN members m ON m.group_id = gr.group_id WHERE m.user_id = ? GROUP BY gr.kb
            """, [.int(id)]) { s in
            read.insert(s.text(0))
            if s.int(1) != 0 { write.insert(s.text(0)) }
        }
        return Principal(name: name, admin: admin, groups: groups, readable: read, writable: write)
    }

    /// The user an API key belongs to (nil: no such key).
    public func principal(apiKey: String) -> Principal? {
        guard apiKey.hasPrefix(UserDatabase.keyPrefix) else { return nil }
        return try? locked {
            guard let uid = try db.scalarInt("SELECT user_id FROM api_keys WHERE key_hash = ?", [.text(UserDatabase.hashToken(apiKey))]) else { return nil }
            return try principal(userID: uid)
        }
    }

    /// The user a session cookie belongs to, while the session has not expired.
    public func principal(session token: String) -> Principal? {
        try? locked {
            guard let uid = try db.scalarInt("SELECT user_id FROM sessions WHERE token_hash = ? AND expires > ?",
                                             [.text(UserDatabase.hashToken(token)), .double(Date().timeIntervalSince1970)]) else { return nil }
            return try principal(userID: uid)
        }
    }

    /// At most two password checks at a time: each costs ~0.3 s of a core, so a flood of
    /// logins queues here instead of taking every core from the model.
    private static let passwordChecks = DispatchSemaphore(value: 2)

    /// A stand-in hash checked when the user does not exist, so a failed login takes as long
    /// whether or not the name is known.
    private lazy var dummyHash = PasswordHash.make(PasswordHash.randomToken())

    /// Checks the password and opens a session: the session token (for the cookie) and the
    /// user, or nil. Users without a password cannot log in.
    public func login(_ name: String, password: String) -> (token: String, principal: Principal)? {
        var stored: String?, uid: Int64 = 0
        let dummy: String = locked {
            try? db.run("SELECT id, password FROM users WHERE name = ?", [.text(name)]) { s in
                uid = s.int(0)
                stored = s.isNull(1) ? nil : s.text(1)
            }
            return dummyHash
        }
        // The PBKDF2 work runs outside the lock, so logins do not hold up other requests.
        UserDatabase.passwordChecks.wait()
        let ok = PasswordHash.verify(password, against: stored ?? dummy) && stored != nil
        UserDatabase.passwordChecks.signal()
        guard ok else { return nil }
        return try? locked {
            let token = PasswordHash.randomToken()
            let now = Date().timeIntervalSince1970
            try db.run("DELETE FROM sessions WHERE expires <= ?", [.double(now)])
            try db.run("INSERT INTO sessions(token_hash, user_id, expires) VALUES (?, ?, ?)",
                       [.text(UserDatabase.hashToken(token)), .int(uid), .double(now + sessionSeconds)])
            guard let p = try principal(userID: uid) else { return nil }
            return (token, p)
        }
    }

    public func logout(session token: String) {
        locked { try? db.run("DELETE FROM sessions WHERE token_hash = ?", [.text(UserDatabase.hashToken(token))]) }
    }
}

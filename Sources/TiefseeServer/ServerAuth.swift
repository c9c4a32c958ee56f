import Foundation
import Tiefsee

/// Who may use the server. Three modes, from the configuration:
///
/// - open: no `--api-key`, no user database — every request is served, every base readable
///   (loopback is the default bind, so this is one person's machine);
/// - API key: `Authorization: Bearer KEY` (or `x-api-key`) with the server's one key;
/// - users: a user database (`tiefsee user add`) — a user's API key or the chat page's session
///   cookie; knowledge bases are read by the groups granted them. The server's own `--api-key`,
///   if also set, acts as an admin.
///
/// `/health`, the chat page's files and its login endpoints answer without credentials.
extension OpenAIServer {
    static let sessionCookie = "tiefsee_session"

    enum AuthMode: String { case open, apiKey = "api_key", users }

    static func authMode(_ config: ServerConfig) -> AuthMode {
        if config.users != nil { return .users }
        return config.apiKey.map { !$0.isEmpty } == true ? .apiKey : .open
    }

    /// Paths anyone may request.
    static func isPublic(_ path: String) -> Bool {
        path == "/health" || WebChatAssets.files[path] != nil || ["/api/session", "/api/login", "/api/logout"].contains(path)
    }

    /// The key a client sent: OpenAI clients send `Authorization: Bearer KEY`, Anthropic clients `x-api-key: KEY`.
    static func sentKey(_ req: HTTPRequest) -> String? {
        if let a = req.header("Authorization"), a.hasPrefix("Bearer ") { return String(a.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
        if let k = req.header("x-api-key"), !k.isEmpty { return k }
        return nil
    }

    /// Checks the request's credentials and records its principal on it; the 401 error when it
    /// has none that this server accepts.
    static func authenticate(_ req: HTTPRequest, _ config: ServerConfig) -> OpenAIError? {
        let mode = authMode(config)
        if mode == .open { return nil }
        let key = sentKey(req)
        if let k = key, let own = config.apiKey, !own.isEmpty, PasswordHash.constantTimeEqual(Array(k.utf8), Array(own.utf8)) {
            req.principal = Principal(name: "api-key", admin: true)
            return nil
        }
        if let users = config.users {
            if let k = key, let p = users.principal(apiKey: k) { req.principal = p; return nil }
            if key == nil, let token = req.cookie(sessionCookie), let p = users.principal(session: token) { req.principal = p; return nil }
        }
        let msg = key == nil
            ? "You didn't provide an API key. Provide it as 'Authorization: Bearer KEY' (or 'x-api-key: KEY')\(mode == .users ? ", or log in on the chat page" : "")."
            : "Incorrect API key provided."
        return OpenAIError(401, msg, code: "invalid_api_key")
    }

    /// The knowledge bases a request may read: all without a user database, else its principal's.
    static func knowledgeAccess(_ req: HTTPRequest, _ config: ServerConfig) -> KnowledgeAccess {
        config.users == nil ? .all : .only(req.principal)
    }

    static func principalJSON(_ p: Principal?) -> JSONValue {
        guard let p else { return .null }
        return .object([("name", .string(p.name)), ("admin", .bool(p.admin)), ("groups", .array(p.groups.map { .string($0) }))])
    }

    // MARK: the chat page's session endpoints

    /// `GET /api/session`, `POST /api/login`, `POST /api/logout`; nil for other paths.
    static func sessionResponse(_ req: HTTPRequest, _ config: ServerConfig) -> HTTPResponse? {
        switch req.path {
        case "/api/session":
            _ = authenticate(req, config)
            return .json(200, .object([("auth", .string(authMode(config).rawValue)), ("user", principalJSON(req.principal))]))
        case "/api/login":
            return login(req, config)
        case "/api/logout":
            if let token = req.cookie(sessionCookie) { config.users?.logout(session: token) }
            return .json(200, .object([("ok", .bool(true))]), headers: [("Set-Cookie", cookie("", maxAge: 0))])
        default:
            return nil
        }
    }

    /// HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it).
    static func cookie(_ token: String, maxAge: Int) -> String {
        "\(sessionCookie)=\(token); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(maxAge)"
    }

    static func login(_ req: HTTPRequest, _ config: ServerConfig) -> HTTPResponse {
        guard let users = config.users else {
            return OpenAIError(404, "this server has no user database, so no logins (tiefsee user add creates one)", code: "no_users").response
        }
        guard let body = try? JSONValue.parse(req.body, maxDepth: 4), let name = body["user"]?.string, let password = body["password"]?.string else {
            return OpenAIError(400, "send {\"user\": NAME, \"password\": PASSWORD}", code: "invalid_value").response
        }
        guard let (token, principal) = users.login(name, password: password) else {
            return OpenAIError(401, "wrong user name or password", code: "invalid_login").response
        }
        return .json(200, .object([("user", principalJSON(principal))]),
                     headers: [("Set-Cookie", cookie(token, maxAge: Int(users.sessionSeconds)))])
    }
}

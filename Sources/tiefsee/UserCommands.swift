import Foundation
import Tiefsee
import TiefseeServer
#if canImport(Glibc)
import Glibc
#endif

/// `tiefsee user …` and `tiefsee group …`: the user database `tiefsee serve` reads.
enum UserCommand {
    static let dbOption = OptionSpec("db", nil, .text, value: "PATH", help: "the user database")

    static let help = """
    usage: tiefsee user SUBCOMMAND [--db PATH]

      user add NAME [--admin] [--password-stdin | --no-password]
                    create a user; asks for the password twice (or reads one line from standard
                    input); prints the user's first API key, which is shown only once
      user list     users, their groups and API key prefixes
      user remove NAME
      user passwd NAME [--password-stdin]   set a new password (ends the user's sessions)
      user key NAME                          issue another API key
      user key NAME --revoke PREFIX          revoke the keys starting with PREFIX

    The database is $TIEFSEE_HOME/users.sqlite (default ~/.cache/tiefsee/users.sqlite) unless
    --db says otherwise; tiefsee serve uses it when it exists (or with --users PATH). There is
    no default user or password. Passwords are stored as PBKDF2-HMAC-SHA256 (600,000
    iterations, random salt), API keys and sessions as their SHA-256.
    """

    /// The options each subcommand accepts besides --db (any other is an error).
    static let options: [String: [OptionSpec]] = {
        let stdin = OptionSpec("password-stdin", nil, .flag, help: "read the password from standard input's first line")
        let add = [OptionSpec("admin", nil, .flag, help: "the user reads every knowledge base"), stdin,
                   OptionSpec("no-password", nil, .flag, help: "API keys only, no page login")]
        let key = [OptionSpec("revoke", nil, .text, value: "PREFIX", help: "revoke the keys starting with PREFIX")]
        return ["add": add, "list": [], "ls": [], "remove": [], "rm": [], "passwd": [stdin], "key": key]
    }()

    static func run(_ argv: ArraySlice<String>) throws {
        guard let sub = argv.first, sub != "--help", sub != "-h" else { print(help); return }
        guard let spec = options[sub] else { throw CLIError("unknown user subcommand '\(sub)' (see tiefsee user --help)") }
        let a = try Args(argv.dropFirst(), spec: [OptionSpec.help, dbOption] + spec)
        if a.has("help") { print(help); return }
        let path = a.string("db") ?? UserDatabase.defaultPath
        let db = try UserDatabase(path: path, create: sub == "add")
        func name() throws -> String {
            guard a.positional.count == 1 else { throw CLIError("user \(sub) needs one user NAME") }
            return a.positional[0]
        }
        switch sub {
        case "add":
            let n = try name()
            let password: String? = a.has("no-password") ? nil : try readPassword(a, confirm: true)
            let key = try db.addUser(n, password: password, admin: a.has("admin"))
            print("added user '\(n)'\(a.has("admin") ? " (admin)" : "") to \(path)")
            print("API key (shown once): \(key)")
        case "list", "ls":
            for u in try db.users() {
                let flags = [u.admin ? "admin" : nil, u.hasPassword ? nil : "no password"].compactMap { $0 }
                print("\(u.name)\(flags.isEmpty ? "" : " (" + flags.joined(separator: ", ") + ")")\tgroups: \(u.groups.isEmpty ? "-" : u.groups.joined(separator: ","))\tkeys: \(u.keys.isEmpty ? "-" : u.keys.map { $0 + "…" }.joined(separator: " "))")
            }
        case "remove", "rm":
            let n = try name()
            try db.removeUser(n)
            print("removed user '\(n)'")
        case "passwd":
            let n = try name()
            try db.setPassword(n, try readPassword(a, confirm: true))
            print("password of '\(n)' changed; their sessions have ended")
        case "key":
            let n = try name()
            if let prefix = a.string("revoke") {
                print("revoked \(try db.revokeKeys(n, prefix: prefix)) key(s) of '\(n)'")
            } else {
                print("API key (shown once): \(try db.addKey(n))")
            }
        default:
            throw CLIError("unknown user subcommand '\(sub)' (see tiefsee user --help)")
        }
    }

    /// From standard input (`--password-stdin`: the first line), or asked twice on the terminal
    /// without echo.
    static func readPassword(_ a: Args, confirm: Bool) throws -> String {
        if a.has("password-stdin") {
            guard let line = readLine(strippingNewline: true), !line.isEmpty else { throw CLIError("no password on standard input") }
            return line
        }
        guard isatty(STDIN_FILENO) != 0 else {
            throw CLIError("standard input is not a terminal: give --password-stdin (or --no-password for a user with API keys only)")
        }
        let first = try prompt("Password: ")
        if confirm, try prompt("Password again: ") != first { throw CLIError("the passwords differ") }
        return first
    }

    static func prompt(_ text: String) throws -> String {
        FileHandle.standardError.write(text.data(using: .utf8)!)
        var old = termios()
        tcgetattr(STDIN_FILENO, &old)
        var quiet = old
        quiet.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet)
        defer { tcsetattr(STDIN_FILENO, TCSANOW, &old); FileHandle.standardError.write("\n".data(using: .utf8)!) }
        guard let line = readLine(strippingNewline: true) else { throw CLIError("no password given") }
        return line
    }
}

enum GroupCommand {
    /// The options each subcommand accepts besides --db (any other is an error).
    static let options: [String: [OptionSpec]] = [
        "add": [], "list": [], "ls": [], "remove": [], "rm": [],
        "member": [OptionSpec("remove", nil, .flag, help: "take the user out of the group")],
        "grant": [OptionSpec("write", nil, .flag, help: "also upload into the base"),
                  OptionSpec("revoke", nil, .flag, help: "take the grant back")],
    ]

    static let help = """
    usage: tiefsee group SUBCOMMAND [--db PATH]

      group add NAME                 create a group
      group list                     groups, members and the knowledge bases they may use
      group remove NAME
      group member GROUP USER [--remove]         add a user to a group (or take them out)
      group grant GROUP KB [--write] [--revoke]  let the group read knowledge base KB (--write:
                                                 also upload into it); --revoke takes it back

    A knowledge base belongs to the groups granted it: with a user database, a request reads
    only the bases its user's groups were granted (admins read all).
    """

    static func run(_ argv: ArraySlice<String>) throws {
        guard let sub = argv.first, sub != "--help", sub != "-h" else { print(help); return }
        guard let spec = options[sub] else { throw CLIError("unknown group subcommand '\(sub)' (see tiefsee group --help)") }
        let a = try Args(argv.dropFirst(), spec: [OptionSpec.help, UserCommand.dbOption] + spec)
        if a.has("help") { print(help); return }
        let db = try UserDatabase(path: a.string("db") ?? UserDatabase.defaultPath, create: sub == "add")
        func args(_ n: Int, _ what: String) throws -> [String] {
            guard a.positional.count == n else { throw CLIError("group \(sub) needs \(what)") }
            return a.positional
        }
        switch sub {
        case "add":
            let g = try args(1, "a group NAME")[0]
            try db.addGroup(g)
            print("added group '\(g)'")
        case "list", "ls":
            for g in try db.groups() {
                let grants = g.grants.map { $0.kb + ($0.write ? " (write)" : "") }
                print("\(g.name)\tmembers: \(g.members.isEmpty ? "-" : g.members.joined(separator: ","))\tknowledge: \(grants.isEmpty ? "-" : grants.joined(separator: ", "))")
            }
        case "remove", "rm":
            let g = try args(1, "a group NAME")[0]
            try db.removeGroup(g)
            print("removed group '\(g)'")
        case "member":
            let p = try args(2, "GROUP USER")
            try db.setMember(group: p[0], user: p[1], member: !a.has("remove"))
            print(a.has("remove") ? "removed '\(p[1])' from '\(p[0])'" : "'\(p[1])' is a member of '\(p[0])'")
        case "grant":
            let p = try args(2, "GROUP KB")
            try db.grant(group: p[0], kb: p[1], write: a.has("write"), revoke: a.has("revoke"))
            print(a.has("revoke") ? "'\(p[0])' may no longer use knowledge base '\(p[1])'"
                                  : "'\(p[0])' may \(a.has("write") ? "read and upload into" : "read") knowledge base '\(p[1])'")
        default:
            throw CLIError("unknown group subcommand '\(sub)' (see tiefsee group --help)")
        }
    }
}

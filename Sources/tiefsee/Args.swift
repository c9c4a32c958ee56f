import Foundation
import Tiefsee

/// One command-line option, declared once: the parser, the help text and the checks of its value
/// all read this declaration, so an option cannot be listed in help and not parsed, parsed and
/// ignored, or validated differently by two commands.
struct OptionSpec {
    enum Kind {
        case flag
        case int(ClosedRange<Int>)
        case number(ClosedRange<Double>)
        case text
        case choice([String])
        /// May be given several times, each value a comma-separated list; `Args.list` joins them.
        case list
    }
    let long: String
    let short: String?
    let kind: Kind
    let value: String
    let help: String

    init(_ long: String, _ short: String? = nil, _ kind: Kind, value: String = "", help: String) {
        self.long = long; self.short = short; self.kind = kind; self.value = value; self.help = help
    }

    static let help = OptionSpec("help", "-h", .flag, help: "this help")
    /// `-t` / `--threads` means the same everywhere.
    static let threads = OptionSpec("threads", "-t", .int(1...256), value: "N", help: "worker threads (default: all cores)")

    /// The help lines of a list of options, aligned.
    static func helpText(_ specs: [OptionSpec]) -> String {
        specs.filter { $0.long != "help" }.map { o in
            var name = (o.short.map { "\($0), " } ?? "") + "--" + o.long
            if !o.value.isEmpty { name += " " + o.value }
            let pad = name.count < 24 ? String(repeating: " ", count: 24 - name.count) : "\n" + String(repeating: " ", count: 26)
            let lines = o.help.split(separator: "\n", omittingEmptySubsequences: false)
            return "  " + name + pad + lines.joined(separator: "\n" + String(repeating: " ", count: 26))
        }.joined(separator: "\n")
    }
}

/// Command-line parsing: positionals, `--flag`, `--opt VALUE` / `--opt=VALUE`, `-x VALUE`.
struct Args {
    var positional: [String] = []
    var values: [String: String] = [:]
    var lists: [String: [String]] = [:]
    var flags: Set<String> = []

    /// Parses against declared options: unknown options, missing values, values of the wrong
    /// type or out of range, and values given to flags are errors naming the option.
    init(_ argv: ArraySlice<String>, spec: [OptionSpec]) throws {
        var byName = [String: OptionSpec](), aliases = [String: String]()
        for o in spec {
            byName[o.long] = o
            if let s = o.short { aliases[s] = "--" + o.long }
        }
        let options = Set(spec.filter { if case .flag = $0.kind { return false }; return true }.map(\.long))
        let flags = Set(spec.filter { if case .flag = $0.kind { return true }; return false }.map(\.long))
        try self.init(argv, options: options, flags: flags, aliases: aliases, repeatable: Set(spec.filter {
            if case .list = $0.kind { return true }; return false }.map(\.long)))
        for (k, v) in values { try byName[k]?.check(v) }
    }

    /// `options` take a value; `flags` do not. Short aliases map to long names.
    init(_ argv: ArraySlice<String>, options: Set<String>, flags: Set<String>, aliases: [String: String] = [:],
         repeatable: Set<String> = []) throws {
        var it = argv.makeIterator()
        var onlyPositional = false
        while let a = it.next() {
            if onlyPositional || !a.hasPrefix("-") || a == "-" { positional.append(a); continue }
            if a == "--" { onlyPositional = true; continue }
            var name = a
            var inline: String? = nil
            if let eq = a.firstIndex(of: "="), a.hasPrefix("--") {
                name = String(a[..<eq]); inline = String(a[a.index(after: eq)...])
            }
            name = aliases[name] ?? name
            let key = String(name.drop(while: { $0 == "-" }))
            if flags.contains(key) {
                guard inline == nil else { throw CLIError("option \(name) takes no value") }
                self.flags.insert(key)
            } else if options.contains(key) {
                guard let v = inline ?? it.next() else { throw CLIError("option \(name) needs a value") }
                if repeatable.contains(key) {
                    lists[key, default: []] += v.split(separator: ",", omittingEmptySubsequences: true).map(String.init)
                } else if values[key] != nil {
                    throw CLIError("option \(name) given twice")
                }
                values[key] = v
            } else if Double(a) != nil {
                positional.append(a)  // a negative number
            } else {
                throw CLIError("unknown option \(a) (see --help)")
            }
        }
    }

    func has(_ f: String) -> Bool { flags.contains(f) }
    func string(_ k: String) -> String? { values[k] }
    /// Every value of a repeatable option, comma lists split (`--stop a,b --stop c` → [a, b, c]).
    func list(_ k: String) -> [String]? { lists[k] }
    func int(_ k: String) throws -> Int? {
        guard let s = values[k] else { return nil }
        guard let v = Int(s) else { throw CLIError("--\(k) expects an integer, got '\(s)'") }
        return v
    }
    /// `--threads` as every command reads it: 1…256 (an error otherwise, never clamped), and the
    /// shared pool sized to it.
    func configureThreads() throws {
        guard let v = values["threads"] else { return }
        try OptionSpec.threads.check(v)
        ThreadPool.configureShared(threads: Int(v)!)
    }
    func double(_ k: String) throws -> Double? {
        guard let s = values[k] else { return nil }
        guard let v = Double(s) else { throw CLIError("--\(k) expects a number, got '\(s)'") }
        return v
    }
}

extension OptionSpec {
    /// The value's type and range, as declared.
    func check(_ v: String) throws {
        switch kind {
        case .flag, .text, .list: return
        case .int(let r):
            guard let n = Int(v) else { throw CLIError("--\(long) expects an integer, got '\(v)'") }
            guard r.contains(n) else {
                throw CLIError(r.upperBound == Int.max ? "--\(long) must be at least \(r.lowerBound), got \(n)"
                                                       : "--\(long) must be between \(r.lowerBound) and \(r.upperBound), got \(n)")
            }
        case .number(let r):
            guard let x = Double(v), x.isFinite else { throw CLIError("--\(long) expects a number, got '\(v)'") }
            guard r.contains(x) else {
                throw CLIError(r.upperBound == .greatestFiniteMagnitude ? "--\(long) must be at least \(r.lowerBound), got \(v)"
                                                                        : "--\(long) must be between \(r.lowerBound) and \(r.upperBound), got \(v)")
            }
        case .choice(let c):
            guard c.contains(v) else { throw CLIError("--\(long) expects one of \(c.joined(separator: ", ")), got '\(v)'") }
        }
    }
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Writes to standard output without buffering surprises (streamed tokens appear at once).
func out(_ s: String) {
    FileHandle.standardOutput.write(s.data(using: .utf8)!)
}

func err(_ s: String) {
    FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}

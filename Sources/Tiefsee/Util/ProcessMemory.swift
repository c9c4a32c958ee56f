import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// This process's memory as Linux accounts it (/proc/self), for `tiefsee bench`'s memory line:
/// resident set size, its peak, and how much of it is pages of the mapped model files, i.e.
/// weights a forward pass actually touched (mapped pages count once touched, not before).
public enum ProcessMemory {
    /// Peak resident set size (VmHWM; getrusage's ru_maxrss where /proc is unavailable).
    public static var peakResidentBytes: Int {
        if let kb = statusField("VmHWM") { return kb * 1024 }
        var u = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
        return u.ru_maxrss * 1024
    }

    /// Current resident set size (VmRSS).
    public static var residentBytes: Int { (statusField("VmRSS") ?? 0) * 1024 }

    /// Starts a new peak from the current RSS (Linux ≥ 4.0: `5` → /proc/self/clear_refs), so a
    /// measurement's peak leaves out earlier, unrelated allocations. False if unsupported.
    @discardableResult
    public static func resetPeak() -> Bool {
        guard let f = fopen("/proc/self/clear_refs", "w") else { return false }
        defer { fclose(f) }
        return fputs("5", f) >= 0
    }

    /// Resident bytes of file mappings whose path starts with `prefix` (a GGUF file, or a model
    /// folder's safetensors), summed over /proc/self/smaps.
    public static func mappedResidentBytes(pathPrefix prefix: String) -> Int {
        guard let text = readProcFile("/proc/self/smaps") else { return 0 }
        var total = 0, inside = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let head = line.prefix { $0 != " " }
            if head.contains("-") && head.allSatisfy({ $0.isHexDigit || $0 == "-" }) {
                // A mapping's header: "start-end perms offset dev inode [path]".
                let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
                inside = fields.count == 6 && fields[5].trimmingCharacters(in: .whitespaces).hasPrefix(prefix)
            } else if inside, line.hasPrefix("Rss:") {
                total += (Int(line.dropFirst(4).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "") ?? 0) * 1024
            }
        }
        return total
    }

    /// The whole text of a /proc file (which reports size 0, so it is read until EOF).
    static func readProcFile(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var bytes = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A "Name:   N kB" field of /proc/self/status, in kB.
    static func statusField(_ name: String) -> Int? {
        guard let text = readProcFile("/proc/self/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            return Int(line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
        }
        return nil
    }
}

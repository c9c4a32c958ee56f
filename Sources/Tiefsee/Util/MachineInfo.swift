import Foundation

/// What a benchmark figure depends on, read from the running machine: CPU model, cores, cache
/// sizes, the kernel set chosen, and the load average when it was measured. `tiefsee bench`
/// prints it with every result so a figure can be read against the machine that produced it.
public struct MachineInfo: Sendable {
    public let cpuModel: String
    public let cores: Int
    /// Per level (1 = L1 data), the size in bytes as /sys reports it for cpu0.
    public let caches: [(level: Int, bytes: Int)]
    public let kernels: String
    public let loadAverage: Double

    public static func current() -> MachineInfo {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        var caches: [(Int, Int)] = []
        for i in 0..<8 {
            let dir = "/sys/devices/system/cpu/cpu0/cache/index\(i)/"
            guard let level = read(dir + "level").flatMap({ Int($0) }), let type = read(dir + "type"),
                  type != "Instruction", let size = read(dir + "size").flatMap(parseSize) else { continue }
            caches.append((level, size))
        }
        let load = read("/proc/loadavg")?.split(separator: " ").first.flatMap { Double($0) } ?? -1
        return MachineInfo(cpuModel: model, cores: ProcessInfo.processInfo.activeProcessorCount,
                           caches: caches, kernels: kernelInstructionSet, loadAverage: load)
    }

    /// One line: `AMD EPYC, 2 cores, L1d 32 KiB, L2 1 MiB, L3 32 MiB, kernels AVX-512 VNNI, load 0.40`.
    public var summary: String {
        let c = caches.map { "L\($0.level)\($0.level == 1 ? "d" : "") \(MachineInfo.formatSize($0.bytes))" }
        return ([cpuModel, "\(cores) cores"] + c + ["kernels \(kernels)", String(format: "load %.2f", loadAverage)])
            .joined(separator: ", ")
    }

    public var json: JSONValue {
        .object([("test", .string("machine")), ("cpu", .string(cpuModel)), ("cores", .int(cores)),
                 ("caches", .object(caches.map { ("L\($0.level)", .int($0.bytes)) })),
                 ("kernels", .string(kernels)), ("load_average", .double(loadAverage))])
    }

    static func read(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// "32K", "1024K", "32M" → bytes.
    static func parseSize(_ s: String) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        guard let last = s.last else { return nil }
        if let u = units[last] { return Int(s.dropLast()).map { $0 * u } }
        return Int(s)
    }

    static func formatSize(_ b: Int) -> String {
        b >= 1 << 20 && b % (1 << 20) == 0 ? "\(b >> 20) MiB" : "\(b >> 10) KiB"
    }
}

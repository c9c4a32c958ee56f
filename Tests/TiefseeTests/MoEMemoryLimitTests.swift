import XCTest
@testable import Tiefsee
#if canImport(Glibc)
import Glibc
#endif

/// The MoE benchmark model (scripts/gen_moe_bench_gguf.py) under a memory limit of half its file
/// size, in a cgroup (scripts/run_with_memory_limit.sh): experts are paged in from the mapping
/// and dropped again, and greedy generation must give the same tokens as without the limit,
/// with and without a resident expert set. Skipped (visibly) when the model file is absent or
/// memory cgroups cannot be created here (CI: neither).
final class MoEMemoryLimitTests: XCTestCase {
    /// Where scripts/gen_moe_bench_gguf.py writes (~/.cache/tiefsee/bench, or $TIEFSEE_HOME/bench).
    static var benchDirectory: String { ModelCache.home + "/bench" }

    /// TIEFSEE_MOE_BENCH_MODEL, else the Q4_K_M benchmark file, else the Q8_0 one.
    func requireBenchModel() throws -> String {
        let candidates = [ProcessInfo.processInfo.environment["TIEFSEE_MOE_BENCH_MODEL"],
                          Self.benchDirectory + "/moe-bench-v2lite-q4_k_m.gguf",
                          Self.benchDirectory + "/moe-bench-v2lite-q8_0.gguf"].compactMap { $0 }
        guard let p = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            print("SKIP: no MoE benchmark model in \(Self.benchDirectory); run scripts/gen_moe_bench_gguf.py --q4")
            throw XCTSkip("MoE benchmark model not found in \(Self.benchDirectory) (scripts/gen_moe_bench_gguf.py)")
        }
        return p
    }

    /// Memory cgroups this process may create: root, and a writable v2 hierarchy or v1 memory controller.
    func requireWritableCgroups() throws {
        let v2 = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers")
        let dir = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory"
        guard geteuid() == 0, access(dir, W_OK) == 0 else {
            print("SKIP: memory cgroups not writable here (\(dir))")
            throw XCTSkip("memory cgroups not writable (\(dir)); needs root and a writable cgroup hierarchy")
        }
    }

    struct Generation {
        let ids: [Int]
        let tokensPerSecond: Double
        let peakBytes: Int?
    }

    /// 64 greedy tokens, optionally inside a cgroup limited to `limit` bytes.
    func generate(_ model: String, limit: Int?, extra: [String] = []) throws -> Generation {
        let exe = try requireTiefseeExecutable()
        let run = [exe, "run", model, "-p", "The history of the city", "--raw", "-n", "64", "--temp", "0", "--ids", "--verbose"] + extra
        let r: ProcessOutput
        if let limit = limit {
            r = try runProcess("/bin/sh", [repoRoot + "/scripts/run_with_memory_limit.sh", String(limit), "--drop", model, "--"] + run)
            if r.status == 77 {
                print("SKIP: \(r.stderr)")
                throw XCTSkip("no memory cgroup: \(r.stderr)")
            }
        } else {
            r = try runProcess(run[0], Array(run.dropFirst()))
        }
        XCTAssertEqual(r.status, 0, "exit \(r.status) (137: killed by the memory limit); stderr: \(r.stderr)")
        let idLine = r.stdout.split(separator: "\n").last { $0.hasPrefix("ids: ") } ?? ""
        let ids = idLine.dropFirst(5).split(separator: ",").compactMap { Int($0) }
        // "… | generated: 64 tokens, 5.9 tokens/s | …"
        let speed = r.stderr.components(separatedBy: "generated: ").dropFirst().first?
            .split(separator: ",").dropFirst().first.flatMap { Double($0.trimmingCharacters(in: .whitespaces).split(separator: " ")[0]) } ?? 0
        let peak = r.stderr.split(separator: "\n").last { $0.hasPrefix("peak_bytes=") }.flatMap { Int($0.dropFirst(11)) }
        return Generation(ids: ids, tokensPerSecond: speed, peakBytes: peak)
    }

    func testHalfFileSizeLimitGivesTheSameTokens() throws {
        let model = try requireBenchModel()
        try requireWritableCgroups()
        let size = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: model)[.size] as? Int)
        let limit = size / 2
        let free = try generate(model, limit: nil)
        XCTAssertEqual(free.ids.count, 64)
        let limited = try generate(model, limit: limit)
        XCTAssertEqual(limited.ids, free.ids, "tokens under a \(limit)-byte limit")
        if let peak = limited.peakBytes {
            // Reaching the limit shows the file's pages were read again and charged to the cgroup
            // (pages left cached from an earlier run would have been used uncharged).
            XCTAssertLessThanOrEqual(peak, limit)
            XCTAssertGreaterThan(peak, limit / 10 * 9, "the limit was never reached: peak \(peak) of \(limit) bytes")
        }
        let cached = try generate(model, limit: limit, extra: ["--expert-cache-mb", String(limit >> 22)])
        XCTAssertEqual(cached.ids, free.ids, "tokens under the limit with resident experts")
        print(String(format: "%@: 64 tokens, no limit %.1f tokens/s; limit %d MiB (half the file): %.1f tokens/s, "
                     + "with --expert-cache-mb %d %.1f tokens/s",
                     URL(fileURLWithPath: model).lastPathComponent, free.tokensPerSecond, limit >> 20,
                     limited.tokensPerSecond, limit >> 22, cached.tokensPerSecond))
    }
}

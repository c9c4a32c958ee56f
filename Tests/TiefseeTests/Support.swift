import Foundation
import XCTest
@testable import Tiefsee

/// Repository root, found from this file's location (tests read committed fixtures from it).
let repoRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

func fixturePath(_ relative: String) -> String { repoRoot + "/fixtures/" + relative }

/// The real default model, or a visible skip when it has not been fetched
/// (`scripts/fetch-model.sh`; `.ci/run` always fetches it).
func requireDefaultModel() throws -> String {
    let p = ModelCache.defaultModelPath
    guard FileManager.default.fileExists(atPath: p) else {
        print("SKIP: default model not found at \(p); run scripts/fetch-model.sh")
        throw XCTSkip("default model not found at \(p); run scripts/fetch-model.sh")
    }
    return p
}

/// Deterministic random numbers (SplitMix64) so failing fuzz and kernel tests reproduce.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The `tiefsee` executable built next to the tests (same configuration), or a visible skip.
func requireTiefseeExecutable() throws -> String {
    let dir = URL(fileURLWithPath: CommandLine.arguments.first { $0.contains(".xctest") } ?? CommandLine.arguments[0])
        .resolvingSymlinksInPath().deletingLastPathComponent().path
    for candidate in [dir + "/tiefsee", repoRoot + "/.build/debug/tiefsee"] where FileManager.default.isExecutableFile(atPath: candidate) {
        return candidate
    }
    print("SKIP: tiefsee executable not found next to the tests (swift build --build-tests builds it)")
    throw XCTSkip("tiefsee executable not found")
}

struct ProcessOutput {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs a program to completion, collecting both output streams. stdin is written and stderr
/// read on their own threads, so no pipe can fill up and stall the child (reading stdout to the
/// end before stderr deadlocks once the child writes more than a pipe's 64 KiB to stderr).
func runProcess(_ executable: String, _ args: [String], stdin: String? = nil,
                env: [String: String] = [:]) throws -> ProcessOutput {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    if !env.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 } }
    let o = Pipe(), e = Pipe(), i = Pipe()
    p.standardOutput = o; p.standardError = e; p.standardInput = i
    try p.run()
    final class Box: @unchecked Sendable { var data = Data() }
    let err = Box()
    let group = DispatchGroup()
    DispatchQueue.global().async(group: group) { err.data = e.fileHandleForReading.readDataToEndOfFile() }
    let input = stdin.map { Data($0.utf8) } ?? Data()
    DispatchQueue.global().async(group: group) {
        if !input.isEmpty { try? i.fileHandleForWriting.write(contentsOf: input) }
        try? i.fileHandleForWriting.close()
    }
    let outData = o.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    return ProcessOutput(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: err.data, as: UTF8.self))
}

/// Runs the `tiefsee` executable built next to the tests (or skips visibly when it is absent).
func runTiefseeCLI(_ args: [String], stdin: String? = nil, env: [String: String] = [:]) throws -> ProcessOutput {
    try runProcess(try requireTiefseeExecutable(), args, stdin: stdin, env: env)
}

/// Largest |a[i] - b[i]| over the first b.count values.
func maxAbsDiff(_ a: UnsafePointer<Float>, _ b: [Float]) -> Float {
    var worst: Float = 0
    for i in 0..<b.count { worst = max(worst, abs(a[i] - b[i])) }
    return worst
}

/// Compares two tensors like llm.c's `check_tensor`: fails with the largest difference, where it
/// is and the values there (not just "not equal"), so a failing parity test says how far off it is.
/// A NaN anywhere fails.
func assertClose(_ actual: UnsafePointer<Float>, _ expected: [Float], tolerance: Float, _ label: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    var worst: Float = 0, at = 0
    for i in 0..<expected.count {
        let d = abs(actual[i] - expected[i])
        if d.isNaN { XCTFail("\(label): NaN at [\(i)] (actual \(actual[i]), expected \(expected[i]))", file: file, line: line); return }
        if d > worst { worst = d; at = i }
    }
    if worst > tolerance {
        XCTFail("\(label): max abs diff \(worst) > \(tolerance) at [\(at)] of \(expected.count): actual \(actual[at]), expected \(expected[at])",
                file: file, line: line)
    }
}

func assertClose(_ actual: [Float], _ expected: [Float], tolerance: Float, _ label: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "\(label): sizes differ", file: file, line: line)
    guard actual.count == expected.count else { return }
    actual.withUnsafeBufferPointer { assertClose($0.baseAddress!, expected, tolerance: tolerance, label, file: file, line: line) }
}

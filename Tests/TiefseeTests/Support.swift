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

/// Runs a program to completion, collecting both output streams (stderr on its own thread, so
/// neither pipe can fill up and stall the child).
func runProcess(_ executable: String, _ args: [String]) throws -> ProcessOutput {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    let o = Pipe(), e = Pipe()
    p.standardOutput = o; p.standardError = e
    try p.run()
    final class Box: @unchecked Sendable { var data = Data() }
    let err = Box()
    let done = DispatchSemaphore(value: 0)
    DispatchQueue.global().async { err.data = e.fileHandleForReading.readDataToEndOfFile(); done.signal() }
    let outData = o.fileHandleForReading.readDataToEndOfFile()
    done.wait()
    p.waitUntilExit()
    return ProcessOutput(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: err.data, as: UTF8.self))
}

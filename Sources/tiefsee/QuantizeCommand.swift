import Foundation
import Tiefsee

enum QuantizeCommand {
    static let help = """
    usage: tiefsee quantize IN OUT.gguf --type Q8_0|Q4_K_M|Q5_K_M|Q6_K [--quiet]

    Converts a Hugging Face model folder (f32/f16/bf16/FP8 safetensors) or a GGUF into a GGUF
    with llama.cpp's tensor names, metadata and block layouts. Mixes follow llama-quantize:
    1-D tensors (norms, biases) and the MoE router stay F32; the output head (or tied token
    embedding) is Q6_K in the K mixes; Q4_K_M/Q5_K_M give attn_v and ffn_down Q6_K on some
    layers; rows whose length is not a multiple of 256 fall back to Q5_0/Q5_1/Q8_0.
    Tensors are streamed one by one: memory stays around one tensor (or one expert) in f32.
    """

    static func run(_ argv: ArraySlice<String>) throws {
        let a = try Args(argv, options: ["type"], flags: ["help", "quiet"], aliases: ["-h": "--help"])
        if a.has("help") { print(help); return }
        guard a.positional.count == 2 else { throw CLIError("expected IN and OUT (see --help)") }
        guard let tn = a.string("type") else { throw CLIError("missing --type (Q8_0, Q4_K_M, Q5_K_M or Q6_K)") }
        guard let scheme = QuantizationScheme(name: tn) else {
            throw CLIError("unknown --type '\(tn)' (supported: \(QuantizationScheme.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let start = Date()
        let quiet = a.has("quiet")
        var lastDraw = Date.distantPast
        func fmt(_ b: Int) -> String {
            let d = Double(b)
            if d >= 1e9 { return String(format: "%.2f GB", d / 1e9) }
            if d >= 1e6 { return String(format: "%.1f MB", d / 1e6) }
            return String(format: "%.0f kB", d / 1e3)
        }
        let plan = try quantizeModel(input: a.positional[0], output: a.positional[1], scheme: scheme) { i, n, done, total, name in
            guard !quiet else { return }
            let now = Date()
            guard i == n || now.timeIntervalSince(lastDraw) > 0.2 else { return }
            lastDraw = now
            let el = now.timeIntervalSince(start)
            let eta = done > 0 ? el * Double(total - done) / Double(done) : 0
            let width = 24, filled = total > 0 ? width * done / total : width
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let line = String(format: "[%@] %d/%d  %@ / %@  ETA %.0fs  %@", bar, i, n, fmt(done), fmt(total), eta, name)
            FileHandle.standardError.write(("\r\u{1B}[K" + line).data(using: .utf8)!)
            if i == n { FileHandle.standardError.write("\n".data(using: .utf8)!) }
        }
        var counts = [String: Int]()
        for t in plan.tensors { counts[t.type.rawValue, default: 0] += 1 }
        let mix = counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        err("wrote \(a.positional[1]): \(plan.tensors.count) tensors (\(mix)), \(scheme.rawValue), \(String(format: "%.1f", Date().timeIntervalSince(start)))s")
        if !plan.unused.isEmpty {
            err("note: \(plan.unused.count) source tensors not converted: \(plan.unused.prefix(5).joined(separator: ", "))\(plan.unused.count > 5 ? ", …" : "")")
        }
    }
}

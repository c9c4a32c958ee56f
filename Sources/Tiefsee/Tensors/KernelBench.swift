import Foundation
import CKernels

/// Time per weight block of the quantized kernels (`tiefsee bench --kernels`), one thread, on a
/// matrix of random rows with valid scales: the row path (`dotRows`, decode), the row kernels
/// with 2 activation rows (a decode step of 2 sequences), the packed matrix kernel with 8
/// activation rows and the panel kernel with 8 and 64 (prefill, batched decode of 5+), for each
/// instruction set the CPU has.
public struct KernelTiming: Sendable {
    public let type: TensorType
    public let isa: String
    /// Nanoseconds per weight block dotted with one activation row.
    public let rowNsPerBlock: Double
    /// Nanoseconds per weight block dotted with 2 activation rows at once (`tf_vec_dot_rows_n`).
    public let rows2NsPerBlock: Double
    /// Nanoseconds per weight block multiplied with 8 activation rows (all 8 together).
    public let batch8NsPerBlock: Double
    /// The panel kernel (`tf_gemm_q8a`, prompt chunks and expert passes), per weight block and
    /// token, with 8 and with 64 activation rows; nil for a type it does not take (Q2_K).
    public let panel8NsPerToken: Double?
    public let panel64NsPerToken: Double?
}

public enum KernelBench {
    /// Every quantized weight type with an integer kernel.
    public static var types: [TensorType] { quantDotTypes.filter(\.isQuantized) }

    /// Random blocks of `type` with finite scales (the f16 fields set to small values; IQ1_M's d
    /// spread over its scale words, MXFP4's exponent kept in range), so no NaN or subnormal float
    /// work skews the timing.
    public static func randomRows(_ type: TensorType, n: Int, rows: Int, seed: UInt64 = 1) -> [UInt8] {
        var rng = SeededGenerator(seed: seed)
        var b = (0..<type.byteCount(elements: n * rows)!).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let fields: [Int]
        switch type {
        case .q4_0, .q5_0, .q8_0, .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq1_s, .iq4_xs, .iq4_nl: fields = [0]
        case .q4_1, .q5_1, .q4_K, .q5_K: fields = [0, 2]
        case .q6_K: fields = [208]
        case .q2_K: fields = [80, 82]
        case .q3_K: fields = [108]
        case .tq1_0: fields = [52]
        case .tq2_0: fields = [64]
        default: fields = []
        }
        let h = f32ToF16(0.01)
        for blk in 0..<(n * rows / type.blockSize) {
            let o = blk * type.blockBytes
            for f in fields { b[o + f] = UInt8(h & 0xFF); b[o + f + 1] = UInt8(h >> 8) }
            if type == .iq1_m { for k in 0..<4 { b[o + 49 + 2 * k] = b[o + 49 + 2 * k] & 0x0F | UInt8((h >> (4 * k)) & 0xF) << 4 } }
            if type == .mxfp4 { b[o] = 120 }
        }
        return b
    }

    /// The instruction sets to measure: AVX2, and AVX-512 VNNI where the CPU has it.
    public static var instructionSets: [(name: String, code: Int32)] {
        let saved = tf_kernel_isa()
        defer { _ = tf_set_kernel_isa(saved) }
        var out = [("AVX2", Int32(TF_ISA_AVX2))]
        _ = tf_set_kernel_isa(Int32(TF_ISA_AVX512_VNNI))
        if tf_kernel_isa() == TF_ISA_AVX512_VNNI { out.append(("AVX-512 VNNI", Int32(TF_ISA_AVX512_VNNI))) }
        return out
    }

    /// Best of `reps` runs of `body`, in seconds.
    static func best(_ reps: Int, _ body: () -> Void) -> Double {
        body()   // warm-up: caches, page faults
        var t = Double.infinity
        for _ in 0..<reps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            t = min(t, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return t
    }

    /// Measures `type` on a rows × n matrix (n a multiple of 256).
    public static func measure(_ type: TensorType, n: Int = 2048, rows: Int = 1024, reps: Int = 5) -> [KernelTiming] {
        let w = randomRows(type, n: n, rows: rows)
        var rng = SeededGenerator(seed: 2)
        let ntok = 8, panelTokens = 64
        let x = (0..<panelTokens * n).map { _ in Float(Double(rng.next() % 20001) / 10000 - 1) }
        let aBytes = ActivationQuant.q8_0.byteCount(elements: n), rowBytes = type.byteCount(elements: n)!
        var xq = [UInt8](repeating: 0, count: panelTokens * aBytes)
        x.withUnsafeBufferPointer { xp in
            xq.withUnsafeMutableBytes { q in
                for t in 0..<panelTokens { quantizeActivations(xp.baseAddress! + t * n, count: n, format: .q8_0, into: q.baseAddress! + t * aBytes) }
            }
        }
        let packed = UnsafeMutableRawPointer.allocate(byteCount: tf_gemm_pack_bytes(Int32(n), Int32(ntok)), alignment: 64)
        defer { packed.deallocate() }
        xq.withUnsafeBytes { tf_gemm_pack(Int32(n), $0.baseAddress!, aBytes, Int32(ntok), packed) }
        var sums = [Int32](repeating: 0, count: tf_gemm_q8a_sums_bytes(Int32(n), Int32(panelTokens)) / 4)
        xq.withUnsafeBytes { tf_gemm_q8a_sums(Int32(n), $0.baseAddress!, aBytes, Int32(panelTokens), &sums) }
        var out = [Float](repeating: 0, count: panelTokens * rows)
        let blocks = Double(rows * n / type.blockSize), code = Int32(type.ggmlID!)
        let saved = tf_kernel_isa()
        defer { _ = tf_set_kernel_isa(saved) }
        return instructionSets.map { isa in
            _ = tf_set_kernel_isa(isa.code)
            return w.withUnsafeBytes { wp in
                xq.withUnsafeBytes { xp in
                    out.withUnsafeMutableBufferPointer { o in
                        let row = best(reps) {
                            _ = tf_vec_dot_rows(code, Int32(n), Int32(rows), wp.baseAddress!, rowBytes, xp.baseAddress!, o.baseAddress!)
                        }
                        let rows2 = best(reps) {
                            _ = tf_vec_dot_rows_n(code, Int32(n), Int32(rows), wp.baseAddress!, rowBytes, xp.baseAddress!, aBytes, 2,
                                                  o.baseAddress!, rows)
                        }
                        let batch = best(reps) {
                            _ = tf_gemm_packed(code, Int32(n), Int32(rows), wp.baseAddress!, rowBytes, packed, Int32(ntok), o.baseAddress!, rows)
                        }
                        func panel(_ t: Int) -> Double? {
                            guard tf_gemm_q8a_supports(code) != 0 else { return nil }
                            return best(reps) {
                                _ = tf_gemm_q8a(code, Int32(n), Int32(rows), wp.baseAddress!, rowBytes, xp.baseAddress!, aBytes, sums,
                                                Int32(t), o.baseAddress!, rows)
                            } * 1e9 / blocks / Double(t)
                        }
                        return KernelTiming(type: type, isa: isa.name, rowNsPerBlock: row * 1e9 / blocks,
                                            rows2NsPerBlock: rows2 * 1e9 / blocks, batch8NsPerBlock: batch * 1e9 / blocks,
                                            panel8NsPerToken: panel(ntok), panel64NsPerToken: panel(panelTokens))
                    }
                }
            }
        }
    }
}

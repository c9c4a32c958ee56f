/// Storage type of a weight tensor, across GGUF (ggml type ids) and safetensors (dtype names).
/// Quantized types are stored in blocks: `blockSize` elements in `blockBytes` bytes.
public enum TensorType: String, CaseIterable, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
    case f8e4m3 = "F8_E4M3"
    case i8 = "I8", i16 = "I16", i32 = "I32", i64 = "I64", u8 = "U8", bool = "BOOL"
    case q4_0 = "Q4_0", q4_1 = "Q4_1", q5_0 = "Q5_0", q5_1 = "Q5_1", q8_0 = "Q8_0", q8_1 = "Q8_1"
    case q2_K = "Q2_K", q3_K = "Q3_K", q4_K = "Q4_K", q5_K = "Q5_K", q6_K = "Q6_K", q8_K = "Q8_K"
    case iq2_xxs = "IQ2_XXS", iq2_xs = "IQ2_XS", iq3_xxs = "IQ3_XXS", iq1_s = "IQ1_S"
    case iq4_nl = "IQ4_NL", iq3_s = "IQ3_S", iq2_s = "IQ2_S", iq4_xs = "IQ4_XS", iq1_m = "IQ1_M"
    case tq1_0 = "TQ1_0", tq2_0 = "TQ2_0", mxfp4 = "MXFP4"

    /// ggml's type ids as written in GGUF tensor infos (ggml.h `enum ggml_type`).
    public var ggmlID: UInt32? {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q5_0: return 6
        case .q5_1: return 7
        case .q8_0: return 8
        case .q8_1: return 9
        case .q2_K: return 10
        case .q3_K: return 11
        case .q4_K: return 12
        case .q5_K: return 13
        case .q6_K: return 14
        case .q8_K: return 15
        case .iq2_xxs: return 16
        case .iq2_xs: return 17
        case .iq3_xxs: return 18
        case .iq1_s: return 19
        case .iq4_nl: return 20
        case .iq3_s: return 21
        case .iq2_s: return 22
        case .iq4_xs: return 23
        case .i8: return 24
        case .i16: return 25
        case .i32: return 26
        case .i64: return 27
        case .f64: return 28
        case .iq1_m: return 29
        case .bf16: return 30
        case .tq1_0: return 34
        case .tq2_0: return 35
        case .mxfp4: return 39
        case .f8e4m3, .u8, .bool: return nil
        }
    }

    public init?(ggmlID: UInt32) {
        guard let t = TensorType.allCases.first(where: { $0.ggmlID == ggmlID }) else { return nil }
        self = t
    }

    public init?(safetensorsDtype s: String) {
        switch s {
        case "F32": self = .f32
        case "F16": self = .f16
        case "BF16": self = .bf16
        case "F64": self = .f64
        case "F8_E4M3": self = .f8e4m3
        case "I8": self = .i8
        case "I16": self = .i16
        case "I32": self = .i32
        case "I64": self = .i64
        case "U8": self = .u8
        case "BOOL": self = .bool
        default: return nil
        }
    }

    /// Elements per block (1 for plain types).
    public var blockSize: Int {
        switch self {
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_nl, .mxfp4: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K, .iq2_xxs, .iq2_xs, .iq3_xxs, .iq1_s,
             .iq3_s, .iq2_s, .iq4_xs, .iq1_m, .tq1_0, .tq2_0: return 256
        default: return 1
        }
    }

    /// Bytes per block, from llama.cpp's block structs (ggml-common.h).
    public var blockBytes: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .f64, .i64: return 8
        case .f8e4m3, .i8, .u8, .bool: return 1
        case .q4_0: return 18      // f16 d + 16 bytes of nibbles
        case .q4_1: return 20      // f16 d, f16 m + 16 bytes
        case .q5_0: return 22      // f16 d + u32 high bits + 16 bytes
        case .q5_1: return 24      // f16 d, f16 m + u32 + 16 bytes
        case .q8_0: return 34      // f16 d + 32 int8
        case .q8_1: return 36      // f16 d, f16 s + 32 int8
        case .q2_K: return 84
        case .q3_K: return 110
        case .q4_K: return 144     // f16 d, f16 dmin, 12 bytes scales, 128 bytes nibbles
        case .q5_K: return 176
        case .q6_K: return 210     // 128 low nibbles, 64 high bits, 16 int8 scales, f16 d
        case .q8_K: return 292
        case .iq2_xxs: return 66
        case .iq2_xs: return 74
        case .iq3_xxs: return 98
        case .iq1_s: return 50
        case .iq4_nl: return 18
        case .iq3_s: return 110
        case .iq2_s: return 82
        case .iq4_xs: return 136
        case .iq1_m: return 56
        case .tq1_0: return 54
        case .tq2_0: return 66
        case .mxfp4: return 17     // E8M0 scale + 16 bytes of e2m1 nibbles
        }
    }

    public var isQuantized: Bool { blockSize > 1 }

    /// Storage bits per weight, scales included (Q4_K 4.5, IQ2_XXS 2.0625, IQ1_S 1.5625).
    public var bitsPerWeight: Double { Double(blockBytes * 8) / Double(blockSize) }

    /// Bytes for `count` elements, or nil if `count` is not a whole number of blocks or overflows.
    public func byteCount(elements count: Int) -> Int? {
        guard count >= 0, count % blockSize == 0 else { return nil }
        let (r, o) = (count / blockSize).multipliedReportingOverflow(by: blockBytes)
        return o ? nil : r
    }
}

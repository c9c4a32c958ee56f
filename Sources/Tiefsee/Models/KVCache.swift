import Foundation
import CKernels

/// How cached keys or values are stored (`--cache-type-k/-v`, as llama.cpp's flags): f32, or
/// f16 / q8_0 / q4_0 to hold longer contexts in the same memory (and read fewer bytes per
/// step). q8_0 and q4_0 quantize each position's row in blocks of 32 values, so the row width
/// (a head for grouped-query attention, the whole latent row for MLA) must be a multiple of 32.
public enum KVCacheType: String, CaseIterable, Sendable {
    case f32, f16, q8_0, q4_0

    /// GGML type id, which the C kernels take.
    var ggmlID: Int32 { switch self { case .f32: 0; case .f16: 1; case .q8_0: 8; case .q4_0: 2 } }
    var blockSize: Int { self == .q8_0 || self == .q4_0 ? 32 : 1 }

    public func rowBytes(_ width: Int) -> Int {
        switch self {
        case .f32: return width * 4
        case .f16: return width * 2
        case .q8_0: return width / 32 * 34
        case .q4_0: return width / 32 * 18
        }
    }

    public static func parse(_ s: String) throws -> KVCacheType {
        guard let t = KVCacheType(rawValue: s.lowercased()) else {
            throw KVCacheTypeError(message: "cache type must be one of \(allCases.map(\.rawValue).joined(separator: ", ")), got '\(s)'")
        }
        return t
    }
}

public struct KVCacheTypeError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Keys and values of every processed position, allocated once for the whole context.
/// Standard attention stores K and V per KV head; MLA stores only its compressed latent and
/// the shared rope key (see DeepSeek.swift), so `kWidth`/`vWidth` depend on the layer kind.
/// Rows are stored as `keyType`/`valueType`; attention reads them through `keyRow`/`valueRow`
/// (f32 caches also through `keys[l].p` directly).
public class KVCache: @unchecked Sendable {
    public let capacity: Int
    public let kWidth: Int
    public let vWidth: Int
    public let keyType: KVCacheType
    public let valueType: KVCacheType
    public let keyRowBytes: Int
    public let valueRowBytes: Int
    /// Per layer storage (capacity × row bytes); for f32 caches these are the floats themselves.
    public let keys: [FloatBuffer]
    public let values: [FloatBuffer]
    /// Positions already filled.
    public internal(set) var length = 0
    /// Set by an MTP drafter: receives the main model's last-layer output of every row computed
    /// into this cache (MultiTokenPrediction.swift).
    public var hiddenTap: HiddenStateTap?

    public init(layers: Int, capacity: Int, kWidth: Int, vWidth: Int, keyType: KVCacheType = .f32, valueType: KVCacheType = .f32) {
        precondition(kWidth % keyType.blockSize == 0 && vWidth % valueType.blockSize == 0,
                     "cache rows of \(kWidth)/\(vWidth) values cannot be stored as \(keyType)/\(valueType)")
        self.capacity = capacity
        self.kWidth = kWidth
        self.vWidth = vWidth
        self.keyType = keyType
        self.valueType = valueType
        keyRowBytes = keyType.rowBytes(kWidth)
        valueRowBytes = valueType.rowBytes(vWidth)
        let kr = keyRowBytes, vr = valueRowBytes
        keys = (0..<layers).map { _ in FloatBuffer(count: (capacity * kr + 3) / 4, zeroed: false) }
        values = (0..<layers).map { _ in FloatBuffer(count: (capacity * vr + 3) / 4, zeroed: false) }
    }

    public var bytes: Int { keys.count * capacity * (keyRowBytes + valueRowBytes) }
    public final var isF32: Bool { keyType == .f32 && valueType == .f32 }

    /// Forget positions from `position` on (used to reuse a shared prefix, or reset).
    public func truncate(to position: Int) { length = max(0, min(length, position)) }

    /// Whether `truncate` can cut back to any earlier position. Caches that fold positions
    /// away (DeepSeek-V4's sliding windows and compressed entries) can only keep everything
    /// they hold or start again (callers then re-read the prefix), or take back the newest
    /// positions of their last step (`takeBackLimit`).
    public var canRewind: Bool { true }

    /// How many of the newest positions `truncate` can take back right after a step, which is
    /// what speculative decoding needs for rejected drafts (a step of 1 + d tokens takes back
    /// at most d): any number for a cache that can rewind; for DeepSeek-V4's, the positions of
    /// a last step of at most this many tokens. Drafts are capped to `takeBackLimit - 1`.
    public var takeBackLimit: Int { canRewind ? Int.max : 0 }

    /// Whether a step of 1 + draft tokens can be cut back after verification: what every drafter
    /// (prompt lookup, a draft model, an MTP layer) needs of the target's cache.
    public final var takesDrafts: Bool { takeBackLimit > 1 }

    /// Whether `truncate(to: position)` is possible now.
    public func canTruncate(to position: Int) -> Bool { canRewind || position >= length || position <= 0 }

    /// The longest prefix of at most `position` positions this cache can be cut back to.
    public final func reusablePrefix(_ position: Int) -> Int {
        let p = max(0, min(length, position))
        return canRewind || p == length ? p : 0
    }

    @inline(__always) public final func keyRow(_ layer: Int, _ pos: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(keys[layer].p) + pos * keyRowBytes
    }
    @inline(__always) public final func valueRow(_ layer: Int, _ pos: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(values[layer].p) + pos * valueRowBytes
    }

    /// Stores a position's key row (kWidth floats) in the cache's type.
    public final func storeKey(_ layer: Int, _ pos: Int, _ src: UnsafePointer<Float>) {
        KVCache.store(keyType, src, keyRow(layer, pos), kWidth)
    }
    public final func storeValue(_ layer: Int, _ pos: Int, _ src: UnsafePointer<Float>) {
        KVCache.store(valueType, src, valueRow(layer, pos), vWidth)
    }

    /// Key rows `range` of a layer as floats (rows after one another, kWidth each).
    public final func readKeys(_ layer: Int, _ range: Range<Int>, into dst: UnsafeMutablePointer<Float>) {
        for (i, pos) in range.enumerated() { KVCache.load(keyType, keyRow(layer, pos), dst + i * kWidth, kWidth) }
    }

    /// Value rows `range` of a layer as floats (vWidth each).
    public func readValues(_ layer: Int, _ range: Range<Int>, into dst: UnsafeMutablePointer<Float>) {
        for (i, pos) in range.enumerated() { KVCache.load(valueType, valueRow(layer, pos), dst + i * vWidth, vWidth) }
    }

    static func store(_ t: KVCacheType, _ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, _ n: Int) {
        switch t {
        case .f32: dst.assumingMemoryBound(to: Float.self).update(from: src, count: n)
        case .f16: tf_f32_to_f16_row(src, dst.assumingMemoryBound(to: UInt16.self), Int64(n))
        case .q8_0: tf_quantize_q8_0(src, dst, Int64(n))
        case .q4_0: tf_quantize_q4_0(src, dst, Int64(n))
        }
    }

    static func load(_ t: KVCacheType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        switch t {
        case .f32: dst.update(from: src.assumingMemoryBound(to: Float.self), count: n)
        case .f16: tf_dequant_f16(src, dst, Int64(n))
        case .q8_0: tf_dequant_q8_0(src, dst, Int64(n))
        case .q4_0: tf_dequant_q4_0(src, dst, Int64(n))
        }
    }

    /// A copy of the first positions of every layer, in the cache's own types (the server's
    /// prompt cache keeps these).
    public struct Snapshot: Sendable {
        public let count: Int
        let keys: [[UInt8]]
        let values: [[UInt8]]
        public var bytes: Int { keys.reduce(0) { $0 + $1.count } + values.reduce(0) { $0 + $1.count } }
    }

    public func snapshotBytes(count n: Int) -> Int { keys.count * n * (keyRowBytes + valueRowBytes) }

    public func snapshot(count n: Int) -> Snapshot {
        precondition(n <= length, "snapshot of \(n) positions from a cache holding \(length)")
        func copy(_ b: FloatBuffer, _ bytes: Int) -> [UInt8] {
            Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(b.p), count: bytes))
        }
        return Snapshot(count: n, keys: keys.map { copy($0, n * keyRowBytes) }, values: values.map { copy($0, n * valueRowBytes) })
    }

    /// Replaces the cache's content by the first `n` positions of `s` (taken from a cache of
    /// the same shape and types).
    public func restore(_ s: Snapshot, count n: Int) {
        precondition(n <= s.count && n <= capacity && s.keys.count == keys.count, "snapshot does not fit this cache")
        for l in keys.indices where n > 0 {
            s.keys[l].withUnsafeBytes { UnsafeMutableRawPointer(keys[l].p).copyMemory(from: $0.baseAddress!, byteCount: n * keyRowBytes) }
            if valueRowBytes > 0 {
                s.values[l].withUnsafeBytes { UnsafeMutableRawPointer(values[l].p).copyMemory(from: $0.baseAddress!, byteCount: n * valueRowBytes) }
            }
        }
        length = n
    }
}

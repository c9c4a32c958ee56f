/// Keys and values of every processed position, allocated once for the whole context.
/// Standard attention stores K and V per KV head; MLA stores only its compressed latent and
/// the shared rope key (see DeepSeek.swift), so `kWidth`/`vWidth` depend on the layer kind.
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public let kWidth: Int
    public let vWidth: Int
    public let keys: [FloatBuffer]
    public let values: [FloatBuffer]
    /// Positions already filled.
    public internal(set) var length = 0

    public init(layers: Int, capacity: Int, kWidth: Int, vWidth: Int) {
        self.capacity = capacity
        self.kWidth = kWidth
        self.vWidth = vWidth
        keys = (0..<layers).map { _ in FloatBuffer(count: capacity * kWidth, zeroed: false) }
        values = (0..<layers).map { _ in FloatBuffer(count: capacity * vWidth, zeroed: false) }
    }

    public var bytes: Int { keys.count * capacity * (kWidth + vWidth) * 4 }

    /// Forget positions from `position` on (used to reuse a shared prefix, or reset).
    public func truncate(to position: Int) { length = max(0, min(length, position)) }

    /// A copy of the first positions of every layer (the server's prompt cache keeps these).
    public struct Snapshot: Sendable {
        public let count: Int
        let keys: [[Float]]
        let values: [[Float]]
        public var bytes: Int { keys.reduce(0) { $0 + $1.count * 4 } + values.reduce(0) { $0 + $1.count * 4 } }
    }

    public func snapshotBytes(count n: Int) -> Int { keys.count * n * (kWidth + vWidth) * 4 }

    public func snapshot(count n: Int) -> Snapshot {
        precondition(n <= length, "snapshot of \(n) positions from a cache holding \(length)")
        return Snapshot(count: n,
                        keys: keys.map { Array(UnsafeBufferPointer(start: $0.p, count: n * kWidth)) },
                        values: values.map { Array(UnsafeBufferPointer(start: $0.p, count: n * vWidth)) })
    }

    /// Replaces the cache's content by the first `n` positions of `s`.
    public func restore(_ s: Snapshot, count n: Int) {
        precondition(n <= s.count && n <= capacity && s.keys.count == keys.count, "snapshot does not fit this cache")
        for l in keys.indices where n > 0 {
            s.keys[l].withUnsafeBufferPointer { keys[l].p.update(from: $0.baseAddress!, count: n * kWidth) }
            if vWidth > 0 { s.values[l].withUnsafeBufferPointer { values[l].p.update(from: $0.baseAddress!, count: n * vWidth) } }
        }
        length = n
    }
}

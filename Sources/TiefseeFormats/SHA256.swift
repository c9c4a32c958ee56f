import CKernels

/// SHA-256 (FIPS 180-4). Foundation on Linux has no CryptoKit and the package takes no
/// dependencies, so this is our own: message buffering and padding here, the block
/// compression in C (`tf_sha256_blocks`) so hashing gigabytes stays fast in debug builds.
public struct SHA256 {
    private var state: [UInt32] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]
    private var buffer: [UInt8] = []   // < 64 pending bytes
    private var length: UInt64 = 0     // total bytes

    public init() { buffer.reserveCapacity(64) }

    public mutating func update(_ data: UnsafeRawBufferPointer) {
        guard var p = data.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        var n = data.count
        length &+= UInt64(n)
        if !buffer.isEmpty {
            let take = min(64 - buffer.count, n)
            buffer.append(contentsOf: UnsafeBufferPointer(start: p, count: take))
            p += take; n -= take
            if buffer.count == 64 {
                buffer.withUnsafeBufferPointer { b in compress(b.baseAddress!, blocks: 1) }
                buffer.removeAll(keepingCapacity: true)
            }
        }
        if n >= 64 {
            compress(p, blocks: n / 64)
            p += (n / 64) * 64; n %= 64
        }
        if n > 0 { buffer.append(contentsOf: UnsafeBufferPointer(start: p, count: n)) }
    }

    public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        let a = Array(bytes)
        a.withUnsafeBytes { update($0) }
    }

    /// Hashes the raw bytes of an array of trivial values (e.g. [Float] as little-endian f32).
    public mutating func update<T>(raw values: [T]) {
        values.withUnsafeBytes { update($0) }
    }

    private mutating func compress(_ p: UnsafePointer<UInt8>, blocks: Int) {
        state.withUnsafeMutableBufferPointer { s in tf_sha256_blocks(s.baseAddress!, p, blocks) }
    }

    /// The 32-byte digest (the hasher is consumed).
    public mutating func finalize() -> [UInt8] {
        let bits = length &* 8
        var tail = buffer
        tail.append(0x80)
        while tail.count % 64 != 56 { tail.append(0) }
        for i in (0..<8).reversed() { tail.append(UInt8(truncatingIfNeeded: bits >> (UInt64(i) * 8))) }
        tail.withUnsafeBufferPointer { b in compress(b.baseAddress!, blocks: b.count / 64) }
        buffer.removeAll()
        var out: [UInt8] = []
        for w in state { for sh in [24, 16, 8, 0] { out.append(UInt8(truncatingIfNeeded: w >> UInt32(sh))) } }
        return out
    }

    public static func hash(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        var h = SHA256(); h.update(data); return h.finalize()
    }
    public static func hash<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var h = SHA256(); h.update(bytes); return h.finalize()
    }
    public static func hex(_ digest: [UInt8]) -> String {
        let d = Array("0123456789abcdef".utf8)
        var s: [UInt8] = []
        for b in digest { s.append(d[Int(b >> 4)]); s.append(d[Int(b & 15)]) }
        return String(decoding: s, as: UTF8.self)
    }
}

import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Running MoE models larger than memory.
//
// Routed experts are read straight from the memory-mapped file, like every other weight: the
// kernel pages an expert in when a token is routed to it and may drop it again under memory
// pressure (the pages are clean file pages, never swapped). That alone makes a model larger than
// RAM run. Two things make it run well:
//
//  * Paging hints. By default a fault on a file mapping reads a window of `read_ahead_kb` around
//    it (8 MB on this project's machine): for a 2-6 MB expert that is mostly its neighbours,
//    which nobody asked for and which push useful pages out. With hints on, the expert stacks
//    are marked MADV_RANDOM (no read-around) and, right after routing, the chosen experts'
//    exact byte ranges get MADV_WILLNEED, so their reads are queued together before the first
//    matrix product touches them instead of one fault at a time.
//  * Resident experts (`--expert-cache-mb N`): the most used experts are kept in memory the
//    kernel may not drop, so they cost no I/O however hard the page cache is squeezed: their
//    file pages are locked in place (mlock: no copy, no second charge), or, where locking is not
//    allowed (RLIMIT_MEMLOCK), copied into anonymous memory. Usage counts are per (layer,
//    expert), halved every `agingPeriod` lookups so the set follows the workload; an expert is
//    admitted when it is used more than the least used resident one (which it evicts), so
//    uniform routing does not churn the set. Either way the bytes multiplied are the file's:
//    results are identical.

/// Configures how a model's routed experts are kept in memory (see the file comment).
public struct ExpertResidencyOptions: Sendable, Equatable {
    /// Bytes of anonymous memory for resident expert copies (0: none).
    public var cacheBytes: Int
    /// MADV_RANDOM on the expert stacks and MADV_WILLNEED for the chosen experts.
    public var pagingHints: Bool
    /// Keep resident experts by locking their file pages (falls back to copies when locking
    /// fails); false: always copy into anonymous memory.
    public var lockInPlace: Bool

    public init(cacheBytes: Int = 0, pagingHints: Bool = true, lockInPlace: Bool = true) {
        self.cacheBytes = cacheBytes; self.pagingHints = pagingHints; self.lockInPlace = lockInPlace
    }
}

/// Per model: resident copies of the hottest experts and the paging hints for the others.
/// Shared by all MoE layers of a model (one budget); used from the thread running the forward
/// pass, guarded by a lock for the server's occasional concurrent readers of its statistics.
public final class ExpertResidency: @unchecked Sendable {
    public let options: ExpertResidencyOptions
    private let lock = NSLock()
    private var resident: [Int: Entry] = [:]
    private var uses: [Int: Int] = [:]
    private var lookups = 0
    private var residentBytes = 0
    /// Lookups between halvings of the usage counts.
    static let agingPeriod = 1 << 14

    /// Counters since creation: lookups served from a copy, and copies made.
    public private(set) var hits = 0
    public private(set) var admissions = 0
    public var bytesResident: Int { lock.lock(); defer { lock.unlock() }; return residentBytes }

    private final class Entry {
        let mlp: GatedMLP
        let bytes: Int
        /// Page ranges locked for this expert (empty for a copy).
        let locked: [(UnsafeRawPointer, Int)]
        init(mlp: GatedMLP, bytes: Int, locked: [(UnsafeRawPointer, Int)] = []) {
            self.mlp = mlp; self.bytes = bytes; self.locked = locked
        }
    }
    /// Cleared when mlock fails (no CAP_IPC_LOCK and RLIMIT_MEMLOCK reached): copies from then on.
    private var locking: Bool

    /// Owns one expert's copied matrices; the copies' `Tensor.owner`, so an evicted expert's
    /// memory is freed only once no forward pass still uses it.
    private final class CopyBuffer {
        let base: UnsafeMutableRawPointer
        init(bytes: Int) { base = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 4096) }
        deinit { base.deallocate() }
    }

    public init(options: ExpertResidencyOptions, blocks: [MoEBlock]) {
        self.options = options
        locking = options.lockInPlace
        if options.pagingHints {
            for b in blocks { for e in b.experts { for l in [e.gate, e.up, e.down] { advise(l.weight, MADV_RANDOM) } } }
        }
    }

    deinit {
        for e in resident.values { for (p, n) in e.locked { munlock(p, n) } }
    }

    private static func key(_ layer: Int, _ expert: Int) -> Int { layer << 20 | expert }

    /// The MLPs to run for `chosen` experts of `layer`: resident copies where there are some
    /// (admitting newly hot experts), the mapped ones otherwise (prefetched with hints on).
    func experts(layer: Int, _ chosen: [Int], mapped: [GatedMLP]) -> [GatedMLP] {
        lock.lock()
        defer { lock.unlock() }
        // Every chosen expert that is not resident is read from the mapping, to run or to copy:
        // ask for all of them at once, before the first byte is touched.
        if options.pagingHints {
            for e in chosen where resident[ExpertResidency.key(layer, e)] == nil {
                // Skipped when the expert looks resident: madvise walks the whole range (~35 µs
                // for a 2 MB matrix), 6% of a decode step when nothing needs reading.
                for l in [mapped[e].gate, mapped[e].up, mapped[e].down]
                where !MappedFile.isProbablyResident(l.weight.data, count: l.weight.byteCount) {
                    advise(l.weight, MADV_WILLNEED)
                }
            }
        }
        var result = [GatedMLP]()
        for e in chosen {
            let k = ExpertResidency.key(layer, e)
            uses[k, default: 0] += 1
            lookups += 1
            if let r = resident[k] {
                hits += 1
                result.append(r.mlp)
            } else if let copy = admit(k, mapped[e]) {
                result.append(copy)
            } else {
                result.append(mapped[e])
            }
        }
        if lookups >= ExpertResidency.agingPeriod {
            lookups = 0
            uses = uses.compactMapValues { $0 > 1 ? $0 / 2 : nil }
        }
        return result
    }

    /// Makes expert `k` resident if it fits, or if it is used more than the least used residents
    /// it would displace. Called with the lock held.
    private func admit(_ k: Int, _ m: GatedMLP) -> GatedMLP? {
        let parts = [m.gate, m.up, m.down]
        let bytes = locking ? parts.reduce(0) { $0 + ExpertResidency.pageSpan($1.weight).1 }
                            : parts.reduce(0) { $0 + ($1.weight.byteCount + 63) / 64 * 64 }
        guard bytes <= options.cacheBytes else { return nil }
        let mine = uses[k] ?? 0
        if residentBytes + bytes > options.cacheBytes {
            // The common case under uniform routing: nothing is used less than the candidate.
            guard let least = resident.keys.lazy.map({ self.uses[$0] ?? 0 }).min(), least < mine else { return nil }
            // Least used first; stop if a resident is used at least as much as the candidate.
            let victims = resident.map { ($0.key, uses[$0.key] ?? 0, $0.value.bytes) }.sorted { $0.1 < $1.1 }
            var freed = 0, evict = [Int]()
            for (vk, vUses, vBytes) in victims where residentBytes - freed + bytes > options.cacheBytes {
                guard vUses < mine else { return nil }
                evict.append(vk); freed += vBytes
            }
            guard residentBytes - freed + bytes <= options.cacheBytes else { return nil }
            for vk in evict {
                for (p, n) in resident[vk]!.locked { munlock(p, n) }
                resident[vk] = nil
            }
            residentBytes -= freed
        }
        if locking {
            // Lock the mapped pages where they are (this also reads them in, prefetched above).
            var locked = [(UnsafeRawPointer, Int)]()
            for l in parts {
                let (p, n) = ExpertResidency.pageSpan(l.weight)
                guard mlock(p, n) == 0 else { break }
                locked.append((p, n))
            }
            if locked.count == parts.count {
                resident[k] = Entry(mlp: m, bytes: bytes, locked: locked)
                residentBytes += bytes
                admissions += 1
                return m
            }
            for (p, n) in locked { munlock(p, n) }
            locking = false   // not allowed here: copy from now on (sizes are recomputed next time)
            return nil
        }
        let buffer = CopyBuffer(bytes: bytes)
        var offset = 0
        var copies = [Linear]()
        for l in parts {
            let w = l.weight
            (buffer.base + offset).copyMemory(from: w.data, byteCount: w.byteCount)
            let t = Tensor(name: w.name, type: w.type, shape: w.shape, data: UnsafeRawPointer(buffer.base + offset),
                           byteCount: w.byteCount, owner: buffer)
            guard let c = try? Linear(weight: t, bias: l.bias) else { return nil }
            c.preciseActivations = l.preciseActivations
            copies.append(c)
            offset += (w.byteCount + 63) / 64 * 64
            // The file pages just copied are not read again while the copy lives: hand them back
            // now rather than let them push other experts out of the page cache.
            if options.pagingHints { advise(w, MADV_PAGEOUT) }
        }
        let mlp = GatedMLP(gate: copies[0], up: copies[1], down: copies[2])
        mlp.down.preciseActivations = m.down.preciseActivations  // GatedMLP.init resets it from the global
        resident[k] = Entry(mlp: mlp, bytes: bytes)
        residentBytes += bytes
        admissions += 1
        return mlp
    }

    /// The whole pages a tensor's bytes occupy.
    static func pageSpan(_ t: Tensor) -> (UnsafeRawPointer, Int) {
        let page = UInt(sysconf(Int32(_SC_PAGESIZE)))
        let start = UInt(bitPattern: t.data) / page * page
        let end = (UInt(bitPattern: t.data) + UInt(t.byteCount) + page - 1) / page * page
        return (UnsafeRawPointer(bitPattern: start)!, Int(end - start))
    }

    /// madvise over the whole pages a tensor's bytes occupy (no-op for heap tensors' errors).
    private func advise(_ t: Tensor, _ advice: Int32) {
        MappedFile.advise(t.data, count: t.byteCount, advice)
    }
}

extension TransformerModel {
    /// Sets up expert residency on every MoE layer (nil options: plain mapped experts, no hints).
    /// No effect on dense models.
    @discardableResult
    public func configureExpertResidency(_ options: ExpertResidencyOptions?) -> ExpertResidency? {
        let blocks = moeBlocks
        guard let o = options, !blocks.isEmpty else {
            for b in blocks { b.residency = nil }
            return nil
        }
        let r = ExpertResidency(options: o, blocks: blocks)
        for b in blocks { b.residency = r }
        return r
    }
}

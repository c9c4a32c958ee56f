import Foundation
import Synchronization
import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// One persistent pool of worker threads for the whole process. A dispatch costs well under a
/// microsecond while workers spin; after ~1 ms idle they park on a condition variable so an
/// idle engine burns no CPU. (`DispatchQueue.concurrentPerform` costs ~10 µs per call, which
/// is more than many of our per-layer matrix products take.)
///
/// Work is shared through a chunk counter and workers join a job only while it is open: the
/// caller never waits for a worker that has not started (e.g. because another process holds
/// its core), only for workers that are inside the job.
public final class ThreadPool: @unchecked Sendable {
    public let threadCount: Int
    private let generation = Atomic<Int>(0)
    private let active = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    /// Guards `job` and `open` between the caller and joining workers.
    private var joinLock = pthread_mutex_t()
    private var job: (() -> Void)?
    private var open = false
    private var workers: [pthread_t] = []
    private var stopping = false
    /// Serialises callers: the pool runs one job at a time.
    private let callerLock = NSLock()

    public nonisolated(unsafe) static var shared = ThreadPool(threads: ThreadPool.defaultThreadCount)

    public static var defaultThreadCount: Int {
        if let s = ProcessInfo.processInfo.environment["TIEFSEE_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Replaces the shared pool (e.g. for `--threads N`).
    public static func configureShared(threads: Int) {
        if shared.threadCount != threads { shared = ThreadPool(threads: max(1, threads)) }
    }

    /// Per-layer scratch buffers (megabytes during prompt processing) are allocated and freed
    /// thousands of times per forward pass; glibc would hand them back to the kernel and take
    /// fresh zeroed pages each time (measured: 4% of prompt time in page clearing). Keeping
    /// freed memory in the heap up to 256 MB avoids that; the peak stays the same.
    static let mallocTuned: Bool = {
        tf_keep_freed_memory(256 << 20)
        return true
    }()

    public init(threads: Int) {
        _ = ThreadPool.mallocTuned
        threadCount = max(1, threads)
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
        pthread_mutex_init(&joinLock, nil)
        for i in 1..<threadCount {
            let ctx = Unmanaged.passRetained(WorkerContext(pool: self, index: i)).toOpaque()
            var t = pthread_t()
            pthread_create(&t, nil, { raw in
                let c = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                c.pool?.workerLoop()
                return nil
            }, ctx)
            workers.append(t)
        }
    }

    private final class WorkerContext {
        weak var pool: ThreadPool?
        let index: Int
        init(pool: ThreadPool, index: Int) { self.pool = pool; self.index = index }
    }

    deinit {
        pthread_mutex_lock(&mutex)
        stopping = true
        generation.add(1, ordering: .sequentiallyConsistent)
        pthread_cond_broadcast(&cond)
        pthread_mutex_unlock(&mutex)
    }

    private func workerLoop() {
        var seen = generation.load(ordering: .acquiring)
        while true {
            var spins = 0
            var gen = generation.load(ordering: .acquiring)
            while gen == seen {
                spins += 1
                // Spin briefly, then yield the core (another process may need it), then park.
                if spins < 4_000 { tf_cpu_relax() } else if spins < 8_000 { sched_yield() } else {
                    pthread_mutex_lock(&mutex)
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .acquiring) == seen && !stopping {
                        pthread_cond_wait(&cond, &mutex)
                    }
                    sleepers.subtract(1, ordering: .sequentiallyConsistent)
                    pthread_mutex_unlock(&mutex)
                    spins = 0
                }
                gen = generation.load(ordering: .acquiring)
            }
            if stopping { return }
            seen = gen
            // Join only while the job is still open.
            pthread_mutex_lock(&joinLock)
            let work = open ? job : nil
            if work != nil { active.add(1, ordering: .sequentiallyConsistent) }
            pthread_mutex_unlock(&joinLock)
            if let w = work {
                w()
                active.subtract(1, ordering: .releasing)
            }
        }
    }

    /// Runs `work` on the caller and on every worker that joins in time; `work` must share out
    /// its work through a counter (see `parallelFor`), since any number of threads may run it.
    private func runShared(_ work: @escaping () -> Void) {
        callerLock.lock()
        defer { callerLock.unlock() }
        pthread_mutex_lock(&joinLock)
        job = work
        open = true
        pthread_mutex_unlock(&joinLock)
        generation.add(1, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            pthread_mutex_lock(&mutex)
            pthread_cond_broadcast(&cond)
            pthread_mutex_unlock(&mutex)
        }
        work()
        pthread_mutex_lock(&joinLock)
        open = false
        job = nil
        pthread_mutex_unlock(&joinLock)
        var spins = 0
        while active.load(ordering: .acquiring) > 0 {
            spins += 1
            if spins < 4_000 { tf_cpu_relax() } else { sched_yield() }
        }
    }

    /// Runs `body` over 0..<count in chunks (multiples of `grain`) that threads take from a
    /// shared counter: about eight chunks per thread, so a thread that lost its core to another
    /// process does not hold everyone up.
    public func parallelFor(_ count: Int, grain: Int = 1, _ body: @escaping (Range<Int>) -> Void) {
        let n = threadCount
        // Nested inside another job: this thread is already one of the pool's, so run serially.
        if n == 1 || count <= grain || tf_pool_depth() > 0 { body(0..<count); return }
        let units = (count + grain - 1) / grain
        let chunk = max(1, units / (n * 8)) * grain
        let chunks = (count + chunk - 1) / chunk
        let next = ChunkCounter()
        runShared {
            tf_pool_depth_add(1)
            defer { tf_pool_depth_add(-1) }
            while true {
                let c = next.value.wrappingAdd(1, ordering: .relaxed).oldValue
                if c >= chunks { return }
                body(c * chunk ..< min(count, (c + 1) * chunk))
            }
        }
    }
}

final class ChunkCounter: @unchecked Sendable {
    let value = Atomic<Int>(0)
}

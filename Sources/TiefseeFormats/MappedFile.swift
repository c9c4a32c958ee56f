import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file. Weights are used straight from the page cache:
/// nothing is copied into the heap, and the kernel pages in only what a forward pass touches.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    public let base: UnsafeRawPointer

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw ModelFileError.io(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw ModelFileError.io(path: path, reason: String(cString: strerror(errno)))
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            throw ModelFileError.io(path: path, reason: "is a directory")
        }
        size = Int(st.st_size)
        if size == 0 {
            // mmap of length 0 fails; keep a valid dummy pointer so readers report "truncated".
            base = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64))
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw ModelFileError.io(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if size > 0 { munmap(UnsafeMutableRawPointer(mutating: base), size) }
        else { UnsafeMutableRawPointer(mutating: base).deallocate() }
    }

    /// Whether the pages at a few sample points of `count` bytes at `p` (first, last and two
    /// between) are in memory: a cheap check (mincore of four pages) before asking for a range.
    public static func isProbablyResident(_ p: UnsafeRawPointer, count: Int) -> Bool {
        guard count > 0 else { return true }
        let page = UInt(sysconf(Int32(_SC_PAGESIZE)))
        var vec: UInt8 = 0
        for f in [0, 1, 2, 3] {
            let at = UInt(bitPattern: p) + UInt((count - 1) * f / 3)
            guard mincore(UnsafeMutableRawPointer(bitPattern: at / page * page), Int(page), &vec) == 0 else { return false }
            if vec & 1 == 0 { return false }
        }
        return true
    }

    /// madvise(`advice`) over the whole pages covering `count` bytes at `p` (inside any mapping;
    /// a range outside one just fails, which hints may).
    public static func advise(_ p: UnsafeRawPointer, count: Int, _ advice: Int32) {
        guard count > 0 else { return }
        let page = UInt(sysconf(Int32(_SC_PAGESIZE)))
        let start = UInt(bitPattern: p) / page * page
        let end = (UInt(bitPattern: p) + UInt(count) + page - 1) / page * page
        _ = madvise(UnsafeMutableRawPointer(bitPattern: start), Int(end - start), advice)
    }
}

/// Errors from reading model files. Each names the file and the problem in one line.
public enum ModelFileError: Error, CustomStringConvertible, Equatable {
    case io(path: String, reason: String)
    case invalid(path: String, reason: String)
    case unsupported(path: String, reason: String)

    public var description: String {
        switch self {
        case .io(let p, let r): return "cannot read \(p): \(r)"
        case .invalid(let p, let r): return "invalid model file \(p): \(r)"
        case .unsupported(let p, let r): return "unsupported model file \(p): \(r)"
        }
    }
}

/// Bounds-checked little-endian cursor over a mapped byte range. Every read checks the
/// remaining length first, so a truncated or corrupt header gives an error, never a crash.
struct ByteCursor {
    let base: UnsafeRawPointer
    let end: Int
    var pos: Int
    let path: String

    init(base: UnsafeRawPointer, count: Int, path: String, pos: Int = 0) {
        self.base = base; self.end = count; self.pos = pos; self.path = path
    }

    var remaining: Int { end - pos }

    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        if n < 0 || n > end - pos {
            throw ModelFileError.invalid(path: path, reason: "truncated while reading \(what()) at byte \(pos)")
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        let v = base.loadUnaligned(fromByteOffset: pos, as: T.self)
        pos += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    mutating func readF32(_ what: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, what()))
    }

    mutating func readF64(_ what: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, what()))
    }

    mutating func readBytes(_ n: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        try need(n, what())
        let b = UnsafeRawBufferPointer(start: base + pos, count: n)
        pos += n
        return b
    }
}

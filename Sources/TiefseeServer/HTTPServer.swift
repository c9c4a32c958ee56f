import CMicroHTTPD
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Tiefsee

/// Limits of the HTTP layer. libmicrohttpd enforces the connection count, the idle timeout
/// (slow or half-sent requests) and the per-connection header memory; the body limit is ours.
public struct HTTPLimits: Sendable {
    /// Largest request body accepted (413 above it).
    public var maxBodyBytes = 8 << 20
    /// Simultaneous connections; more are refused by closing them at once.
    public var connectionLimit = 2048
    /// Seconds a connection may sit idle (between bytes of a request, or between requests).
    public var idleTimeoutSeconds = 15
    /// Per-connection memory for the request line and headers (431/413 above it, by MHD).
    public var connectionMemoryBytes = 64 << 10
    public init() {}
}

/// One request as the handler sees it: headers are read through the live connection, so
/// `header(_:)` is only valid on the connection's thread while the handler runs.
public final class HTTPRequest: @unchecked Sendable {
    public let method: String
    public let path: String
    public internal(set) var body: [UInt8] = []
    let connection: OpaquePointer
    /// The connection's socket, to notice a client that went away.
    public let socket: Int32
    /// Who sent it, once the server's preflight has checked its credentials (nil: nobody, or
    /// a server without users).
    public internal(set) var principal: Principal?

    init(method: String, url: String, connection: OpaquePointer) {
        self.method = method
        path = String(url.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        self.connection = connection
        socket = tiefsee_mhd_connection_fd(connection)
    }

    public func header(_ name: String) -> String? {
        guard let v = MHD_lookup_connection_value(connection, .HEADER_KIND, name) else { return nil }
        return String(cString: v)
    }

    /// A `?name=value` argument of the URL (percent-decoded by libmicrohttpd).
    public func query(_ name: String) -> String? {
        guard let v = MHD_lookup_connection_value(connection, .GET_ARGUMENT_KIND, name) else { return nil }
        return String(cString: v)
    }

    /// A cookie sent with the request.
    public func cookie(_ name: String) -> String? {
        guard let v = MHD_lookup_connection_value(connection, .COOKIE_KIND, name) else { return nil }
        return String(cString: v)
    }

    /// True once the peer has closed or reset the connection.
    public var clientGone: Bool { HTTPServer.peerClosed(socket) }
}

/// A response body produced while it is being sent (SSE, chunked transfer). libmicrohttpd
/// asks for more on the connection's thread; `next` returns the bytes ready now (empty: none
/// yet — it should wait briefly, ~10 ms, for some), or nil at the end. Between calls the
/// connection is checked, and `onCancel` runs once if the client went away before the end.
public final class HTTPStream: @unchecked Sendable {
    private let next: () -> [UInt8]?
    private let cancelAction: () -> Void
    /// Sent after a second without output (e.g. an SSE comment): the connection's idle timeout
    /// counts silence on the wire, and a queued or thinking request may be silent for long.
    private var keepAlive: [UInt8]?
    private var lastSent = Date()
    private var buffer: [UInt8] = []
    private var offset = 0
    private var ended = false
    private let lock = NSLock()
    private var cancelled = false
    var socket: Int32 = -1

    public init(keepAlive: String? = nil, next: @escaping () -> [UInt8]?, onCancel: @escaping () -> Void) {
        self.next = next
        cancelAction = onCancel
        self.keepAlive = keepAlive.map { Array($0.utf8) }
    }

    func cancel() {
        lock.lock()
        let first = !cancelled && !ended
        cancelled = true
        lock.unlock()
        if first { cancelAction() }
    }

    func read(into dst: UnsafeMutablePointer<CChar>, max: Int) -> Int {
        while offset == buffer.count {
            buffer.removeAll(keepingCapacity: true); offset = 0
            if ended { return tiefsee_mhd_end_of_stream() }
            if HTTPServer.peerClosed(socket) { cancel(); return tiefsee_mhd_end_with_error() }
            if let b = next() { buffer += b } else { lock.lock(); ended = true; lock.unlock() }
            if buffer.isEmpty, let k = keepAlive, Date().timeIntervalSince(lastSent) >= 1 { buffer = k }
        }
        lastSent = Date()
        let n = min(max, buffer.count - offset)
        buffer.withUnsafeBufferPointer { b in
            UnsafeMutableRawPointer(dst).copyMemory(from: b.baseAddress! + offset, byteCount: n)
        }
        offset += n
        return n
    }

    /// The response is gone (sent, or the connection died): cancel if it had not ended.
    func released() { cancel() }

    /// The same stream with `onEnd` run once when it ends or is cancelled (the model router
    /// counts a model in use until its answer is sent).
    public func whenFinished(_ onEnd: @escaping () -> Void) -> HTTPStream {
        let s = HTTPStream(keepAlive: nil, next: { [self] in
            let b = next()
            if b == nil { onEnd() }
            return b
        }, onCancel: { [self] in cancel(); onEnd() })
        s.keepAlive = keepAlive
        return s
    }
}

public enum HTTPBody {
    case bytes([UInt8])
    case stream(HTTPStream)
}

public struct HTTPResponse {
    public var status: Int
    public var headers: [(String, String)]
    public var body: HTTPBody

    public init(status: Int, headers: [(String, String)] = [], body: HTTPBody) {
        self.status = status; self.headers = headers; self.body = body
    }
    public static func json(_ status: Int, _ value: JSONValue, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")] + headers,
                     body: .bytes(Array(value.serialized().utf8)))
    }
    public static func text(_ status: Int, _ s: String, contentType: String = "text/plain; charset=utf-8") -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", contentType)], body: .bytes(Array(s.utf8)))
    }
}

public struct HTTPServerError: Error, CustomStringConvertible {
    public let description: String
}

/// HTTP/1.1 server on libmicrohttpd (keep-alive, chunked bodies, timeouts and connection limits
/// come from the library): one thread per connection, so handlers may block.
public final class HTTPServer: @unchecked Sendable {
    /// Runs with the headers only, before any body is read: a response here is sent at once
    /// (authentication, unknown routes, a declared body over the limit).
    public typealias Preflight = (HTTPRequest) -> HTTPResponse?
    public typealias Handler = (HTTPRequest) -> HTTPResponse

    public let limits: HTTPLimits
    public private(set) var port: Int = 0
    public let host: String
    private var daemon: OpaquePointer?
    private let preflight: Preflight
    private let handler: Handler
    /// Called with every response status (metrics).
    var onResponse: ((HTTPRequest, Int) -> Void)?

    public init(host: String, port: Int, limits: HTTPLimits = HTTPLimits(),
                preflight: @escaping Preflight, handler: @escaping Handler) throws {
        self.host = host
        self.limits = limits
        self.preflight = preflight
        self.handler = handler
        try start(port: port)
    }

    deinit { stop() }

    public func stop() {
        if let d = daemon { MHD_stop_daemon(d); daemon = nil }
    }

    /// Numeric IPv4/IPv6 addresses only (and "localhost"): the server never resolves names.
    static func socketAddress(host: String, port: Int) throws -> (storage: sockaddr_storage, ipv6: Bool) {
        var storage = sockaddr_storage()
        let h = host == "localhost" ? "127.0.0.1" : (host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host)
        var a4 = in_addr()
        if inet_pton(AF_INET, h, &a4) == 1 {
            withUnsafeMutableBytes(of: &storage) { raw in
                let sin = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                sin.pointee.sin_family = sa_family_t(AF_INET)
                sin.pointee.sin_port = in_port_t(UInt16(port).bigEndian)
                sin.pointee.sin_addr = a4
            }
            return (storage, false)
        }
        var a6 = in6_addr()
        if inet_pton(AF_INET6, h, &a6) == 1 {
            withUnsafeMutableBytes(of: &storage) { raw in
                let sin6 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                sin6.pointee.sin6_port = in_port_t(UInt16(port).bigEndian)
                sin6.pointee.sin6_addr = a6
            }
            return (storage, true)
        }
        throw HTTPServerError(description: "--host must be a numeric IPv4 or IPv6 address (or localhost), got '\(host)'")
    }

    /// True for 127.0.0.0/8, ::1 and localhost.
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        if h == "localhost" || h == "::1" { return true }
        var a4 = in_addr()
        if inet_pton(AF_INET, h, &a4) == 1 { return (UInt32(bigEndian: a4.s_addr) >> 24) == 127 }
        return false
    }

    private func start(port: Int) throws {
        guard (0...65535).contains(port) else { throw HTTPServerError(description: "port \(port) is out of range") }
        var (storage, ipv6) = try HTTPServer.socketAddress(host: host, port: port)
        var flags = MHD_USE_THREAD_PER_CONNECTION.rawValue | MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_POLL.rawValue
        if ipv6 { flags |= MHD_USE_IPv6.rawValue }
        let me = Unmanaged.passUnretained(self).toOpaque()
        let d = withUnsafePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                tiefsee_mhd_start(UInt32(flags), sa, accessHandler, me, completedHandler, me,
                                  UInt32(limits.connectionLimit), UInt32(limits.idleTimeoutSeconds),
                                  limits.connectionMemoryBytes, 256 << 10, 1024)
            }
        }
        guard let d else {
            throw HTTPServerError(description: "could not listen on \(host):\(port) (address in use or not available)")
        }
        daemon = d
        let fd = tiefsee_mhd_listen_fd(d)
        var bound = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let rawPort: UInt16 = withUnsafeBytes(of: &bound) { raw in
            ipv6 ? raw.load(fromByteOffset: 2, as: UInt16.self) : raw.load(fromByteOffset: 2, as: UInt16.self)
        }
        self.port = Int(UInt16(bigEndian: rawPort))
    }

    static func peerClosed(_ fd: Int32) -> Bool {
        guard fd >= 0 else { return false }
        let rdhup: Int16 = 0x2000  // POLLRDHUP (needs _GNU_SOURCE in C)
        let hangup: Int16 = rdhup | Int16(POLLHUP) | Int16(POLLERR) | Int16(POLLNVAL)
        var p = pollfd(fd: fd, events: rdhup, revents: 0)
        guard poll(&p, 1, 0) > 0 else { return false }
        return p.revents & hangup != 0
    }

    final class RequestState {
        let request: HTTPRequest
        var tooLarge = false
        var answered = false
        init(_ r: HTTPRequest) { request = r }
    }

    fileprivate func handle(_ conn: OpaquePointer, url: String, method: String, upload: UnsafePointer<CChar>?,
                            uploadSize: UnsafeMutablePointer<Int>, state statePtr: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> MHD_Result {
        guard let raw = statePtr.pointee else {
            let req = HTTPRequest(method: method, url: url, connection: conn)
            let st = RequestState(req)
            statePtr.pointee = Unmanaged.passRetained(st).toOpaque()
            if let cl = req.header("Content-Length"), let n = Int(cl.trimmingCharacters(in: .whitespaces)), n > limits.maxBodyBytes {
                st.answered = true
                return queue(conn, req, tooLargeResponse())
            }
            if let r = preflight(req) { st.answered = true; return queue(conn, req, r) }
            return .YES
        }
        let st = Unmanaged<RequestState>.fromOpaque(raw).takeUnretainedValue()
        if st.answered { uploadSize.pointee = 0; return .YES }
        let n = uploadSize.pointee
        if n > 0 {
            if !st.tooLarge {
                if st.request.body.count + n > limits.maxBodyBytes {
                    st.tooLarge = true
                    st.request.body = []
                } else if let upload {
                    upload.withMemoryRebound(to: UInt8.self, capacity: n) { st.request.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) }
                }
            }
            uploadSize.pointee = 0
            return .YES
        }
        st.answered = true
        if st.tooLarge { return queue(conn, st.request, tooLargeResponse()) }
        return queue(conn, st.request, handler(st.request))
    }

    func tooLargeResponse() -> HTTPResponse {
        .json(413, OpenAIError(413, "request body is larger than the limit of \(limits.maxBodyBytes) bytes",
                               type: "invalid_request_error", code: "request_too_large").json)
    }

    private func queue(_ conn: OpaquePointer, _ req: HTTPRequest, _ r: HTTPResponse) -> MHD_Result {
        onResponse?(req, r.status)
        var resp: OpaquePointer?
        switch r.body {
        case .bytes(let b):
            resp = b.withUnsafeBytes { p in
                MHD_create_response_from_buffer(b.count, UnsafeMutableRawPointer(mutating: p.baseAddress), .RESPMEM_MUST_COPY)
            }
        case .stream(let s):
            s.socket = req.socket
            let cls = Unmanaged.passRetained(s).toOpaque()
            resp = MHD_create_response_from_callback(tiefsee_mhd_size_unknown(), 16 << 10, streamReader, cls, streamFree)
            if resp == nil { Unmanaged<HTTPStream>.fromOpaque(cls).release() }
        }
        guard let resp else { return .NO }
        for (k, v) in r.headers { _ = MHD_add_response_header(resp, k, v) }
        let ok = MHD_queue_response(conn, UInt32(r.status), resp)
        MHD_destroy_response(resp)
        return ok
    }
}

private let accessHandler: MHD_AccessHandlerCallback = { cls, conn, url, method, _, upload, uploadSize, conCls in
    let server = Unmanaged<HTTPServer>.fromOpaque(cls!).takeUnretainedValue()
    return server.handle(conn!, url: String(cString: url!), method: String(cString: method!), upload: upload,
                         uploadSize: uploadSize!, state: conCls!)
}

private let completedHandler: MHD_RequestCompletedCallback = { _, _, conCls, _ in
    guard let conCls, let raw = conCls.pointee else { return }
    Unmanaged<HTTPServer.RequestState>.fromOpaque(raw).release()
    conCls.pointee = nil
}

private let streamReader: MHD_ContentReaderCallback = { cls, _, buf, max in
    let s = Unmanaged<HTTPStream>.fromOpaque(cls!).takeUnretainedValue()
    return s.read(into: buf!, max: max)
}

private let streamFree: MHD_ContentReaderFreeCallback = { cls in
    let s = Unmanaged<HTTPStream>.fromOpaque(cls!).takeRetainedValue()
    s.released()
}

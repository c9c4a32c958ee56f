import Foundation
import CSQLite
import Tiefsee

public struct SQLiteError: Error, CustomStringConvertible {
    public let code: Int32
    public let message: String
    public var description: String { "SQLite error \(code): \(message)" }
}

/// `SQLITE_TRANSIENT` is a function-pointer macro Swift does not import.
private let sqliteTransient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

/// A thin SQLite connection: exec, prepared statements with positional binds, row callbacks.
package final class SQLiteDB {
    package let handle: OpaquePointer
    package let path: String

    package init(path: String) throws {
        var h: OpaquePointer?
        let rc = sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nil)
        guard rc == SQLITE_OK, let db = h else {
            let msg = h.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let h { sqlite3_close(h) }
            throw SQLiteError(code: rc, message: "\(path): \(msg)")
        }
        handle = db
        self.path = path
        sqlite3_busy_timeout(db, 5000)
    }

    deinit { sqlite3_close_v2(handle) }

    package var lastError: String { String(cString: sqlite3_errmsg(handle)) }

    package func exec(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let m = err.map { String(cString: $0) } ?? lastError
            sqlite3_free(err)
            throw SQLiteError(code: rc, message: m)
        }
    }

    package enum Value {
        case int(Int64), double(Double), text(String), blob([UInt8]), null
    }

    package final class Statement {
        package let stmt: OpaquePointer
        unowned let db: SQLiteDB
        package init(db: SQLiteDB, sql: String) throws {
            var s: OpaquePointer?
            let rc = sqlite3_prepare_v2(db.handle, sql, -1, &s, nil)
            guard rc == SQLITE_OK, let st = s else { throw SQLiteError(code: rc, message: "\(db.lastError) in: \(sql)") }
            stmt = st
            self.db = db
        }
        deinit { sqlite3_finalize(stmt) }

        package func bind(_ values: [Value]) throws {
            sqlite3_reset(stmt)
            sqlite3_clear_bindings(stmt)
            for (i, v) in values.enumerated() {
                let idx = Int32(i + 1)
                let rc: Int32
                switch v {
                case .int(let x): rc = sqlite3_bind_int64(stmt, idx, x)
                case .double(let x): rc = sqlite3_bind_double(stmt, idx, x)
                case .text(let s): rc = sqlite3_bind_text(stmt, idx, s, -1, sqliteTransient)
                case .blob(let b):
                    rc = b.withUnsafeBytes { sqlite3_bind_blob(stmt, idx, $0.baseAddress, Int32(b.count), sqliteTransient) }
                case .null: rc = sqlite3_bind_null(stmt, idx)
                }
                if rc != SQLITE_OK { throw SQLiteError(code: rc, message: db.lastError) }
            }
        }

        /// Runs the statement; `row` is called for each result row.
        package func run(_ values: [Value] = [], row: ((Statement) throws -> Void)? = nil) throws {
            try bind(values)
            while true {
                let rc = sqlite3_step(stmt)
                if rc == SQLITE_DONE { break }
                guard rc == SQLITE_ROW else { throw SQLiteError(code: rc, message: db.lastError) }
                try row?(self)
            }
            sqlite3_reset(stmt)
        }

        package func int(_ col: Int32) -> Int64 { sqlite3_column_int64(stmt, col) }
        package func double(_ col: Int32) -> Double { sqlite3_column_double(stmt, col) }
        package func isNull(_ col: Int32) -> Bool { sqlite3_column_type(stmt, col) == SQLITE_NULL }
        package func text(_ col: Int32) -> String {
            guard let p = sqlite3_column_text(stmt, col) else { return "" }
            return String(cString: p)
        }
        package func blob(_ col: Int32) -> UnsafeRawBufferPointer {
            let n = Int(sqlite3_column_bytes(stmt, col))
            guard n > 0, let p = sqlite3_column_blob(stmt, col) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
            return UnsafeRawBufferPointer(start: p, count: n)
        }
    }

    private var cache: [String: Statement] = [:]

    /// A cached prepared statement.
    package func prepare(_ sql: String) throws -> Statement {
        if let s = cache[sql] { return s }
        let s = try Statement(db: self, sql: sql)
        cache[sql] = s
        return s
    }

    package func run(_ sql: String, _ values: [Value] = [], row: ((Statement) throws -> Void)? = nil) throws {
        try prepare(sql).run(values, row: row)
    }

    package func scalarInt(_ sql: String, _ values: [Value] = []) throws -> Int64? {
        var out: Int64?
        try run(sql, values) { out = $0.isNull(0) ? nil : $0.int(0) }
        return out
    }

    package var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    package func transaction<T>(_ body: () throws -> T) throws -> T {
        try exec("BEGIN IMMEDIATE")
        do {
            let r = try body()
            try exec("COMMIT")
            return r
        } catch {
            try? exec("ROLLBACK")
            throw error
        }
    }
}

import Foundation
import GRDBSQLite
import Synchronization
import TutelaCore

/// Read-only SQLite connections with prepared statements, for the lookups by key on the
/// gateway's request path.
///
/// A record fetched through GRDB cost about 30 µs here, five times what SQLite itself
/// spends on it; most of it went to GRDB's connection pool, its per-access bookkeeping and
/// row objects. These connections are taken from a locked free list, run one cached statement
/// (a single statement is its own consistent snapshot, as in any auto-commit read), copy the
/// columns out and go back to the list. Writes, scans and everything else stay with GRDB.
package final class SQLitePointReader: Sendable {
    private let path: String
    private let idle = Mutex<[Connection]>([])
    private let keepIdle = 8

    /// Reads the database at `path`; connections open on first use.
    package init(path: String) {
        self.path = path
    }

    /// The first row of a statement, decoded, or nil when there is none.
    package func fetchOne<T>(
        _ sql: String,
        _ arguments: [Argument],
        decode: (borrowing Columns) throws -> T
    ) throws -> T? {
        try withConnection { connection in
            try Self.run(try connection.prepared(sql), arguments) { statement in
                guard try Self.step(statement) else { return nil }
                return try decode(Columns(statement: statement))
            }
        }
    }

    /// Every row of a statement, decoded.
    package func fetchAll<T>(
        _ sql: String,
        _ arguments: [Argument],
        decode: (borrowing Columns) throws -> T
    ) throws -> [T] {
        try withConnection { connection in
            try Self.run(try connection.prepared(sql), arguments) { statement in
                var rows: [T] = []
                while try Self.step(statement) { rows.append(try decode(Columns(statement: statement))) }
                return rows
            }
        }
    }

    /// Binds `arguments` to a prepared statement, runs `body` with it, and resets it; shared
    /// by these connections and by bulk writes on GRDB's cached statements.
    package static func run<T>(
        _ statement: OpaquePointer,
        _ arguments: [Argument],
        _ body: (OpaquePointer) throws -> T
    ) throws -> T {
        try run(statement, binding: { binder in for argument in arguments { binder.bind(argument) } }, body)
    }

    /// Binds parameters 1, 2, … of a prepared statement through `bind`, runs `body` with it,
    /// and resets it.
    package static func run<T>(
        _ statement: OpaquePointer,
        binding bind: (inout Binder) -> Void,
        _ body: (OpaquePointer) throws -> T
    ) throws -> T {
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        var binder = Binder(statement: statement)
        bind(&binder)
        guard binder.code == SQLITE_OK else { throw error(binder.code, sqlite3_db_handle(statement)) }
        return try body(statement)
    }

    /// Steps a statement: true for a row, false when it is done.
    package static func step(_ statement: OpaquePointer) throws -> Bool {
        switch sqlite3_step(statement) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let code: throw error(code, sqlite3_db_handle(statement))
        }
    }

    /// SQLite's message for a failed call; it names the failure, never a bound value.
    package static func error(_ code: Int32, _ connection: OpaquePointer?) -> TutelaError {
        let message = connection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) } ?? "unknown"
        return TutelaError(.storage, "the database statement failed: SQLite error \(code): \(message)")
    }

    /// A value bound to a statement's parameter.
    package enum Argument: Sendable {
        case text(String)
        case blob([UInt8])
        case int(Int)
        case null
    }

    /// Binds values to a statement's parameters 1, 2, … in the order given, straight to SQLite,
    /// which copies each value before the call returns.
    ///
    /// A bulk write binds each row's values from the records themselves: building an
    /// `Argument` array per row first cost as much as the rest of the write.
    package struct Binder: ~Copyable {
        private let statement: OpaquePointer
        private var position: Int32 = 0
        /// `SQLITE_OK`, or the first failing call's code (the later calls are then skipped).
        package private(set) var code = SQLITE_OK

        init(statement: OpaquePointer) {
            self.statement = statement
        }

        /// SQLite's marker for a value it must copy.
        private static var transient: sqlite3_destructor_type { unsafeBitCast(-1, to: sqlite3_destructor_type.self) }

        /// Binds the next parameter to one argument.
        package mutating func bind(_ argument: Argument) {
            switch argument {
            case .text(let text): self.text(text)
            case .blob(let bytes): blob(bytes)
            case .int(let value): int(value)
            case .null: null()
            }
        }

        /// Binds the next parameter to text, from the string's own UTF-8 storage (passing the
        /// String as a C string would copy it into a new array first).
        package mutating func text(_ text: String) {
            var text = text
            next { statement, position in
                text.withUTF8 { utf8 in
                    guard let base = utf8.baseAddress, !utf8.isEmpty else {
                        return sqlite3_bind_text(statement, position, "", 0, Self.transient)
                    }
                    return base.withMemoryRebound(to: CChar.self, capacity: utf8.count) {
                        sqlite3_bind_text(statement, position, $0, Int32(utf8.count), Self.transient)
                    }
                }
            }
        }

        /// Binds the next parameter to bytes; an empty value binds an empty blob (a nil
        /// pointer would bind NULL).
        package mutating func blob(_ bytes: [UInt8]) {
            next { statement, position in
                bytes.withUnsafeBytes { buffer in
                    guard let base = buffer.baseAddress, !buffer.isEmpty else {
                        return sqlite3_bind_zeroblob(statement, position, 0)
                    }
                    return sqlite3_bind_blob(statement, position, base, Int32(buffer.count), Self.transient)
                }
            }
        }

        /// Binds the next parameter to an integer.
        package mutating func int(_ value: Int) {
            next { sqlite3_bind_int64($0, $1, Int64(value)) }
        }

        /// Binds the next parameter to NULL.
        package mutating func null() {
            next { sqlite3_bind_null($0, $1) }
        }

        private mutating func next(_ call: (OpaquePointer, Int32) -> Int32) {
            position += 1
            guard code == SQLITE_OK else { return }
            code = call(statement, position)
        }
    }

    private func withConnection<T>(_ body: (Connection) throws -> T) throws -> T {
        let connection = try idle.withLock { $0.popLast() } ?? Connection(path: path)
        defer {
            let kept = idle.withLock { list -> Bool in
                guard list.count < keepIdle else { return false }
                list.append(connection)
                return true
            }
            if !kept { connection.close() }
        }
        return try body(connection)
    }

    /// The columns of the current row.
    package struct Columns: ~Copyable {
        let statement: OpaquePointer

        /// Whether column `index` is NULL.
        package func isNull(_ index: Int32) -> Bool { sqlite3_column_type(statement, index) == SQLITE_NULL }

        /// Column `index` as text ("" when NULL).
        package func text(_ index: Int32) -> String {
            guard let pointer = sqlite3_column_text(statement, index) else { return "" }
            let count = Int(sqlite3_column_bytes(statement, index))
            return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
        }

        /// Column `index` as bytes (empty when NULL).
        package func blob(_ index: Int32) -> [UInt8] {
            let count = Int(sqlite3_column_bytes(statement, index))
            guard count > 0, let pointer = sqlite3_column_blob(statement, index) else { return [] }
            return Array(UnsafeRawBufferPointer(start: pointer, count: count))
        }

        /// Column `index` as an integer.
        package func int(_ index: Int32) -> Int { Int(sqlite3_column_int64(statement, index)) }

        /// Column `index` as a floating-point number.
        package func double(_ index: Int32) -> Double { sqlite3_column_double(statement, index) }

        /// The storage class of column `index` in this row.
        package func kind(_ index: Int32) -> Kind {
            switch sqlite3_column_type(statement, index) {
            case SQLITE_INTEGER: return .integer
            case SQLITE_FLOAT: return .real
            case SQLITE_TEXT: return .text
            case SQLITE_BLOB: return .blob
            default: return .null
            }
        }

        /// SQLite's storage classes.
        package enum Kind { case null, integer, real, text, blob }
    }

    /// One read-only connection and its prepared statements; used by one thread at a time,
    /// handed over through the reader's locked free list.
    private final class Connection: @unchecked Sendable {
        private var handle: OpaquePointer?
        private var statements: [String: OpaquePointer] = [:]

        init(path: String) throws {
            var handle: OpaquePointer?
            let flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX
            let code = sqlite3_open_v2(path, &handle, flags, nil)
            guard code == SQLITE_OK, let handle else {
                sqlite3_close_v2(handle)
                throw TutelaError(.storage, "cannot open the database for reading (SQLite error \(code))")
            }
            sqlite3_busy_timeout(handle, 10_000)
            // Pages read through a memory map of the database file rather than a read call and a
            // copy into each connection's own 2 MB cache: a sealed record is four times the size
            // of its plaintext row, so the store's file outgrows that cache first. Fetching a
            // record with its data key fell from 10.3 to 6.6 µs. The map is read-only; writes
            // stay with GRDB's writer, and SQLite remaps when the file grows or shrinks.
            sqlite3_exec(handle, "PRAGMA mmap_size = 1073741824", nil, nil, nil)
            self.handle = handle
        }

        deinit { close() }

        /// The cached prepared statement for `sql`.
        func prepared(_ sql: String) throws -> OpaquePointer {
            if let statement = statements[sql] { return statement }
            var statement: OpaquePointer?
            let code = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
            guard code == SQLITE_OK, let statement else { throw SQLitePointReader.error(code, handle) }
            statements[sql] = statement
            return statement
        }

        func close() {
            for statement in statements.values { sqlite3_finalize(statement) }
            statements = [:]
            sqlite3_close_v2(handle)
            handle = nil
        }
    }
}

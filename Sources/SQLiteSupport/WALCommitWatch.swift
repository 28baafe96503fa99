import GRDBSQLite
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Tells whether a database in WAL mode has seen a commit, by any connection of any process,
/// since an earlier look, by reading the header of its shared-memory index: no system call, no
/// lock and no transaction.
///
/// A commit in WAL mode becomes visible to readers when its writer rewrites that header (the
/// `-shm` file, "WAL-index format" in SQLite's documentation): the header counts transactions
/// and holds the log's last frame and salts, so two equal headers mean that no commit was made
/// in between. SQLite's own readers look at it the same way before they take a read lock: it is
/// stored twice, the writer changes the second copy first, and a reader that finds the copies
/// equal has a header that held at one moment. Copies that differ (a commit being published) or
/// a header of an unknown format give no mark, and the caller reads the database.
///
/// The header is read where SQLite maps it, through a read-only connection of the watch's own
/// that stays open for the watch's life, and never through a file descriptor of the watch's:
/// closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
/// locks on the index included, and another process could then take the index for unused and
/// rebuild it under this process's connections. SQLite keeps the mapping while the connection
/// is open, and its file the same file while any connection to the database is open.
package final class WALCommitWatch: @unchecked Sendable {
    /// What the header said at one moment; equal marks mean no commit in between.
    package struct Mark: Equatable, Sendable {
        fileprivate let words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

        package static func == (lhs: Mark, rhs: Mark) -> Bool {
            lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2
                && lhs.words.3 == rhs.words.3 && lhs.words.4 == rhs.words.4 && lhs.words.5 == rhs.words.5
        }
    }

    // Only closed in deinit; no statement runs on it after init. The header is only read.
    private let connection: OpaquePointer
    private let header: UnsafeRawPointer

    // The header: two copies of 48 bytes. `iVersion` (the format, 3007000) is its first field and
    // `isInit` (1 once the index is built) its byte at offset 12, in the machine's byte order.
    private static let headerCopy = 48
    private static let knownVersion: UInt32 = 3_007_000
    // SQLite maps the index in regions of 32 KiB; the header opens the first.
    private static let regionSize: Int32 = 32_768

    /// Watches the database at `databasePath`; nil when it is not in WAL mode, or SQLite gives no
    /// mapped index with a header of the known format.
    package init?(databasePath: String) {
        var opened: OpaquePointer?
        guard sqlite3_open_v2(databasePath, &opened, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK,
            let connection = opened
        else {
            sqlite3_close_v2(opened)
            return nil
        }
        guard let header = Self.mappedHeader(connection), Self.mark(header) != nil else {
            sqlite3_close_v2(connection)
            return nil
        }
        self.connection = connection
        self.header = header
    }

    deinit {
        sqlite3_close_v2(connection)
    }

    /// The header as it is now; nil while it is being rewritten.
    package func mark() -> Mark? {
        Self.mark(header)
    }

    /// The first region of the connection's WAL index, as SQLite maps it, once a read has opened
    /// the index; nil when the database is not in WAL mode.
    private static func mappedHeader(_ connection: OpaquePointer) -> UnsafeRawPointer? {
        var mode: String?
        var statement: OpaquePointer?
        if sqlite3_prepare_v2(connection, "PRAGMA journal_mode", -1, &statement, nil) == SQLITE_OK,
            sqlite3_step(statement) == SQLITE_ROW, let text = sqlite3_column_text(statement, 0)
        {
            mode = String(cString: text)
        }
        sqlite3_finalize(statement)
        // The pragma read the schema in WAL mode, which opened and mapped the index.
        guard mode == "wal" else { return nil }
        var file: UnsafeMutablePointer<sqlite3_file>?
        guard sqlite3_file_control(connection, "main", SQLITE_FCNTL_FILE_POINTER, &file) == SQLITE_OK,
            let file, let methods = file.pointee.pMethods, methods.pointee.iVersion >= 2,
            let map = methods.pointee.xShmMap
        else { return nil }
        var region: UnsafeMutableRawPointer?
        guard map(file, 0, regionSize, 0, &region) == SQLITE_OK, let region else { return nil }
        return UnsafeRawPointer(region)
    }

    private static func mark(_ header: UnsafeRawPointer) -> Mark? {
        withUnsafeTemporaryAllocation(byteCount: 2 * headerCopy, alignment: 8) { buffer -> Mark? in
            guard let base = buffer.baseAddress else { return nil }
            // The first copy, then the second, in that order: the writer changes them the other way.
            base.copyMemory(from: header, byteCount: headerCopy)
            atomicMemoryFence(ordering: .acquiring)
            (base + headerCopy).copyMemory(from: header + headerCopy, byteCount: headerCopy)
            guard memcmp(base, base + headerCopy, headerCopy) == 0,
                buffer.load(fromByteOffset: 0, as: UInt32.self) == knownVersion,
                buffer.load(fromByteOffset: 12, as: UInt8.self) == 1
            else { return nil }
            func word(_ index: Int) -> UInt64 { buffer.load(fromByteOffset: 8 * index, as: UInt64.self) }
            return Mark(words: (word(0), word(1), word(2), word(3), word(4), word(5)))
        }
    }
}

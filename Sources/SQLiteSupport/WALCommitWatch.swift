import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Tells whether a database in WAL mode has seen a commit, by any connection of any process,
/// since an earlier look: one `pread` of the header of its shared-memory index, no lock and no
/// transaction.
///
/// A commit in WAL mode becomes visible to readers when its writer rewrites that header (SQLite's
/// `-shm` file, "WAL-index format" in its documentation): the header counts transactions and
/// holds the log's last frame and salts, so two equal headers mean that no commit was made in
/// between. SQLite's own readers look at it the same way before they take a read lock: it is
/// stored twice, the writer changes the second copy first, and a reader that finds the copies
/// equal has a header that held at one moment. Copies that differ (a commit being published),
/// a short read or an unknown format give no mark, and the caller reads the database.
///
/// The index file stays the same file while any connection to the database is open: SQLite
/// deletes or truncates it only for the last connection to close or the first to open, and the
/// store that owns a watch keeps its writer connection open for its life.
package final class WALCommitWatch: Sendable {
    /// What the header said at one moment; equal marks mean no commit in between.
    package struct Mark: Equatable, Sendable {
        fileprivate let words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

        package static func == (lhs: Mark, rhs: Mark) -> Bool {
            lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2
                && lhs.words.3 == rhs.words.3 && lhs.words.4 == rhs.words.4 && lhs.words.5 == rhs.words.5
        }
    }

    private let descriptor: Int32

    // The header: two copies of 48 bytes. `iVersion` (the format, 3007000) is its first field and
    // `isInit` (1 once the index is built) its byte at offset 12, in the machine's byte order.
    private static let headerCopy = 48
    private static let knownVersion: UInt32 = 3_007_000

    /// Watches the database at `databasePath`; nil when it has no readable WAL index with a
    /// header of the known format (a database not in WAL mode, or one that keeps its index in
    /// process memory).
    package init?(databasePath: String) {
        let descriptor = open(databasePath + "-shm", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        guard Self.mark(descriptor) != nil else {
            close(descriptor)
            return nil
        }
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }

    /// The header as it is now; nil when it cannot be read whole or is being rewritten.
    package func mark() -> Mark? {
        Self.mark(descriptor)
    }

    private static func mark(_ descriptor: Int32) -> Mark? {
        withUnsafeTemporaryAllocation(byteCount: 2 * headerCopy, alignment: 8) { buffer -> Mark? in
            guard let base = buffer.baseAddress,
                pread(descriptor, base, 2 * headerCopy, 0) == 2 * headerCopy,
                memcmp(base, base + headerCopy, headerCopy) == 0,
                buffer.load(fromByteOffset: 0, as: UInt32.self) == knownVersion,
                buffer.load(fromByteOffset: 12, as: UInt8.self) == 1
            else { return nil }
            func word(_ index: Int) -> UInt64 { buffer.load(fromByteOffset: 8 * index, as: UInt64.self) }
            return Mark(words: (word(0), word(1), word(2), word(3), word(4), word(5)))
        }
    }
}

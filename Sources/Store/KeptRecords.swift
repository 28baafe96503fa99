import KeyManagement
import SQLiteSupport
import Synchronization
import TutelaCore

/// Sealed rows found by point reads, kept for as long as the database has seen no commit since
/// they were read, so that reading a customer again skips the database.
///
/// What is kept is what the file holds: sealed payloads and wrapped data keys, nothing in the
/// clear; a hit is opened like a row just read. Every read first takes the commit watch's mark
/// (a read of the WAL index header, see `WALCommitWatch`). Rows are served only to a read whose
/// mark equals the one they were kept under, and a row is kept under the mark its read took
/// before it searched the database, so a kept row is never older than its mark: once any
/// connection, in this process or another, commits (an update, an erasure, a re-wrap), the next
/// read finds a new mark, drops every row and reads the database. A change is therefore in force
/// from the next read on, as without the cache. When the watch gives no mark (the header is
/// being rewritten), the read goes to the database and keeps nothing.
final class KeptRecords: Sendable {
    /// A row of `records` with, when the read joined it, its subject's wrapped data key.
    final class Row: Sendable {
        let record: StoredRecord
        let wrapped: WrappedDataKey?
        /// Whether `wrapped` was read (nil then means the subject has no data key).
        let joined: Bool

        init(record: StoredRecord, wrapped: WrappedDataKey?, joined: Bool) {
            self.record = record
            self.wrapped = wrapped
            self.joined = joined
        }
    }

    private struct Key: Hashable {
        let collection: String
        let id: String
    }

    private struct State {
        var mark: WALCommitWatch.Mark?
        var rows: ClockTable<Key, Row>
        var hits = 0

        /// Empties the table for rows kept under `mark`, giving back the rows it held.
        mutating func restart(at mark: WALCommitWatch.Mark?) -> ClockTable<Key, Row> {
            defer {
                rows = ClockTable(capacity: rows.capacity)
                self.mark = mark
            }
            return rows
        }
    }

    private let watch: WALCommitWatch
    private let state: Mutex<State>

    /// Keeps at most `capacity` rows, valid while `watch` sees no commit.
    init(capacity: Int, watch: WALCommitWatch) {
        self.watch = watch
        state = Mutex(State(rows: ClockTable(capacity: capacity)))
    }

    /// Drops every kept row now, rather than at the next read (an erasure's sealed rows then
    /// leave memory with it).
    func dropAll() {
        // The rows are released once the lock is, when the returned table is discarded.
        _ = state.withLock { $0.restart(at: nil) }
    }

    /// How many reads were answered from kept rows, for tests.
    var hits: Int { state.withLock { $0.hits } }

    /// How many rows are kept, for tests.
    var count: Int { state.withLock { $0.rows.count } }

    /// The row of `collection`/`id`: kept, or found by `search` (and then kept).
    /// - Parameter needsKey: whether the caller needs the row's wrapped key; a row kept from a
    ///   search without it does not serve such a read.
    func row(collection: String, id: String, needsKey: Bool, search: () throws -> Row?) rethrows -> Row? {
        guard let mark = watch.mark() else { return try search() }
        let key = Key(collection: collection, id: id)
        // Rows dropped for a commit are released after the lock is.
        let (kept, dropped) = state.withLock { state -> (Row?, ClockTable<Key, Row>?) in
            guard state.mark == mark else { return (nil, state.restart(at: mark)) }
            guard let row = state.rows.value(for: key), row.joined || !needsKey else { return (nil, nil) }
            state.hits += 1
            return (row, nil)
        }
        _ = dropped
        if let kept { return kept }
        guard let found = try search() else { return nil }
        state.withLock { state in
            if state.mark == mark { state.rows.insert(found, for: key) }
        }
        return found
    }
}

import Foundation
import GRDB
import KeyManagement
import SQLiteSupport
import TutelaCore

/// The embedded default backend: one SQLite database file in WAL mode, through GRDB.
///
/// `secure_delete` is on, so an erased subject's wrapped data key and records are overwritten in
/// the file rather than left in free pages. GRDB keeps statement arguments out of its errors, so
/// no stored value reaches a message.
public final class SQLiteRecordStore: RecordStore {
    private let pool: DatabasePool
    private let reader: SQLitePointReader
    private let kept: KeptRecords?

    /// How many sealed rows a store keeps from its point reads by default (see `KeptRecords`):
    /// as many as the data keys a cipher keeps, so a customer whose key is kept can be too.
    public static let defaultKeptRecords = 16_384

    /// Opens (and if needed creates and migrates) the database at `path`.
    /// - Parameter keptRecords: how many sealed rows found by point reads to keep until the
    ///   database's next commit; 0 reads the database every time.
    /// - Throws: `TutelaError` with `.storage` when the file cannot be opened.
    public init(path: String, keptRecords: Int = SQLiteRecordStore.defaultKeptRecords) throws {
        var configuration = Configuration()
        configuration.busyMode = .polling(seconds: 10)
        configuration.label = "tutela.store"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA secure_delete = ON")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            // An erasure, a key change or an import is reported only once it is on disk.
            try pool.requireDurableCommits()
            let migrator = Self.migrator
            let upToDate = try pool.read { try migrator.hasCompletedMigrations($0) }
            try migrator.migrate(pool)
            if !upToDate {
                // A migration that moved a table leaves its copy in the write-ahead log: move
                // it into the file and give the log's space back.
                _ = try pool.writeWithoutTransaction { try $0.checkpoint(.truncate) }
            }
            reader = SQLitePointReader(path: path)
            // After the pool is open: its writer connection keeps the index file in place.
            kept =
                keptRecords > 0
                ? WALCommitWatch(databasePath: path).map { KeptRecords(capacity: keptRecords, watch: $0) } : nil
        } catch {
            throw TutelaError(.storage, "cannot open the database \(path): \(Self.describe(error))", cause: error)
        }
    }

    /// The writer connection's `synchronous` setting, for tests.
    func writerSynchronousSetting() throws -> Int { try pool.writerSynchronousSetting() }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            // Few secondary indexes on purpose: every index is another B-tree write per record.
            // Re-wrapping walks data_keys in subject order instead of indexing key versions, and
            // a record's own row lists its blind-index entries for replacement and erasure.
            try db.execute(
                sql: """
                    CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
                    CREATE TABLE data_keys (
                        subject TEXT PRIMARY KEY NOT NULL,
                        key_id BLOB NOT NULL,
                        kek_version INTEGER NOT NULL,
                        wrapped BLOB NOT NULL
                    ) WITHOUT ROWID;
                    CREATE TABLE records (
                        collection TEXT NOT NULL,
                        id TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        payload BLOB NOT NULL,
                        lookups BLOB,
                        UNIQUE (collection, id)
                    );
                    CREATE INDEX records_by_subject ON records(subject);
                    CREATE TABLE lookups (
                        collection TEXT NOT NULL,
                        field TEXT NOT NULL,
                        digest BLOB NOT NULL,
                        record_id TEXT NOT NULL,
                        PRIMARY KEY (collection, field, digest, record_id)
                    ) WITHOUT ROWID;
                    CREATE TABLE erasures (subject TEXT PRIMARY KEY NOT NULL, erased_at INTEGER NOT NULL) WITHOUT ROWID;
                    """
            )
        }
        migrator.registerMigration("v2-principals") { db in
            try db.execute(
                sql: """
                    CREATE TABLE principals (
                        name TEXT PRIMARY KEY NOT NULL,
                        roles TEXT NOT NULL,
                        attributes TEXT NOT NULL,
                        disabled INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    """
            )
        }
        migrator.registerMigration("v3-api-keys") { db in
            try db.execute(
                sql: """
                    CREATE TABLE api_keys (
                        id TEXT PRIMARY KEY NOT NULL,
                        principal TEXT NOT NULL,
                        secret_hash BLOB NOT NULL,
                        created_ms INTEGER NOT NULL,
                        expires_ms INTEGER,
                        revoked_ms INTEGER
                    ) WITHOUT ROWID;
                    """
            )
        }
        migrator.registerMigration("v4-records-keyed") { db in
            // A record is stored under its key, (collection, id), in the table's own B-tree: one
            // write per record instead of a row and a unique index beside it, and a read is one
            // search instead of two. The subject index leaves out records that are their own
            // subject (a customer is): erasure finds those by key, in each collection.
            try db.execute(
                sql: """
                    CREATE TABLE records_keyed (
                        collection TEXT NOT NULL,
                        id TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        payload BLOB NOT NULL,
                        lookups BLOB,
                        PRIMARY KEY (collection, id)
                    ) WITHOUT ROWID;
                    INSERT INTO records_keyed (collection, id, subject, payload, lookups)
                        SELECT collection, id, subject, payload, lookups FROM records;
                    DROP TABLE records;
                    ALTER TABLE records_keyed RENAME TO records;
                    CREATE INDEX records_by_subject ON records(subject) WHERE subject <> id;
                    """
            )
        }
        migrator.registerMigration("v5-short-lookups") { db in
            // Blind-index entries are keyed by their digest (16 bytes now, the first half of
            // the earlier 32) and record id alone: a digest's key is its collection and field's
            // own, so the digest already tells them apart, and each entry is half the size.
            try db.execute(
                sql: """
                    CREATE TABLE lookups_short (
                        digest BLOB NOT NULL,
                        record_id TEXT NOT NULL,
                        PRIMARY KEY (digest, record_id)
                    ) WITHOUT ROWID;
                    INSERT OR IGNORE INTO lookups_short (digest, record_id)
                        SELECT substr(digest, 1, \(BlindIndexer.digestLength)), record_id FROM lookups;
                    DROP TABLE lookups;
                    ALTER TABLE lookups_short RENAME TO lookups;
                    """
            )
        }
        return migrator
    }

    public func apply(_ batch: WriteBatch) async throws {
        let prepared = PreparedBatch(batch)
        try await write { db in try Self.write(prepared, to: db) }
    }

    public func apply(
        batches next: @escaping @Sendable () async throws -> WriteBatch?,
        written: @escaping @Sendable (Int) -> Void
    ) async throws {
        // The writer thread plans each batch's statements (its chunks, each record's list of
        // index entries) and binds their values: sealing, not writing, is what the stream
        // waits for (a batch of 256 customers took 1.6-3.1 ms to seal against 1.7-2.1 ms to
        // write, the writer waiting 0.4-2 ms for each), so the work goes to the side with time
        // to spare.
        let handoff = BlockingHandoff<WriteBatch>()
        let feeder = Task {
            do {
                while let batch = try await next() {
                    guard await handoff.send(batch) else { break }
                }
                handoff.finish()
            } catch {
                handoff.finish(throwing: error)
            }
        }
        defer {
            handoff.close()
            feeder.cancel()
        }
        // The writer thread waits for each batch inside the transaction; the feeder always
        // finishes the handoff, so the wait ends when the stream does, with its error if any.
        try await write { db in
            var count = 0
            while let batch = try handoff.next() {
                try Self.write(PreparedBatch(batch), to: db)
                count += batch.records.count
                written(count)
            }
        }
    }

    /// Writes one batch inside the caller's transaction.
    ///
    /// Keys, records and index entries go in with one statement per chunk of rows (see
    /// `RowChunk`): a statement's fixed cost (cursors opened, the program started
    /// and reset) is paid once per chunk rather than once per row.
    private static func write(_ prepared: PreparedBatch, to db: Database) throws {
        let batch = prepared.batch
        let currentKey = try db.cachedStatement(sql: "SELECT key_id FROM data_keys WHERE subject = ?")
        for (subject, keyID) in batch.expectedKeyIDs {
            guard let current = try currentKey.run(binding: [.text(subject)], decode: { $0.blob(0) }),
                current == keyID
            else {
                throw TutelaError(.conflict, "a data key changed during the write")
            }
        }
        // A key is not inserted for an erased subject nor over another key; only when a chunk
        // inserted fewer keys than it holds are its keys looked at one by one, to say why.
        for chunk in prepared.keyChunks {
            try db.cachedStatement(sql: SQL.insertKeys[chunk.shift]).run { prepared.bindKeys(chunk.rows, to: &$0) }
            guard db.changesCount == chunk.rows.count else {
                throw try refusedKey(batch.newDataKeys[chunk.rows], db: db)
            }
        }
        for (chunk, distinctIDs) in prepared.recordChunks {
            guard distinctIDs else {
                // An id twice in a chunk: the later row replaces the earlier, one at a time.
                for index in chunk.rows { try writeOne(index, of: prepared, db: db) }
                continue
            }
            try db.cachedStatement(sql: SQL.insertRecords[chunk.shift]).run {
                prepared.bindRecords(chunk.rows, to: &$0)
            }
            if db.changesCount != chunk.rows.count {
                // Some records existed: each row that does not hold this batch's record is
                // replaced (its old index entries removed first).
                for index in chunk.rows { try replaceIfOlder(index, of: prepared, db: db) }
            }
            try insertLookups(prepared.lookups(of: chunk.rows), of: prepared, db: db)
        }
        let rewrap = try db.cachedStatement(
            sql:
                "UPDATE data_keys SET kek_version = ?, wrapped = ? WHERE subject = ? AND key_id = ? AND kek_version = ?"
        )
        for (key, previous) in batch.rewrapped {
            try rewrap.execute(arguments: [
                key.wrapped.kekVersion, Data(key.wrapped.sealed), key.subject, Data(key.wrapped.id), previous,
            ])
        }
    }

    /// Inserts or replaces one record and adds its index entries.
    private static func writeOne(_ index: Int, of prepared: PreparedBatch, db: Database) throws {
        try db.cachedStatement(sql: SQL.insertRecords[0]).run { prepared.bindRecords(index..<index + 1, to: &$0) }
        if db.changesCount == 0 {
            try replace(index, of: prepared, db: db)
        }
        try insertLookups(prepared.lookups(of: index..<index + 1), of: prepared, db: db)
    }

    /// Inserts index entries of a batch (`entries` indexes its list of them), a chunk of rows
    /// per statement.
    private static func insertLookups(_ entries: Range<Int>, of prepared: PreparedBatch, db: Database) throws {
        for piece in RowChunk.split(entries) {
            try db.cachedStatement(sql: SQL.insertLookups[piece.shift]).run {
                prepared.bindLookups(piece.rows, to: &$0)
            }
        }
    }

    /// Replaces a stored record unless its row already holds exactly this one (as when a
    /// chunk's insert just wrote it).
    private static func replaceIfOlder(_ index: Int, of prepared: PreparedBatch, db: Database) throws {
        let record = prepared.batch.records[index]
        let encodedLookups = prepared.encodedLookups[index]
        let stored = try db.cachedStatement(
            sql: "SELECT subject, payload, lookups FROM records WHERE collection = ? AND id = ?"
        )
        let same = try stored.run(binding: [.text(record.collection), .text(record.id)]) { row in
            row.text(0) == record.subject && row.blob(1) == record.payload
                && (row.isNull(2) ? nil : row.blob(2)) == encodedLookups
        }
        if same != true { try replace(index, of: prepared, db: db) }
    }

    /// Overwrites a stored record after dropping its old index entries.
    private static func replace(_ index: Int, of prepared: PreparedBatch, db: Database) throws {
        let stored = prepared.batch.records[index]
        try deleteLookups(collection: stored.collection, id: stored.id, db: db)
        try db.cachedStatement(
            sql: "UPDATE records SET subject = ?, payload = ?, lookups = ? WHERE collection = ? AND id = ?"
        ).run(binding: [
            .text(stored.subject), .blob(stored.payload), prepared.encodedLookups[index].map { .blob($0) } ?? .null,
            .text(stored.collection), .text(stored.id),
        ])
    }

    /// Why a chunk of new data keys was not inserted whole: the first subject that was erased
    /// or already has another key.
    private static func refusedKey(_ keys: ArraySlice<StoredDataKey>, db: Database) throws -> TutelaError {
        let erased = try db.cachedStatement(sql: "SELECT 1 FROM erasures WHERE subject = ?")
        let current = try db.cachedStatement(sql: "SELECT key_id FROM data_keys WHERE subject = ?")
        for key in keys {
            if try erased.run(binding: [.text(key.subject)]) {
                return TutelaError(
                    .subjectErased,
                    "subject \(key.subject) was erased; its data cannot be written again"
                )
            }
            if try current.run(binding: [.text(key.subject)], decode: { $0.blob(0) }) != key.wrapped.id {
                break
            }
        }
        return TutelaError(.conflict, "another writer created the same subject's data key")
    }

    /// The statements of a batch's chunks, by chunk size: index n inserts 2^n rows.
    private enum SQL {
        static let insertKeys = RowChunk.statements(row: "(?, ?, ?, ?)") { values in
            """
            INSERT OR IGNORE INTO data_keys (subject, key_id, kek_version, wrapped)
            SELECT column1, column2, column3, column4 FROM (VALUES \(values))
            WHERE NOT EXISTS (SELECT 1 FROM erasures WHERE subject = column1)
            """
        }
        static let insertRecords = RowChunk.statements(row: "(?, ?, ?, ?, ?)") { values in
            """
            INSERT INTO records (collection, id, subject, payload, lookups) VALUES \(values)
            ON CONFLICT (collection, id) DO NOTHING
            """
        }
        static let insertLookups = RowChunk.statements(row: "(?, ?)") { values in
            "INSERT OR IGNORE INTO lookups (digest, record_id) VALUES \(values)"
        }
    }

    /// Deletes the index entries listed in a record's row.
    /// - Parameter scanWhenDamaged: when the row's list does not parse, delete every entry of
    ///   this record id instead (a scan of the index, and entries of records with the same id in
    ///   other collections go too) rather than fail: an erasure must not be held up by it.
    /// - Returns: how many were deleted.
    @discardableResult
    private static func deleteLookups(
        collection: String,
        id: String,
        db: Database,
        scanWhenDamaged: Bool = false
    ) throws -> Int {
        let listed = try Data.fetchOne(
            db.cachedStatement(sql: "SELECT lookups FROM records WHERE collection = ? AND id = ?"),
            arguments: [collection, id]
        )
        let delete = try db.cachedStatement(
            sql: "DELETE FROM lookups WHERE digest = ? AND record_id = ?"
        )
        var count = 0
        let lookups: [Lookup]
        do {
            lookups = try LookupList.decode(listed)
        } catch  where scanWhenDamaged {
            try db.execute(sql: "DELETE FROM lookups WHERE record_id = ?", arguments: [id])
            return db.changesCount
        } catch {
            throw TutelaError(
                .storage,
                "the list of blind-index entries stored with \(collection)/\(id) is damaged or was altered"
            )
        }
        for lookup in lookups {
            // Rows written before the shorter digests list all 32 bytes; the entry has the first 16.
            try delete.execute(arguments: [Data(lookup.digest.prefix(BlindIndexer.digestLength)), id])
            count += db.changesCount
        }
        return count
    }

    public func record(collection: String, id: String) async throws -> (StoredRecord, WrappedDataKey?)? {
        guard let kept else { return try searchRecord(collection: collection, id: id) }
        let row = try kept.row(collection: collection, id: id, needsKey: true) {
            try searchRecord(collection: collection, id: id).map {
                KeptRecords.Row(record: $0.0, wrapped: $0.1, joined: true)
            }
        }
        return row.map { ($0.record, $0.wrapped) }
    }

    public func recordOnly(collection: String, id: String) async throws -> StoredRecord? {
        guard let kept else { return try searchRecordOnly(collection: collection, id: id) }
        let row = try kept.row(collection: collection, id: id, needsKey: false) {
            try searchRecordOnly(collection: collection, id: id).map {
                KeptRecords.Row(record: $0, wrapped: nil, joined: false)
            }
        }
        return row?.record
    }

    private func searchRecord(collection: String, id: String) throws -> (StoredRecord, WrappedDataKey?)? {
        try reader.fetchOne(
            Self.selectRecordByID,
            [.text(collection), .text(id)],
            decode: { Self.storedRecord($0) }
        )
    }

    private func searchRecordOnly(collection: String, id: String) throws -> StoredRecord? {
        try reader.fetchOne(
            "SELECT collection, id, subject, payload FROM records WHERE collection = ? AND id = ?",
            [.text(collection), .text(id)],
            decode: { Self.recordOnly($0) }
        )
    }

    /// How many point reads were answered from rows kept since the last commit, for tests.
    var keptRecordHits: Int { kept?.hits ?? 0 }

    /// How many sealed rows are kept, for tests.
    var keptRecordCount: Int { kept?.count ?? 0 }

    public func dataKey(subject: String) async throws -> WrappedDataKey? {
        try reader.fetchOne(
            "SELECT key_id, kek_version, wrapped FROM data_keys WHERE subject = ?",
            [.text(subject)],
            decode: { WrappedDataKey(id: $0.blob(0), kekVersion: $0.int(1), sealed: $0.blob(2)) }
        )
    }

    /// The first four columns of `selectRecords`, read by the point reader.
    @inline(__always)
    private static func recordOnly(_ row: borrowing SQLitePointReader.Columns) -> StoredRecord {
        StoredRecord(collection: row.text(0), id: row.text(1), subject: row.text(2), payload: row.blob(3), lookups: [])
    }

    /// A row of `selectRecords` read by the point reader.
    @inline(__always)
    private static func storedRecord(_ row: borrowing SQLitePointReader.Columns) -> (StoredRecord, WrappedDataKey?) {
        let record = recordOnly(row)
        guard !row.isNull(4) else { return (record, nil) }
        return (record, WrappedDataKey(id: row.blob(4), kekVersion: row.int(5), sealed: row.blob(6)))
    }

    public func records(
        collection: String,
        after afterID: String?,
        limit: Int
    ) async throws
        -> [(StoredRecord, WrappedDataKey?)]
    {
        try await read { db in
            let rows = try Row.fetchAll(
                db.cachedStatement(
                    sql: Self.selectRecords + " WHERE r.collection = ? AND r.id > ? ORDER BY r.id LIMIT ?"
                ),
                arguments: [collection, afterID ?? "", limit]
            )
            return try rows.map { try Self.decodeRecord($0, db: db) }
        }
    }

    private static let selectRecords = """
        SELECT r.collection, r.id, r.subject, r.payload, k.key_id, k.kek_version, k.wrapped
        FROM records r LEFT JOIN data_keys k ON k.subject = r.subject
        """

    /// `selectRecords` for one record, made once: the text is the point reader's statement key.
    private static let selectRecordByID = selectRecords + " WHERE r.collection = ? AND r.id = ?"

    private static func decodeRecord(_ row: Row, db: Database) throws -> (StoredRecord, WrappedDataKey?) {
        let what = "a stored record row"
        let record = StoredRecord(
            collection: try row.stored(0, of: what),
            id: try row.stored(1, of: what),
            subject: try row.stored(2, of: what),
            payload: Array(try row.stored(3, of: what) as Data),
            lookups: []
        )
        var key: WrappedDataKey?
        if let keyID: Data = try row.stored(4, of: what), let version: Int = try row.stored(5, of: what),
            let wrapped: Data = try row.stored(6, of: what)
        {
            key = WrappedDataKey(id: Array(keyID), kekVersion: version, sealed: Array(wrapped))
        }
        return (record, key)
    }

    public func records(
        collection: String,
        field: String,
        digest: [UInt8]
    ) async throws -> [(StoredRecord, WrappedDataKey?)] {
        // The index entries and their records in one statement, from the entries (CROSS JOIN
        // keeps SQLite from starting at the records).
        try reader.fetchAll(
            """
            SELECT r.collection, r.id, r.subject, r.payload, k.key_id, k.kek_version, k.wrapped
            FROM lookups l CROSS JOIN records r ON r.collection = ? AND r.id = l.record_id
            LEFT JOIN data_keys k ON k.subject = r.subject
            WHERE l.digest = ? ORDER BY l.record_id
            """,
            [.text(collection), .blob(digest)],
            decode: { Self.storedRecord($0) }
        )
    }

    public func recordsOnly(collection: String, field: String, digest: [UInt8]) async throws -> [StoredRecord] {
        try reader.fetchAll(
            """
            SELECT r.collection, r.id, r.subject, r.payload
            FROM lookups l CROSS JOIN records r ON r.collection = ? AND r.id = l.record_id
            WHERE l.digest = ? ORDER BY l.record_id
            """,
            [.text(collection), .blob(digest)],
            decode: { Self.recordOnly($0) }
        )
    }

    /// Subjects looked up by one statement in `dataKeys(subjects:)` and `erasedSubjects(among:)`.
    private static let subjectsPerQuery = 256
    private static let selectDataKeys =
        "SELECT subject, key_id, kek_version, wrapped FROM data_keys WHERE subject IN ("
        + repeatElement("?", count: subjectsPerQuery).joined(separator: ", ") + ")"

    public func dataKeys(subjects: Set<String>) async throws -> [String: WrappedDataKey] {
        var result: [String: WrappedDataKey] = [:]
        result.reserveCapacity(subjects.count)
        let found = try fetchAll(Self.selectDataKeys, subjects: subjects) { row in
            (row.text(0), WrappedDataKey(id: row.blob(1), kekVersion: row.int(2), sealed: row.blob(3)))
        }
        for (subject, key) in found { result[subject] = key }
        return result
    }

    /// The rows a statement with `subjectsPerQuery` placeholders finds for `subjects`.
    ///
    /// A statement per few hundred subjects rather than per subject, on the calling thread: a
    /// batch of new customers, whose keys are all still to be made, costs one search each. A
    /// short last list repeats its first subject, so that there is one statement to cache.
    private func fetchAll<T>(
        _ sql: String,
        subjects: Set<String>,
        decode: (borrowing SQLitePointReader.Columns) throws -> T
    ) throws -> [T] {
        let subjects = Array(subjects)
        var rows: [T] = []
        for start in stride(from: 0, to: subjects.count, by: Self.subjectsPerQuery) {
            var arguments = subjects[start..<min(start + Self.subjectsPerQuery, subjects.count)].map {
                SQLitePointReader.Argument.text($0)
            }
            arguments += repeatElement(arguments[0], count: Self.subjectsPerQuery - arguments.count)
            rows += try reader.fetchAll(sql, arguments, decode: decode)
        }
        return rows
    }

    public func dataKeys(
        notWrappedUnder version: Int,
        after afterSubject: String?,
        limit: Int
    ) async throws
        -> [StoredDataKey]
    {
        try await read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT subject, key_id, kek_version, wrapped FROM data_keys
                    WHERE subject > ? AND kek_version <> ? ORDER BY subject LIMIT ?
                    """,
                arguments: [afterSubject ?? "", version, limit]
            ).map { row in
                let what = "a stored data key row"
                return StoredDataKey(
                    subject: try row.stored(0, of: what),
                    wrapped: WrappedDataKey(
                        id: Array(try row.stored(1, of: what) as Data),
                        kekVersion: try row.stored(2, of: what),
                        sealed: Array(try row.stored(3, of: what) as Data)
                    )
                )
            }
        }
    }

    public func dataKeyCountsByVersion() async throws -> [Int: Int] {
        try await read { db in
            var counts: [Int: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT kek_version, COUNT(*) FROM data_keys GROUP BY kek_version") {
                counts[try row.stored(0, of: "a stored data key row")] = try row.stored(1, of: "a count")
            }
            return counts
        }
    }

    public func count(collection: String) async throws -> Int {
        try await read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM records WHERE collection = ?", arguments: [collection]) ?? 0
        }
    }

    public func isErased(subject: String) async throws -> Bool {
        try reader.fetchOne("SELECT 1 FROM erasures WHERE subject = ?", [.text(subject)]) { _ in true } ?? false
    }

    private static let selectErasures =
        "SELECT subject FROM erasures WHERE subject IN ("
        + repeatElement("?", count: subjectsPerQuery).joined(separator: ", ") + ")"

    public func erasedSubjects(among subjects: Set<String>) async throws -> Set<String> {
        Set(try fetchAll(Self.selectErasures, subjects: subjects) { $0.text(0) })
    }

    /// The collections that hold records, one index search each.
    private static func collections(_ db: Database) throws -> [String] {
        let next = try db.cachedStatement(sql: "SELECT MIN(collection) FROM records WHERE collection > ?")
        var names: [String] = []
        var name = try String.fetchOne(db, sql: "SELECT MIN(collection) FROM records")
        while let current = name {
            names.append(current)
            name = try String.fetchOne(next, arguments: [current])
        }
        return names
    }

    public func erase(subject: String, at time: Int64) async throws -> ErasureReport {
        let report = try await write { db in
            try db.execute(sql: "DELETE FROM data_keys WHERE subject = ?", arguments: [subject])
            let keyDestroyed = db.changesCount > 0
            var lookups = 0
            var keys = try Row.fetchAll(
                db,
                sql: "SELECT collection, id FROM records WHERE subject = ? AND subject <> id",
                arguments: [subject]
            ).map { row in
                (
                    collection: try row.stored(0, of: "a stored record row") as String,
                    id: try row.stored(1, of: "a stored record row") as String
                )
            }
            let ownRecord = try db.cachedStatement(
                sql: "SELECT 1 FROM records WHERE collection = ? AND id = ? AND subject = id"
            )
            for collection in try Self.collections(db)
            where try Bool.fetchOne(ownRecord, arguments: [collection, subject]) == true {
                keys.append((collection, subject))
            }
            let deleteRecord = try db.cachedStatement(sql: "DELETE FROM records WHERE collection = ? AND id = ?")
            var records = 0
            for key in keys {
                lookups += try Self.deleteLookups(
                    collection: key.collection,
                    id: key.id,
                    db: db,
                    scanWhenDamaged: true
                )
                try deleteRecord.execute(arguments: [key.collection, key.id])
                records += db.changesCount
            }
            try db.execute(
                sql: "INSERT OR IGNORE INTO erasures (subject, erased_at) VALUES (?, ?)",
                arguments: [subject, time]
            )
            return ErasureReport(
                dataKeyDestroyed: keyDestroyed,
                recordsRemoved: records,
                lookupsRemoved: lookups,
                alreadyErased: db.changesCount == 0
            )
        }
        // Its sealed rows go now; the commit would drop them at the next read anyway.
        kept?.dropAll()
        // Move the overwritten pages out of the write-ahead log into the main file, where
        // secure_delete has zeroed the old content.
        _ = try? await pool.writeWithoutTransaction { db in
            try db.checkpoint(.truncate)
        }
        return report
    }

    public func metadata(_ key: String) async throws -> String? {
        try await read { db in
            try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key])
        }
    }

    public func setMetadata(_ key: String, _ value: String) async throws {
        try await write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", arguments: [key, value])
        }
    }

    // MARK: Error mapping

    func writeDatabase<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await write(body)
    }

    func readDatabase<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await read(body)
    }

    private func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.write(body)
        } catch let error as TutelaError {
            throw error
        } catch let error as CancellationError {
            throw error
        } catch {
            throw TutelaError(.storage, "the database write failed: \(Self.describe(error))", cause: error)
        }
    }

    private func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch let error as TutelaError {
            throw error
        } catch let error as CancellationError {
            throw error
        } catch {
            throw TutelaError(.storage, "the database read failed: \(Self.describe(error))", cause: error)
        }
    }

    /// A description of a database error without statement arguments (GRDB leaves them out).
    private static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError {
            return "SQLite error \(error.resultCode.primaryResultCode.rawValue): \(error.message ?? "unknown")"
        }
        return String(describing: type(of: error))
    }
}

/// A write batch planned as statements: its keys, records and index entries in chunks, and each
/// record's list of its index entries; the values are bound from the batch itself.
private struct PreparedBatch: Sendable {
    /// One blind-index entry: its record's position in the batch and its own in the record's.
    struct Entry: Sendable {
        let record: Int
        let lookup: Int
    }

    let batch: WriteBatch
    let keyChunks: [RowChunk]
    /// The records' chunks, each with whether no id occurs twice in it (else it is written
    /// record by record).
    let recordChunks: [(chunk: RowChunk, distinctIDs: Bool)]
    /// Each record's list of its index entries, kept in its row.
    let encodedLookups: [[UInt8]?]
    /// The index entries of every record, one record after the other.
    let entries: [Entry]
    /// Where each record's entries start in `entries`, and their end after the last.
    private let entryStarts: [Int]

    init(_ batch: WriteBatch) {
        self.batch = batch
        keyChunks = RowChunk.split(0..<batch.newDataKeys.count)
        recordChunks = RowChunk.split(0..<batch.records.count).map { chunk in
            var ids = Set<String>(minimumCapacity: chunk.rows.count)
            let distinct = batch.records[chunk.rows].allSatisfy { ids.insert($0.id).inserted }
            return (chunk, distinct)
        }
        encodedLookups = batch.records.map { LookupList.encode($0.lookups) }
        var entries: [Entry] = []
        var entryStarts: [Int] = []
        entries.reserveCapacity(2 * batch.records.count)
        entryStarts.reserveCapacity(batch.records.count + 1)
        for (record, stored) in batch.records.enumerated() {
            entryStarts.append(entries.count)
            for lookup in stored.lookups.indices { entries.append(Entry(record: record, lookup: lookup)) }
        }
        entryStarts.append(entries.count)
        self.entries = entries
        self.entryStarts = entryStarts
    }

    /// The index entries of the records at `records`, as positions in `entries`.
    func lookups(of records: Range<Int>) -> Range<Int> {
        entryStarts[records.lowerBound]..<entryStarts[records.upperBound]
    }

    /// Binds subject, key id, key-encryption key version and wrapped key of each new key.
    func bindKeys(_ rows: Range<Int>, to binder: inout SQLitePointReader.Binder) {
        for index in rows {
            let key = batch.newDataKeys[index]
            binder.text(key.subject)
            binder.blob(key.wrapped.id)
            binder.int(key.wrapped.kekVersion)
            binder.blob(key.wrapped.sealed)
        }
    }

    /// Binds collection, id, subject, payload and index-entry list of each record.
    func bindRecords(_ rows: Range<Int>, to binder: inout SQLitePointReader.Binder) {
        for index in rows {
            let record = batch.records[index]
            binder.text(record.collection)
            binder.text(record.id)
            binder.text(record.subject)
            binder.blob(record.payload)
            if let list = encodedLookups[index] { binder.blob(list) } else { binder.null() }
        }
    }

    /// Binds digest and record id of each index entry.
    func bindLookups(_ rows: Range<Int>, to binder: inout SQLitePointReader.Binder) {
        for entry in entries[rows] {
            let record = batch.records[entry.record]
            binder.blob(record.lookups[entry.lookup].digest)
            binder.text(record.id)
        }
    }

}

/// The blind-index entries of a record, kept in its row so that replacing or erasing it removes
/// exactly its entries: per entry a field-name length byte, the name, a digest length byte and
/// the digest.
enum LookupList {
    static func encode(_ lookups: [Lookup]) -> [UInt8]? {
        guard !lookups.isEmpty else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(lookups.count * 48)
        for lookup in lookups {
            bytes.append(UInt8(lookup.field.utf8.count))
            bytes.append(contentsOf: lookup.field.utf8)
            bytes.append(UInt8(lookup.digest.count))
            bytes.append(contentsOf: lookup.digest)
        }
        return bytes
    }

    static func decode(_ data: Data?) throws -> [Lookup] {
        guard let data else { return [] }
        var reader = ByteReader(bytes: Array(data))
        var lookups: [Lookup] = []
        while !reader.isAtEnd {
            let field = String(decoding: try reader.bytes(Int(try reader.byte())), as: UTF8.self)
            lookups.append(Lookup(field: field, digest: Array(try reader.bytes(Int(try reader.byte())))))
        }
        return lookups
    }
}

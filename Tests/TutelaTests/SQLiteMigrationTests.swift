import Foundation
import GRDB
import KeyManagement
import Store
import Testing
import TutelaCore
import TutelaTestSupport

@Suite("SQLite store migrations")
struct SQLiteMigrationTests {
    @Test(
        "a database in the earlier layout (records in a rowid table, 32-byte blind-index digests) is migrated whole"
    )
    func recordsMoveToKeyedTable() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tutela-migration-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/store.sqlite"
        let schema = try TestEnvironment.schema()
        let keyring = Keyring.generate(now: 0)
        do {
            let store = EncryptedStore(
                backend: try SQLiteRecordStore(path: path),
                schema: schema,
                keyring: keyring,
                tenant: "acme"
            )
            try await store.put([
                SampleRecords.customer("c1", email: "alice@example.com"),
                SampleRecords.customer("c2", email: "bob@example.com"),
            ])
            try await store.put([SampleRecords.interaction("i1", of: "c1"), SampleRecords.interaction("i2", of: "c2")])
        }
        // Put the records back into the layout of the versions before the keyed table.
        let pool = try DatabasePool(path: path)
        try await pool.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE records_rowid (
                        collection TEXT NOT NULL, id TEXT NOT NULL, subject TEXT NOT NULL,
                        payload BLOB NOT NULL, lookups BLOB, UNIQUE (collection, id)
                    );
                    INSERT INTO records_rowid SELECT collection, id, subject, payload, lookups FROM records;
                    DROP TABLE records;
                    ALTER TABLE records_rowid RENAME TO records;
                    CREATE INDEX records_by_subject ON records(subject);
                    CREATE TABLE lookups_long (
                        collection TEXT NOT NULL, field TEXT NOT NULL, digest BLOB NOT NULL, record_id TEXT NOT NULL,
                        PRIMARY KEY (collection, field, digest, record_id)
                    ) WITHOUT ROWID;
                    INSERT INTO lookups_long SELECT 'customers', 'email', CAST(digest || randomblob(16) AS BLOB), record_id
                        FROM lookups;
                    DROP TABLE lookups;
                    ALTER TABLE lookups_long RENAME TO lookups;
                    DELETE FROM grdb_migrations WHERE identifier IN ('v4-records-keyed', 'v5-short-lookups');
                    """
            )
        }
        try pool.close()

        let store = EncryptedStore(
            backend: try SQLiteRecordStore(path: path),
            schema: schema,
            keyring: keyring,
            tenant: "acme"
        )
        // The tables' copies went from the write-ahead log into the file, and the log was emptied.
        let log = try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int
        #expect(log == 0)
        let layout = try await DatabaseQueue(path: path).read { db in
            try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'records'")
        }
        #expect(layout?.contains("WITHOUT ROWID") == true)
        let digestLengths = try await DatabaseQueue(path: path).read { db in
            try String.fetchAll(db, sql: "SELECT DISTINCT typeof(digest) || ' ' || length(digest) FROM lookups")
        }
        #expect(digestLengths == ["blob 16"])
        #expect(try await store.get(collection: "customers", id: "c1").fields["email"] == .string("alice@example.com"))
        let found = try await store.find(collection: "customers", field: "email", value: "bob@example.com")
        #expect(found.map(\.id) == ["c2"])
        #expect(try await store.page(collection: "interactions", after: nil, limit: 10).map(\.id) == ["i1", "i2"])

        let report = try await store.erase(subject: "c1", at: 1)
        #expect(report == ErasureReport(dataKeyDestroyed: true, recordsRemoved: 2, lookupsRemoved: 2))
        #expect(try await store.page(collection: "customers", after: nil, limit: 10).map(\.id) == ["c2"])
        #expect(try await store.page(collection: "interactions", after: nil, limit: 10).map(\.id) == ["i2"])
    }
}

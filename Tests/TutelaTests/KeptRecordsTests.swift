import Foundation
import GRDB
import KeyManagement
import Testing
import TutelaCore
import TutelaTestSupport

@testable import SQLiteSupport
@testable import Store

@Suite("Sealed rows kept from point reads until the next commit")
struct KeptRecordsTests {
    private struct Stores {
        let directory: String
        let path: String
        let keyring = Keyring.generate(now: 0)

        init() throws {
            directory =
                FileManager.default.temporaryDirectory.appendingPathComponent(
                    "tutela-kept-\(UUID().uuidString)"
                ).path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            path = directory + "/store.sqlite"
        }

        /// A store over the shared file with connections of its own, as another process has.
        func open(keptRecords: Int = SQLiteRecordStore.defaultKeptRecords) throws -> (EncryptedStore, SQLiteRecordStore)
        {
            let backend = try SQLiteRecordStore(path: path, keptRecords: keptRecords)
            let store = EncryptedStore(
                backend: backend,
                schema: try TestEnvironment.schema(),
                keyring: keyring,
                tenant: "acme"
            )
            return (store, backend)
        }

        func remove() { try? FileManager.default.removeItem(atPath: directory) }
    }

    @Test("a read again before any commit is answered from the kept row, with the same fields")
    func keptUntilCommit() async throws {
        let stores = try Stores()
        defer { stores.remove() }
        let (store, backend) = try stores.open()
        try await store.put([SampleRecords.customer("c1", email: "alice@example.com")])
        let first = try await store.get(collection: "customers", id: "c1")
        #expect(backend.keptRecordHits == 0)
        let again = try await store.get(collection: "customers", id: "c1")
        #expect(backend.keptRecordHits == 1)
        #expect(again == first)
        // A withheld field stays withheld on a kept row: it is opened like a row just read.
        let withheld = try await store.get(collection: "customers", id: "c1", withheld: ["email"])
        #expect(withheld.fields["email"] == nil)
        #expect(backend.keptRecordHits == 2)

        // This store's own commit is a commit like any other.
        try await store.put([SampleRecords.customer("c2", email: "bob@example.com")])
        _ = try await store.get(collection: "customers", id: "c1")
        #expect(backend.keptRecordHits == 2)
    }

    @Test("a record changed or erased through other connections is read as it now is")
    func changesElsewhere() async throws {
        let stores = try Stores()
        defer { stores.remove() }
        let (server, backend) = try stores.open()
        let (other, _) = try stores.open()
        try await server.put([
            SampleRecords.customer("c1", email: "alice@example.com"),
            SampleRecords.customer("c2", email: "bob@example.com"),
        ])
        for _ in 0..<2 {
            #expect(
                try await server.get(collection: "customers", id: "c1").fields["email"] == .string("alice@example.com")
            )
        }
        #expect(backend.keptRecordHits == 1)

        try await other.put([SampleRecords.customer("c1", email: "alice@example.org")])
        #expect(try await server.get(collection: "customers", id: "c1").fields["email"] == .string("alice@example.org"))

        _ = try await server.get(collection: "customers", id: "c2")
        _ = try await other.erase(subject: "c2", at: 1)
        await #expect(throws: TutelaError.self) { try await server.get(collection: "customers", id: "c2") }
    }

    @Test("a store made to keep no rows reads the database every time")
    func keepsNothing() async throws {
        let stores = try Stores()
        defer { stores.remove() }
        let (store, backend) = try stores.open(keptRecords: 0)
        try await store.put([SampleRecords.customer("c1", email: "alice@example.com")])
        for _ in 0..<3 { _ = try await store.get(collection: "customers", id: "c1") }
        #expect(backend.keptRecordHits == 0)
    }

    @Test("the index header's mark holds across reads and moves with each commit of any connection")
    func commitMarks() throws {
        let stores = try Stores()
        defer { stores.remove() }
        // The store makes the file a WAL database and keeps it open for the test.
        let (store, _) = try stores.open()
        defer { withExtendedLifetime(store) {} }
        let watch = try #require(WALCommitWatch(databasePath: stores.path))
        let writer = try DatabaseQueue(path: stores.path)
        let start = try #require(watch.mark())
        _ = try writer.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM records") }
        #expect(watch.mark() == start)
        try writer.write { try $0.execute(sql: "INSERT INTO meta (key, value) VALUES ('probe', '1')") }
        let afterOne = try #require(watch.mark())
        #expect(afterOne != start)
        // A rolled-back transaction publishes nothing.
        try? writer.write { db in
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('probe2', '1')")
            throw TutelaError(.invalidInput, "roll back")
        }
        #expect(watch.mark() == afterOne)
        try writer.write { try $0.execute(sql: "UPDATE meta SET value = '2' WHERE key = 'probe'") }
        #expect(watch.mark() != afterOne)
    }

    @Test("a store that goes away leaves this process's locks on the WAL index with the stores still open")
    func indexLocksStay() async throws {
        let stores = try Stores()
        defer { stores.remove() }
        let (store, _) = try stores.open()
        try await store.put([SampleRecords.customer("c1", email: "alice@example.com")])
        _ = try await store.get(collection: "customers", id: "c1")
        #expect(try Self.holdsIndexLocks(stores.path))
        do {
            let (other, _) = try stores.open()
            _ = try await other.get(collection: "customers", id: "c1")
        }
        // Closing a descriptor of the index would have dropped them all (POSIX locks are the
        // process's), and another process could then rebuild the index under this one.
        #expect(try Self.holdsIndexLocks(stores.path))
        _ = try await store.get(collection: "customers", id: "c1")
    }

    /// Whether this process holds a POSIX lock on the database's WAL index, from `/proc/locks`.
    ///
    /// The kernel writes that file a page at a time from a list other tests change meanwhile,
    /// so one read can miss a line: a lock is looked for in up to 20 reads. Dropped locks are
    /// missing from all of them.
    private static func holdsIndexLocks(_ path: String) throws -> Bool {
        var info = stat()
        guard stat(path + "-shm", &info) == 0 else { return false }
        let pid = String(getpid())
        for _ in 0..<20 {
            // Read to the end: the file reports no size, and under a full test run it has many pages.
            let handle = try #require(FileHandle(forReadingAtPath: "/proc/locks"))
            defer { try? handle.close() }
            let text = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
            let found = text.split(separator: "\n").contains { line in
                let fields = line.split(separator: " ")
                guard let position = fields.firstIndex(of: "POSIX"), fields.count > position + 4 else { return false }
                return fields[position + 3] == pid && fields[position + 4].hasSuffix(":\(info.st_ino)")
            }
            if found { return true }
        }
        return false
    }

    @Test("a database without a WAL index gives no watch")
    func noIndex() throws {
        let stores = try Stores()
        defer { stores.remove() }
        let queue = try DatabaseQueue(path: stores.path)
        try queue.write { try $0.execute(sql: "CREATE TABLE t (x)") }
        #expect(WALCommitWatch(databasePath: stores.path) == nil)
        #expect(WALCommitWatch(databasePath: stores.directory + "/missing.sqlite") == nil)
    }
}

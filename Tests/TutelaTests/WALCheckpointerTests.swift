import Foundation
import GRDB
import Testing
import TutelaTestSupport

@testable import SQLiteSupport

@Suite("WAL checkpoints off the writer's commits")
struct WALCheckpointerTests {
    /// A database in WAL mode whose connections report to a checkpointer with small thresholds.
    private struct WALDatabase {
        let path: String
        let checkpointer: WALCheckpointer
        let pool: DatabasePool

        init(backgroundFrames: Int32, inlineFrames: Int32) throws {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "tutela-wal-\(UUID().uuidString)"
            ).path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            path = directory + "/wal.sqlite"
            let checkpointer = WALCheckpointer(
                path: path,
                backgroundFrames: backgroundFrames,
                inlineFrames: inlineFrames
            )
            var configuration = Configuration()
            configuration.prepareDatabase { db in checkpointer.install(on: db) }
            self.checkpointer = checkpointer
            pool = try DatabasePool(path: path, configuration: configuration)
            try pool.write { db in try db.execute(sql: "CREATE TABLE pages (id INTEGER PRIMARY KEY, body BLOB)") }
        }

        /// Commits `count` rows of a page each, one transaction per row.
        func commit(_ count: Int) throws {
            for _ in 0..<count {
                try pool.write { db in
                    try db.execute(sql: "INSERT INTO pages (body) VALUES (zeroblob(4096))")
                }
            }
        }

        func size(_ suffix: String = "") -> Int {
            (try? FileManager.default.attributesOfItem(atPath: path + suffix)[.size] as? Int) ?? 0
        }

        func remove() {
            try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
        }
    }

    @Test("the thread copies the log into the database while no commit has reached the inline length")
    func backgroundPass() async throws {
        let database = try WALDatabase(backgroundFrames: 16, inlineFrames: 100_000)
        defer { database.remove() }
        let before = database.size()
        // Two or three frames a row: the log passes 16 frames several times, never 100,000.
        try database.commit(40)
        // Only a checkpoint writes the rows' pages into the database file itself; the thread's
        // later passes copy what its first one found not yet written.
        try await settle(at: { database.size() >= before + 16 * 4096 })
        #expect(database.checkpointer.passes.inline == 0)
        #expect(database.checkpointer.passes.background > 0)
        #expect(database.size() >= before + 16 * 4096)
        #expect(try await database.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM pages") } == 40)
    }

    @Test("a commit that takes the log past the inline length checkpoints it, so the log starts over")
    func inlinePassBoundsTheLog() throws {
        // The thread is woken only past 100,000 frames: the commits alone keep the log short.
        let database = try WALDatabase(backgroundFrames: 100_000, inlineFrames: 64)
        defer { database.remove() }
        try database.commit(600)
        #expect(database.checkpointer.passes.inline > 0)
        #expect(database.checkpointer.passes.background == 0)
        // About 1,200 frames were written; a log that never started over would hold them all.
        #expect(database.size("-wal") < 200 * (4096 + 24))
        #expect(try database.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM pages") } == 600)
    }
}

import GRDB

extension DatabasePool {
    /// Makes every commit through this pool's writer durable before it returns.
    ///
    /// A pool opened in WAL mode sets `synchronous = NORMAL` on its writer after the
    /// configuration's `prepareDatabase` ran, so a `FULL` set there does not last: commits then
    /// reach the disk only at the next checkpoint, and a power loss or system crash can take back
    /// a transaction that was reported committed, such as an audit event or a customer's erasure.
    /// The pool keeps one writer connection, so setting it once here holds for the pool's life.
    package func requireDurableCommits() throws {
        try writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
    }

    /// The writer's `synchronous` setting (2 is FULL).
    package func writerSynchronousSetting() throws -> Int {
        try writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }
}

import GRDB

#if canImport(Glibc)
import Glibc
#endif

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

extension Database.BusyMode {
    /// Waits for a lock another process holds by trying again every half millisecond, for at
    /// most `seconds`.
    ///
    /// SQLite's own busy timeout backs off to 100 ms between tries: a writer that meets a lock
    /// held for a few milliseconds (another process archiving the audit log or importing, a
    /// short transaction at a time) then sleeps long after it is free, and every request
    /// waiting on that writer sees it.
    package static func polling(seconds: Double) -> Self {
        let interval: UInt32 = 500
        let tries = Int(seconds * 1_000_000 / Double(interval))
        return .callback { attempt in
            guard attempt < tries else { return false }
            usleep(interval)
            return true
        }
    }
}

import Dispatch
import Foundation
import GRDB
import GRDBSQLite
import Synchronization

/// Copies a WAL database's log into the database on a thread of its own, so that its writer's
/// commits seldom wait for a checkpoint.
///
/// SQLite checkpoints inside the commit that takes the log past 1,000 frames: that commit copies
/// every page the log holds into the database and syncs the database file, a few milliseconds
/// during which every caller waiting on the writer waits too. Here the writer's connection tells
/// this checkpointer each time its log grows by `backgroundFrames`, and a thread of its own
/// copies those frames and syncs the database with a connection of its own, while the writer
/// goes on committing. A passive checkpoint there neither waits for nor blocks the writer.
///
/// The commit that takes the log past `inlineFrames` still checkpoints itself, as SQLite would:
/// a log that is only ever copied while commits go on never starts over, since it restarts only
/// once everything in it is copied, and grows without bound. By then the thread has copied
/// nearly all of it, and that commit copies and syncs only what came after the thread's last pass.
package final class WALCheckpointer: Sendable {
    private let path: String
    private let backgroundFrames: Int32
    private let inlineFrames: Int32
    private let state = Mutex(State())
    private let wakeup = DispatchSemaphore(value: 0)

    private struct State {
        /// The log's length when the thread was last woken.
        var signalledAt: Int32 = 0
        var threadStarted = false
        /// Whether a wake-up was sent that the thread has not taken yet.
        var pending = false
        var connection: OpaquePointer?
        var backgroundPasses = 0
        var inlinePasses = 0
    }

    /// Checkpoints the database at `path`.
    /// - Parameters:
    ///   - backgroundFrames: how many frames the log grows by between two passes of the thread.
    ///   - inlineFrames: the log length at which a commit checkpoints itself (SQLite's default).
    package init(path: String, backgroundFrames: Int32 = 256, inlineFrames: Int32 = 1000) {
        self.path = path
        self.backgroundFrames = max(1, backgroundFrames)
        self.inlineFrames = max(1, inlineFrames)
    }

    deinit {
        _ = state.withLock { state in sqlite3_close_v2(state.connection) }
    }

    /// Passes made by the thread and by commits, for tests and figures.
    package var passes: (background: Int, inline: Int) {
        state.withLock { ($0.backgroundPasses, $0.inlinePasses) }
    }

    /// Puts this checkpointer in place of SQLite's automatic checkpoint on `db`; for a pool's
    /// `prepareDatabase`, whose configuration keeps the checkpointer alive as long as any of its
    /// connections.
    package func install(on db: Database) {
        sqlite3_wal_hook(db.sqliteConnection, walHook, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Called by SQLite after each commit with the log's length in frames.
    fileprivate func committed(frames: Int32, connection: OpaquePointer?, schema: UnsafePointer<CChar>?) {
        if frames >= inlineFrames {
            if sqlite3_wal_checkpoint_v2(connection, schema, SQLITE_CHECKPOINT_PASSIVE, nil, nil) == SQLITE_OK {
                state.withLock { $0.inlinePasses += 1 }
            }
            return
        }
        // Nil when the thread need not be woken; otherwise whether it must be started first.
        let start = state.withLock { state -> Bool? in
            // A log that started over is shorter than at the last signal.
            if frames < state.signalledAt { state.signalledAt = 0 }
            guard frames - state.signalledAt >= backgroundFrames, !state.pending else { return nil }
            state.signalledAt = frames
            state.pending = true
            let start = !state.threadStarted
            state.threadStarted = true
            return start
        }
        guard let start else { return }
        if start { startThread() }
        wakeup.signal()
    }

    /// Starts the thread that checkpoints when woken; it ends within a second once the
    /// checkpointer is released.
    private func startThread() {
        let wakeup = wakeup
        let thread = Thread { [weak self] in
            while true {
                guard wakeup.wait(timeout: .now() + 1) == .success else {
                    if self == nil { return }
                    continue
                }
                guard let self else { return }
                self.pass()
            }
        }
        thread.name = "tutela.checkpoint"
        thread.start()
    }

    /// One passive checkpoint through the thread's own connection, opened on first use.
    ///
    /// A failure (the database busy with another checkpoint, or gone) waits for the next wake-up.
    private func pass() {
        let connection = state.withLock { state -> OpaquePointer? in
            state.pending = false
            if state.connection == nil {
                var opened: OpaquePointer?
                // A connection finds the database in WAL mode only once it reads it: until then a
                // checkpoint through it does nothing.
                if sqlite3_open_v2(path, &opened, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK,
                    sqlite3_exec(opened, "PRAGMA journal_mode", nil, nil, nil) == SQLITE_OK
                {
                    state.connection = opened
                } else {
                    sqlite3_close_v2(opened)
                }
            }
            return state.connection
        }
        guard let connection else { return }
        if sqlite3_wal_checkpoint_v2(connection, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil) == SQLITE_OK {
            state.withLock { $0.backgroundPasses += 1 }
        }
    }
}

/// SQLite's WAL hook: `context` is the checkpointer that `install` put there.
private func walHook(
    _ context: UnsafeMutableRawPointer?,
    _ connection: OpaquePointer?,
    _ schema: UnsafePointer<CChar>?,
    _ frames: Int32
) -> Int32 {
    guard let context else { return SQLITE_OK }
    Unmanaged<WALCheckpointer>.fromOpaque(context).takeUnretainedValue()
        .committed(frames: frames, connection: connection, schema: schema)
    return SQLITE_OK
}

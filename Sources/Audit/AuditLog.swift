import Crypto
import Foundation
import GRDB
import SQLiteSupport
import Synchronization
import TutelaCore

extension TutelaError.Code {
    /// An audit event could not be made durable in time; the operation did not happen.
    public static let auditUnavailable = Self("audit_unavailable")
    /// The audit log does not verify.
    public static let auditTampered = Self("audit_tampered")
}

/// The append-only, tamper-evident audit log in its own SQLite file.
///
/// Appends are batched: while one batch is being written, new events queue up and go together
/// into the next transaction (group commit). A server runs each audited call inside
/// `expectingAppend`; while such calls are under way and have not appended yet, the writer
/// holds a batch open for at most `gatherWindow` so that their events share its commit,
/// instead of paying a commit and a disk sync each. A lone caller is never held.
///
/// A batch ends with a signed checkpoint when the last one is older than `checkpointInterval`;
/// entries written after it are signed once the writer has been idle until the interval ends,
/// or at once by `latestCheckpoint()`. Every append has a deadline; an event that is not
/// durable by then fails the caller's operation (fail closed) without ever blocking it longer.
/// The gather window is meant to stay far below that deadline.
public final class AuditLog: Sendable {
    /// The log's id, written into every checkpoint.
    public let logID: String
    /// The key that signs checkpoints.
    let signingKey: Curve25519.Signing.PrivateKey
    /// How long an append may take before the caller gets an error.
    public let timeout: Duration
    /// The longest a stream of batches goes without a signed checkpoint.
    public let checkpointInterval: Duration
    /// The longest the writer holds a batch open for calls still under way.
    public let gatherWindow: Duration
    /// Calls under way inside `expectingAppend` that have not appended yet.
    private let expected = Atomic<Int>(0)
    /// Batches and events written by this process.
    private let written = Mutex((batches: 0, events: 0))
    /// How long this process's batches took to commit.
    private let commits = Mutex(AuditCommitTimes())
    /// Commits slower than a threshold, and who is told about them.
    private let slowCommits = Mutex(SlowCommits())

    /// Commits over `threshold` not reported yet, and when the last report was made.
    private struct SlowCommits {
        var threshold = Duration.seconds(1)
        var interval = Duration.seconds(60)
        var observer: (@Sendable (_ count: Int, _ slowest: Duration) -> Void)?
        var count = 0
        var slowest = Duration.zero
        var reported: ContinuousClock.Instant?
    }
    /// Writes that failed, and what is told when failures start and end.
    private let health = Mutex(WriteHealth())

    /// Whether events are being stored.
    private struct WriteHealth {
        var failedWrites = 0
        /// When the latest write failed and why; nil once a batch is stored.
        var failure: (time: ContinuousClock.Instant, reason: String)?
        var observer: (@Sendable (String?) -> Void)?
    }
    /// Entries this process archived, and its archives that failed.
    let archiving = Mutex((entries: 0, failures: 0))
    private let pool: DatabasePool
    /// Copies the log's WAL into its database off the writer's commits.
    private let checkpointer: WALCheckpointer
    /// When the writer last signed a checkpoint, and whether this process wrote entries after it.
    private let signing = Mutex((lastSigned: ContinuousClock.now, tailUnsigned: false))
    private let queue = Mutex(Queue())

    /// Events waiting for the next batch, and whether a batch is being written.
    private struct Queue {
        var pending: [Pending] = []
        var writerStarted = false
        var writerSleeping = false
        /// Whether the writer is holding a batch open for expected events.
        var writerGathering = false
    }

    /// Wakes the writer thread when events arrive while it sleeps.
    private let wakeup = DispatchSemaphore(value: 0)

    /// An event and the caller waiting for its sequence number.
    ///
    /// A class: a batch moves through the queue, the writer's loops and the inserts' rows, and
    /// each copy of an event's value would retain every one of its strings and arrays.
    private final class Pending: Sendable {
        let event: AuditEvent
        let remainder: [UInt8]
        let waiter: ResumeOnce<Int>
        let deadline: UInt64

        init(event: AuditEvent, remainder: [UInt8], waiter: ResumeOnce<Int>, deadline: UInt64) {
            self.event = event
            self.remainder = remainder
            self.waiter = waiter
            self.deadline = deadline
        }
    }

    /// The key that verifies checkpoints.
    public var publicKey: Curve25519.Signing.PublicKey { signingKey.publicKey }

    /// Opens (creating if needed) the log at `path`.
    /// - Throws: `.auditUnavailable` when the file cannot be opened, `.auditTampered` when its
    ///   saved state does not match its latest signed checkpoint.
    public init(
        path: String,
        logID: String,
        signingKey: Curve25519.Signing.PrivateKey,
        timeout: Duration = .seconds(2),
        checkpointInterval: Duration = .milliseconds(250),
        gatherWindow: Duration = .milliseconds(1)
    ) throws {
        self.logID = logID
        self.signingKey = signingKey
        self.timeout = timeout
        self.checkpointInterval = checkpointInterval
        self.gatherWindow = gatherWindow
        var configuration = Configuration()
        configuration.busyMode = .polling(seconds: max(0.1, Double(timeout.components.seconds) / 2))
        configuration.label = "tutela.audit"
        let checkpointer = WALCheckpointer(path: path)
        configuration.prepareDatabase { db in
            // Takes effect only in a file not created yet; an existing log keeps its page size.
            try db.execute(sql: "PRAGMA page_size = \(Self.pageSize)")
            checkpointer.install(on: db)
        }
        self.checkpointer = checkpointer
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            // An event is reported durable only once it is on disk.
            try pool.requireDurableCommits()
            try Self.prepareNewFile(pool)
            try Self.migrator.migrate(pool)
            _ = try pool.read { db in try Self.loadFrontier(db) }
        } catch let error as TutelaError {
            throw error
        } catch {
            throw TutelaError(
                .auditUnavailable,
                "the audit log \(path) cannot be opened: \(Self.describe(error))",
                cause: error
            )
        }
    }

    /// The page size of a new log's file.
    ///
    /// A commit writes every page it changed to the WAL, and at low load a commit holds one or
    /// two events (about 900 bytes each) that change a page in each of five tables and indexes:
    /// with 4 KiB pages most of what it writes and syncs is unchanged bytes. Paired runs of the
    /// governed fetch at 4 connections gave a median p99 of 10.0 ms with 4 KiB pages, 8.1 ms
    /// with 2 KiB and 6.4 ms with 1 KiB; at 64 connections, where a commit holds 20 to 40 events,
    /// 1 KiB pages cost more processor time per request than 4 KiB in 6 of 8 rounds, 2 KiB a
    /// median 4 % more, within this machine's drift.
    static let pageSize = 2048

    /// Checkpoints of the log's WAL made by the checkpointer's thread and inside commits, for
    /// tests and figures.
    public var walCheckpoints: (background: Int, inline: Int) { checkpointer.passes }

    /// The writer connection's `synchronous` setting, for tests.
    func writerSynchronousSetting() throws -> Int { try pool.writerSynchronousSetting() }

    /// Signs what this process wrote since the last checkpoint, so that a command that appends
    /// and exits leaves the log signed.
    deinit {
        if signing.withLock({ $0.tailUnsigned }) {
            try? pool.writeWithoutTransaction { db in try signTail(db) }
        }
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE entries (
                        seq INTEGER PRIMARY KEY,
                        time_ms INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        principal TEXT NOT NULL,
                        action TEXT NOT NULL,
                        purpose TEXT NOT NULL,
                        decision TEXT NOT NULL,
                        event BLOB NOT NULL,
                        leaf BLOB NOT NULL
                    );
                    CREATE INDEX entries_by_principal ON entries(principal);
                    CREATE INDEX entries_by_time ON entries(time_ms);
                    CREATE TABLE entry_subjects (subject TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (subject, seq)) WITHOUT ROWID;
                    CREATE TABLE checkpoints (size INTEGER PRIMARY KEY, text TEXT NOT NULL);
                    CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL, frontier BLOB NOT NULL);
                    """
            )
        }
        migrator.registerMigration("v2-archive") { db in
            // How many of the oldest entries were archived: their events moved to an archive
            // file, their leaf hashes kept in the log.
            try db.execute(
                sql: "CREATE TABLE archived (id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL)"
            )
        }
        migrator.registerMigration("v3-archived-leaves") { db in
            // An archived entry keeps only its number and leaf hash, in a table of its own, and
            // its row leaves `entries`: a row emptied in place kept its page, so the file grew as
            // if nothing were archived. Deleted rows free whole pages, which later appends reuse.
            try db.execute(
                sql: """
                    CREATE TABLE archived_leaves (seq INTEGER PRIMARY KEY, leaf BLOB NOT NULL);
                    INSERT INTO archived_leaves (seq, leaf)
                        SELECT seq, leaf FROM entries WHERE seq < coalesce((SELECT size FROM archived WHERE id = 1), 0);
                    DELETE FROM entries WHERE seq < coalesce((SELECT size FROM archived WHERE id = 1), 0);
                    """
            )
        }
        return migrator
    }

    /// The saved frontier, as the next batch extends it; its agreement with the signed
    /// checkpoints is checked on opening and by `verify`.
    private static func loadState(_ db: Database) throws -> MerkleFrontier {
        // Read at the start of every batch (another process may have appended since): decoded
        // straight from SQLite's columns, not through GRDB's row objects.
        let state = try db.cachedStatement(sql: "SELECT size, frontier FROM state WHERE id = 1")
            .run(binding: []) { row in (size: row.int(0), frontier: MerkleFrontier(encoded: row.blob(1))) }
        guard let state else { return MerkleFrontier() }
        guard let frontier = state.frontier, frontier.size == state.size else {
            throw TutelaError(.auditTampered, "the audit log's saved state is damaged; run 'tutela audit verify'")
        }
        return frontier
    }

    /// The saved frontier, checked against the latest checkpoint: it may run ahead of it (a
    /// process that stopped under load leaves up to one checkpoint interval of entries to the
    /// next signature), never behind it, and at the same size it must have the same root.
    private static func loadFrontier(_ db: Database) throws -> MerkleFrontier {
        let frontier = try loadState(db)
        // No state row: a new log (a cut-off one is for `verify` against a kept checkpoint).
        guard frontier.size > 0 else { return frontier }
        if let text = try String.fetchOne(db, sql: "SELECT text FROM checkpoints ORDER BY size DESC LIMIT 1"),
            let checkpoint = try? Checkpoint(text: text),
            checkpoint.size > frontier.size || (checkpoint.size == frontier.size && checkpoint.root != frontier.root)
        {
            throw TutelaError(
                .auditTampered,
                "the audit log's state does not match its latest checkpoint; run 'tutela audit verify'"
            )
        }
        return frontier
    }

    /// The number of entries.
    public var size: Int {
        get async throws { try await pool.read { db in try Self.loadFrontier(db).size } }
    }

    // MARK: Appending

    /// Runs a call that will append an event before it ends (an audited server request), and
    /// counts it as expected until its first append or its end, whichever comes first.
    public func expectingAppend<T>(_ body: () async throws -> T) async rethrows -> T {
        let expectation = Expectation()
        expected.add(1, ordering: .relaxed)
        defer { settle(expectation) }
        return try await Self.$expectation.withValue(expectation) { try await body() }
    }

    /// One call counted by `expectingAppend`.
    final class Expectation: Sendable {
        let settled = Atomic<Bool>(false)
    }

    @TaskLocal static var expectation: Expectation?

    /// Whether the call that the innermost `expectingAppend` runs has appended an event yet
    /// (false outside such a call).
    public var callHasAppended: Bool {
        Self.expectation?.settled.load(ordering: .relaxed) ?? false
    }

    private func settle(_ expectation: Expectation?) {
        guard let expectation, !expectation.settled.exchange(true, ordering: .relaxed) else { return }
        expected.subtract(1, ordering: .relaxed)
    }

    /// How many batches and events this process has written.
    public var writeCounts: (batches: Int, events: Int) { written.withLock { $0 } }

    /// How long this process's stored batches took, from the start of their transaction to
    /// their commit on disk (the disk sync included).
    public var commitTimes: AuditCommitTimes { commits.withLock { $0 } }

    /// How many writes of this process failed: batches that could not be stored (each refused
    /// its callers) and events that were not stored within the timeout.
    public var failedWrites: Int { health.withLock { $0.failedWrites } }

    /// Why the latest write failed, when it failed within `window` and no batch has been
    /// stored since; nil otherwise.
    public func recentWriteFailure(within window: Duration) -> String? {
        health.withLock { health in
            guard let failure = health.failure, ContinuousClock.now - failure.time <= window else { return nil }
            return failure.reason
        }
    }

    /// Sets what is called when writes start failing (with the first one's reason: an SQLite
    /// result code and message, or the timeout that passed; never an event's content) and when
    /// a batch is stored again (nil).
    public func observeWriteHealth(_ observer: @escaping @Sendable (String?) -> Void) {
        health.withLock { $0.observer = observer }
    }

    /// Sets what is called when commits take longer than `threshold`: with how many did and
    /// the slowest of them, at most once per `interval` (the first at once; those in between
    /// are counted in the next call, made by the next slow commit).
    ///
    /// Every caller in a batch waits for its commit, so slow commits are slow requests; at low
    /// load they point at the disk.
    public func observeSlowCommits(
        over threshold: Duration,
        every interval: Duration,
        _ observer: @escaping @Sendable (_ count: Int, _ slowest: Duration) -> Void
    ) {
        slowCommits.withLock { state in
            state.threshold = threshold
            state.interval = interval
            state.observer = observer
        }
    }

    /// Counts a commit that took `duration` if it was slow, and reports when it is time.
    private func noteCommit(_ duration: Duration) {
        let report = slowCommits.withLock { state -> (@Sendable (Int, Duration) -> Void, Int, Duration)? in
            guard let observer = state.observer, duration > state.threshold else { return nil }
            state.count += 1
            state.slowest = max(state.slowest, duration)
            let now = ContinuousClock.now
            if let reported = state.reported, now - reported < state.interval { return nil }
            defer {
                state.count = 0
                state.slowest = .zero
                state.reported = now
            }
            return (observer, state.count, state.slowest)
        }
        // Outside the lock, on the writer thread after the batch's callers were resumed.
        if let (observer, count, slowest) = report { observer(count, slowest) }
    }

    /// How many entries this process archived, and how many of its archives failed.
    public var archiveCounts: (entries: Int, failures: Int) { archiving.withLock { $0 } }

    /// Appends an event and waits until it is durable.
    ///
    /// The event joins the queue for the next batch; the caller is resumed by the batch's commit
    /// or by its deadline, whichever comes first (a late commit is then dropped).
    /// - Returns: its sequence number.
    /// - Throws: `.auditUnavailable` when it is not durable within the timeout.
    @discardableResult
    public func append(_ event: AuditEvent) async throws -> Int {
        let timeout = timeout
        let remainder = event.canonicalRemainder
        let waiter = ResumeOnce<Int>()
        // A cancelled caller (a request past its timeout) stops waiting at once; an event
        // already queued may still be written, like one whose deadline passed.
        let cancel: @Sendable () -> Void = { waiter.resume(with: .failure(CancellationError())) }
        return try await withTaskCancellationHandler(
            operation: { try await enqueue(event, remainder: remainder, waiter: waiter, timeout: timeout) },
            onCancel: cancel
        )
    }

    private func enqueue(
        _ event: AuditEvent,
        remainder: [UInt8],
        waiter: ResumeOnce<Int>,
        timeout: Duration
    ) async throws -> Int {
        // No longer expected before it is pending: the writer never waits for an event that is
        // already in its queue.
        settle(Self.expectation)
        return try await withCheckedThrowingContinuation { continuation in
            waiter.set(continuation)
            guard !waiter.isFinished else { return }
            let deadline = Deadlines.shared.schedule(after: timeout) {
                waiter.resume(
                    with: .failure(
                        TutelaError(.auditUnavailable, "the audit log did not take the event in time; nothing was done")
                    ),
                    delivering: { self.noteFailure("an event was not stored within \(timeout)") }
                )
            }
            let (start, wake) = queue.withLock { queue -> (Bool, Bool) in
                queue.pending.append(
                    Pending(event: event, remainder: remainder, waiter: waiter, deadline: deadline)
                )
                var wake = queue.writerSleeping
                if queue.writerGathering, expected.load(ordering: .relaxed) <= 0 {
                    queue.writerGathering = false
                    wake = true
                }
                defer {
                    queue.writerStarted = true
                    queue.writerSleeping = false
                }
                return (!queue.writerStarted, wake)
            }
            if start {
                startWriter()
            } else if wake {
                wakeup.signal()
            }
        }
    }

    /// Starts the thread that writes batches: it holds the log only while writing one, and ends
    /// within a second once the log is released.
    ///
    /// A dedicated thread with synchronous writes, rather than a task awaiting GRDB's writer
    /// queue, saves two thread switches per batch on the request path.
    private func startWriter() {
        let wakeup = wakeup
        let thread = Thread { [weak self] in
            while true {
                switch self?.flushOnce() {
                case nil: return
                case .write?: continue
                case .sleep(let seconds)?: _ = wakeup.wait(timeout: .now() + seconds)
                }
            }
        }
        thread.name = "tutela.audit"
        thread.start()
    }

    /// What the writer thread does after `flushOnce`.
    private enum Next {
        /// Look for the next batch at once.
        case write
        /// Wait for events, at most this many seconds.
        case sleep(Double)
    }

    /// Writes the pending events as one batch.
    ///
    /// With none pending, it signs the entries the last batches left unsigned once the
    /// checkpoint interval has passed, or sleeps until then.
    private func flushOnce() -> Next {
        var batch = queue.withLock { queue -> [Pending] in
            defer { queue.pending = [] }
            if queue.pending.isEmpty { queue.writerSleeping = true }
            return queue.pending
        }
        guard batch.isEmpty else {
            gather(into: &batch)
            write(batch)
            return .write
        }
        let (unsigned, due) = signing.withLock { ($0.tailUnsigned, $0.lastSigned + checkpointInterval) }
        guard unsigned else { return .sleep(1) }
        let wait = ContinuousClock.now.duration(to: due)
        guard wait <= .zero else { return .sleep(Self.seconds(wait)) }
        // A failure leaves the tail marked unsigned: the next idle moment tries again.
        try? pool.writeWithoutTransaction { db in try self.signTail(db) }
        return .sleep(1)
    }

    /// Holds a batch open while expected calls have not appended yet, until the last of them
    /// has, the gather window has passed, or the batch is full.
    ///
    /// A commit costs a disk sync and a page write per table and index, whatever the batch's
    /// size; under load, waiting a fraction of a millisecond for the events already on their
    /// way saves more processor time than it adds latency. An expected call that ends without
    /// appending (a request that fails before it is audited) costs at most one window.
    private func gather(into batch: inout [Pending]) {
        guard gatherWindow > .zero, expected.load(ordering: .relaxed) > 0 else { return }
        let deadline = ContinuousClock.now + gatherWindow
        while batch.count < Self.largestBatch {
            let remaining = ContinuousClock.now.duration(to: deadline)
            let waiting = queue.withLock { queue -> Bool in
                // Checked under the queue's lock: an append after this sees `writerGathering`.
                guard remaining > .zero, expected.load(ordering: .relaxed) > 0 else { return false }
                queue.writerGathering = true
                return true
            }
            if waiting { _ = wakeup.wait(timeout: .now() + Self.seconds(remaining)) }
            batch += queue.withLock { queue -> [Pending] in
                defer { queue.pending = [] }
                queue.writerGathering = false
                return queue.pending
            }
            guard waiting else { return }
        }
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// The most events one gathered batch holds.
    private static let largestBatch = 512

    private func write(_ batch: [Pending]) {
        do {
            // A stream of batches is signed once per interval instead of once per batch; the
            // tail it leaves is signed when the writer has been idle until the interval ends.
            let signs = signing.withLock { ContinuousClock.now - $0.lastSigned >= checkpointInterval }
            let started = ContinuousClock.now
            let first = try pool.writeWithoutTransaction { db in
                var first = 0
                try db.inTransaction(.immediate) {
                    first = try Self.append(batch, to: db, signedBy: signs ? self : nil)
                    return .commit
                }
                return first
            }
            signing.withLock { state in
                if signs { state.lastSigned = .now }
                state.tailUnsigned = !signs
            }
            let took = ContinuousClock.now - started
            written.withLock { counts in
                counts.batches += 1
                counts.events += batch.count
            }
            commits.withLock { $0.record(took) }
            let recovered = health.withLock { health -> (@Sendable (String?) -> Void)? in
                defer { health.failure = nil }
                return health.failure == nil ? nil : health.observer
            }
            recovered?(nil)
            for (offset, item) in batch.enumerated() {
                Deadlines.shared.cancel(item.deadline)
                item.waiter.resume(with: .success(first + offset))
            }
            noteCommit(took)
        } catch {
            noteFailure(Self.describe(error))
            let failure = TutelaError(
                .auditUnavailable,
                "the audit log could not store the event; nothing was done",
                cause: error
            )
            for item in batch {
                Deadlines.shared.cancel(item.deadline)
                item.waiter.resume(with: .failure(failure))
            }
        }
    }

    /// Counts a failed write, keeps its reason, and tells the observer when it is the first
    /// since a batch was stored; called before the callers it fails are resumed.
    private func noteFailure(_ reason: String) {
        let started = health.withLock { health -> (@Sendable (String?) -> Void)? in
            defer {
                health.failedWrites += 1
                health.failure = (.now, reason)
            }
            return health.failure == nil ? health.observer : nil
        }
        started?(reason)
    }

    /// Why a batch failed, for the operator: SQLite's result code and message (GRDB's own
    /// description would add the statement's arguments, which hold the events).
    private static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError {
            return "SQLite error \(error.resultCode.primaryResultCode.rawValue): \(error.message ?? "unknown")"
        }
        if let error = error as? TutelaError { return error.message }
        return String(describing: type(of: error))
    }

    /// Inserts a batch's entries and advances the saved frontier, inside the caller's IMMEDIATE
    /// transaction; with a signer, also stores a checkpoint of the new size.
    ///
    /// The database's state row is the one frontier: read and advanced inside that transaction,
    /// so several processes sharing the file (a server and a command) number their entries one
    /// after another. Values are bound straight to SQLite: GRDB's argument boxing cost more than
    /// the inserts themselves.
    /// - Returns: the first entry's sequence number.
    private static func append(_ batch: [Pending], to db: Database, signedBy signer: AuditLog?) throws -> Int {
        var next = try loadState(db)
        let first = next.size
        var entries: [(item: Pending, bytes: [UInt8], leaf: MerkleTree.Hash)] = []
        entries.reserveCapacity(batch.count)
        var subjects: [(hmac: String, sequence: Int)] = []
        for (offset, item) in batch.enumerated() {
            let sequence = first + offset
            var bytes: [UInt8] = []
            bytes.reserveCapacity(24 + item.remainder.count)
            AuditEvent.appendCanonicalPrefix(sequence: sequence, to: &bytes)
            bytes.append(contentsOf: item.remainder)
            let leaf = MerkleTree.leafHash(bytes)
            next.append(leaf)
            entries.append((item, bytes, leaf))
            for hmac in item.event.subjects { subjects.append((hmac, sequence)) }
        }
        // A statement per chunk of rows rather than per row (see `RowChunk`).
        for chunk in RowChunk.split(0..<entries.count) {
            try db.cachedStatement(sql: SQL.insertEntries[chunk.shift]).run { binder in
                for index in chunk.rows {
                    let event = entries[index].item.event
                    binder.int(first + index)
                    binder.int(Int(event.time))
                    binder.text(event.kind)
                    binder.text(event.principal)
                    binder.text(event.action)
                    binder.text(event.purpose)
                    binder.text(event.decision)
                    binder.blob(entries[index].bytes)
                    binder.blob(entries[index].leaf)
                }
            }
        }
        for chunk in RowChunk.split(0..<subjects.count) {
            try db.cachedStatement(sql: SQL.insertSubjects[chunk.shift]).run { binder in
                for index in chunk.rows {
                    binder.text(subjects[index].hmac)
                    binder.int(subjects[index].sequence)
                }
            }
        }
        if let signer { try signer.storeCheckpoint(of: next, in: db) }
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO state (id, size, frontier) VALUES (1, ?, ?)")
            .run(binding: [.int(next.size), .blob(next.encoded)])
        return first
    }

    /// The statements that insert a batch's entries, by chunk size: index n inserts 2^n rows.
    private enum SQL {
        static let insertEntries = RowChunk.statements(row: "(?, ?, ?, ?, ?, ?, ?, ?, ?)") { values in
            "INSERT INTO entries (seq, time_ms, kind, principal, action, purpose, decision, event, leaf) VALUES \(values)"
        }
        static let insertSubjects = RowChunk.statements(row: "(?, ?)") { values in
            "INSERT OR IGNORE INTO entry_subjects (subject, seq) VALUES \(values)"
        }
    }

    /// Signs and stores a checkpoint of `frontier`.
    private func storeCheckpoint(of frontier: MerkleFrontier, in db: Database) throws {
        let checkpoint = try Checkpoint.sign(
            logID: logID,
            size: frontier.size,
            root: frontier.root,
            time: Int64(Date().timeIntervalSince1970 * 1000),
            key: signingKey
        )
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO checkpoints (size, text) VALUES (?, ?)")
            .run(binding: [.int(checkpoint.size), .text(checkpoint.text)])
    }

    // MARK: Reading

    /// Entries matching a filter, newest first.
    public func search(_ filter: AuditFilter, limit: Int) async throws -> [AuditEvent] {
        try await pool.read { db in
            // Time bounds are kept from the time index here ('+'): the entries are read newest
            // first, from the range of sequence numbers the bounds allow (below).
            let filters: [(String, (any DatabaseValueConvertible)?)] = [
                ("principal = ?", filter.principal), ("action = ?", filter.action), ("decision = ?", filter.decision),
                ("purpose = ?", filter.purpose), ("kind = ?", filter.kind), ("+time_ms >= ?", filter.since),
                ("+time_ms < ?", filter.until),
                ("seq IN (SELECT seq FROM entry_subjects WHERE subject = ?)", filter.subjectHMAC),
            ]
            // Archived entries keep their leaf hashes only.
            var conditions = ["seq >= ?"]
            var arguments: [any DatabaseValueConvertible] = [try Self.archivedSize(db)]
            if filter.since != nil || filter.until != nil {
                // The first and last entry in the time bounds, from the time index alone. Without
                // them the newest-first read went through every entry outside the bounds: the
                // whole log for a bound no entry meets, minutes for a log of gigabytes.
                let bounds = [("time_ms >= ?", filter.since), ("time_ms < ?", filter.until)].filter { $0.1 != nil }
                let range = try Row.fetchOne(
                    db,
                    sql: "SELECT min(seq), max(seq) FROM entries WHERE "
                        + bounds.map(\.0).joined(separator: " AND "),
                    arguments: StatementArguments(bounds.map(\.1))
                )
                // NULL when no entry is in the bounds; `seq` is the row id, always an integer.
                guard let first = range?[0] as Int?, let last = range?[1] as Int? else { return [] }
                conditions += ["seq >= ?", "seq <= ?"]
                arguments += [first, last]
            }
            for (condition, value) in filters {
                guard let value else { continue }
                conditions.append(condition)
                arguments.append(value)
            }
            let clause = " WHERE " + conditions.joined(separator: " AND ")
            arguments.append(limit)
            let rows = try Row.fetchAll(
                db,
                sql: "SELECT seq, event FROM entries\(clause) ORDER BY seq DESC LIMIT ?",
                arguments: StatementArguments(arguments)
            )
            return try rows.map { row in
                let sequence: Int = row[0]
                let event = try Self.storedEvent(row.storedBytes(1), sequence: sequence)
                // The entry was found by columns that are not signed: its event must say the same.
                guard filter.admits(event) else {
                    throw TutelaError(
                        .storage,
                        "audit entry \(sequence) was found by search columns that differ from its event: the log's file was altered; 'tutela audit verify' checks the whole log"
                    )
                }
                return event
            }
        }
    }

    /// One entry.
    public func entry(_ sequence: Int) async throws -> AuditEvent {
        guard sequence >= 0 else { throw TutelaError(.notFound, "no audit entry \(sequence)") }
        let (bytes, archived) = try await pool.read { db in
            (
                try Row.fetchOne(db, sql: "SELECT event FROM entries WHERE seq = ?", arguments: [sequence])
                    .map { $0.storedBytes(0) },
                try Self.archivedSize(db)
            )
        }
        guard sequence >= archived else {
            throw TutelaError(.notFound, "audit entry \(sequence) was archived: its event is in an archive file")
        }
        guard let bytes else { throw TutelaError(.notFound, "no audit entry \(sequence)") }
        return try Self.storedEvent(bytes, sequence: sequence)
    }

    /// The event of a stored entry.
    /// - Throws: `.storage` naming the entry when its bytes are not an event (damaged or altered;
    ///   `verify` then reports it too).
    private static func storedEvent(_ bytes: [UInt8], sequence: Int) throws -> AuditEvent {
        do {
            return try AuditEvent(canonical: bytes)
        } catch {
            throw TutelaError(
                .storage,
                "audit entry \(sequence) is damaged or was altered: its stored event does not parse; "
                    + "'tutela audit verify' checks the whole log"
            )
        }
    }

    /// A signed checkpoint of the whole log: the latest stored one, after signing the entries
    /// that came after it if there are any; a fresh one for an empty log.
    public func latestCheckpoint() async throws -> Checkpoint {
        let text = try await pool.writeWithoutTransaction { db -> String? in
            try self.signTail(db)
            return try String.fetchOne(db, sql: "SELECT text FROM checkpoints ORDER BY size DESC LIMIT 1")
        }
        if let text { return try Checkpoint(text: text) }
        return try Checkpoint.sign(
            logID: logID,
            size: 0,
            root: MerkleTree.emptyRoot,
            time: Int64(Date().timeIntervalSince1970 * 1000),
            key: signingKey
        )
    }

    /// Signs and stores a checkpoint of the saved state when no stored checkpoint covers all of
    /// it (entries written by this process or by another one sharing the file).
    private func signTail(_ db: Database) throws {
        try db.inTransaction(.immediate) {
            let frontier = try Self.loadState(db)
            if frontier.size > 0, try Self.latestCheckpointSize(db) ?? -1 < frontier.size {
                try storeCheckpoint(of: frontier, in: db)
            }
            return .commit
        }
        signing.withLock { state in
            state.lastSigned = .now
            state.tailUnsigned = false
        }
    }

    private static func latestCheckpointSize(_ db: Database) throws -> Int? {
        try Int.fetchOne(db, sql: "SELECT max(size) FROM checkpoints")
    }

    /// The kinds of the entries in the log (archived ones aside), in order: a full scan, for
    /// telling a search that found nothing whether the kind it asked for exists at all.
    public func kinds() async throws -> [String] {
        try await readLog { db in try String.fetchAll(db, sql: "SELECT DISTINCT kind FROM entries ORDER BY kind") }
    }

    /// Runs `body` in one read transaction of the log's database.
    func readLog<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await pool.read(body)
    }

    /// Rewrites the log's file so that it releases free pages incrementally from then on, and
    /// releases the free pages it has (one VACUUM, which holds the log while it runs).
    func rewriteReleasingFreePages() async throws {
        try await pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
            try db.execute(sql: "VACUUM")
        }
    }

    /// Runs `body` in one IMMEDIATE write transaction of the log's database, durable on return.
    @discardableResult
    func writeLog<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await pool.writeWithoutTransaction { db in
            var result: T?
            try db.inTransaction(.immediate) {
                result = try body(db)
                return .commit
            }
            guard let result else {
                throw TutelaError(.invalidState, "an audit log transaction ended without its result")
            }
            return result
        }
    }
}

/// What `search` filters by; nil fields match everything.
public struct AuditFilter: Sendable {
    public var principal: String?
    public var action: String?
    public var decision: String?
    public var purpose: String?
    public var kind: String?
    public var since: Int64?
    public var until: Int64?
    /// The HMAC of a customer id, as `AuditKeys.subjectHMAC` makes it.
    public var subjectHMAC: String?

    /// An empty filter.
    public init() {}

    /// Whether `event` meets every condition of the filter.
    func admits(_ event: AuditEvent) -> Bool {
        func meets(_ wanted: String?, _ value: String) -> Bool { wanted.map { $0 == value } ?? true }
        return meets(principal, event.principal) && meets(action, event.action) && meets(decision, event.decision)
            && meets(purpose, event.purpose) && meets(kind, event.kind)
            && (since.map { event.time >= $0 } ?? true) && (until.map { event.time < $0 } ?? true)
            && (subjectHMAC.map { event.subjects.contains($0) } ?? true)
    }
}

/// A continuation that the first of several racers resumes; the others find it gone.
private final class ResumeOnce<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        /// A result that came before the continuation was set (a cancelled task).
        var early: Result<T, any Error>?
        var finished = false
    }

    private let state = Mutex(State())

    /// Whether a result was delivered or is waiting to be.
    var isFinished: Bool { state.withLock { $0.finished || $0.early != nil } }

    func set(_ continuation: CheckedContinuation<T, any Error>) {
        let early = state.withLock { state -> Result<T, any Error>? in
            guard let early = state.early else {
                state.continuation = continuation
                return nil
            }
            state.finished = true
            return early
        }
        if let early { continuation.resume(with: early) }
    }

    /// Delivers `result` unless another racer did first; `delivering` runs only when this one
    /// wins, before the waiting caller resumes.
    func resume(with result: Result<T, any Error>, delivering: () -> Void = {}) {
        let (taken, wins) = state.withLock { state -> (CheckedContinuation<T, any Error>?, Bool) in
            guard !state.finished else { return (nil, false) }
            guard let continuation = state.continuation else {
                guard state.early == nil else { return (nil, false) }
                state.early = result
                return (nil, true)
            }
            state.finished = true
            state.continuation = nil
            return (continuation, true)
        }
        if wins { delivering() }
        taken?.resume(with: result)
    }
}

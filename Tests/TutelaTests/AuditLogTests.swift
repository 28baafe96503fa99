import Crypto
import Foundation
import GRDB
import Governance
import KeyManagement
import Synchronization
import Testing
import TutelaCore
import TutelaTestSupport

@testable import Audit
@testable import Store

@Suite("Audit log: durability, tamper evidence, fail closed")
struct AuditLogTests {
    private func makeLog(
        _ directory: String,
        timeout: Duration = .seconds(2),
        checkpointInterval: Duration = .milliseconds(250),
        gatherWindow: Duration = .milliseconds(1)
    ) throws -> AuditLog {
        try AuditLog(
            path: directory + "/audit.sqlite",
            logID: "test-log",
            signingKey: Self.key,
            timeout: timeout,
            checkpointInterval: checkpointInterval,
            gatherWindow: gatherWindow
        )
    }

    static let key = Curve25519.Signing.PrivateKey()

    private func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tutela-audit-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    private func event(_ number: Int) -> AuditEvent {
        AuditEvent(
            time: Int64(number),
            requestID: "r\(number)",
            kind: "data.read",
            principal: "p\(number % 3)",
            subjects: number.isMultiple(of: 2) ? ["s\(number)", "s\(number + 1)"] : [],
            outcome: "ok"
        )
    }

    /// Fills a log with 30 events appended concurrently (so they group into batches), signed
    /// up to the last one.
    private func filledLog(_ path: String, checkpointInterval: Duration = .milliseconds(250)) async throws -> AuditLog {
        let log = try makeLog(path, checkpointInterval: checkpointInterval)
        try await append(0..<30, to: log)
        _ = try await log.latestCheckpoint()
        return log
    }

    private func append(_ numbers: Range<Int>, to log: AuditLog) async throws {
        try await withThrowingTaskGroup(of: Int.self) { group in
            for number in numbers { group.addTask { try await log.append(self.event(number)) } }
            var sequences: Set<Int> = []
            for try await sequence in group { sequences.insert(sequence) }
            #expect(sequences == Set(numbers))
        }
    }

    private func storedCheckpointSizes(_ path: String) throws -> [Int] {
        try DatabaseQueue(path: path + "/audit.sqlite", configuration: .waitingForLocks).read { db in
            try Int.fetchAll(db, sql: "SELECT size FROM checkpoints ORDER BY size")
        }
    }

    /// The integer one query of the log's database returns.
    private func value(_ path: String, _ sql: String) async throws -> Int? {
        try await DatabaseQueue(path: path + "/audit.sqlite", configuration: .waitingForLocks).read { db in
            try Int.fetchOne(db, sql: sql)
        }
    }

    private func execute(_ path: String, _ sql: String) throws {
        let queue = try DatabaseQueue(path: path + "/audit.sqlite", configuration: .waitingForLocks)
        try queue.write { try $0.execute(sql: sql) }
    }

    @Test("a log that cannot be opened is refused with SQLite's reason")
    func unopenableLog() throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // A directory where the log's file should be.
        try FileManager.default.createDirectory(atPath: path + "/audit.sqlite", withIntermediateDirectories: false)
        #expect {
            _ = try makeLog(path)
        } throws: { error in
            guard let error = error as? TutelaError, error.code == .auditUnavailable else { return false }
            return error.message.hasPrefix("the audit log \(path)/audit.sqlite cannot be opened: SQLite error ")
        }
    }

    @Test("concurrent appends get contiguous numbers, and the log verifies (reporting its progress) and proves")
    func appendsVerify() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try await filledLog(path)
        let reported = Mutex<[Int]>([])
        let result = try await log.verify { done, total in
            #expect(total == 30)
            reported.withLock { $0.append(done) }
        }
        #expect(result.isValid, "\(result.problems)")
        #expect(result.entries == 30)
        #expect(reported.withLock { $0 } == [30])
        let proof = try await log.inclusionProof(sequence: 17)
        #expect(proof.isValid)
        #expect(proof.root == (try await log.latestCheckpoint()).root)
        let consistency = try await log.consistencyProof(from: 10, to: 30)
        #expect(
            MerkleTree.verifyConsistency(
                oldSize: 10,
                newSize: 30,
                oldRoot: consistency.oldRoot,
                newRoot: consistency.newRoot,
                proof: consistency.path
            )
        )
        // A reopened log continues the same tree.
        let reopened = try makeLog(path)
        #expect(try await reopened.append(event(99)) == 30)
        #expect(try await reopened.verify().isValid)
    }

    @Test("every stored batch's commit time is counted once, in the bucket of its bound")
    func commitTimes() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try await filledLog(path)
        let before = log.commitTimes
        #expect(before.count == log.writeCounts.batches)
        #expect(before.seconds > 0)
        try await log.append(event(31))
        let one = log.commitTimes.since(before)
        #expect(one.count == 1)
        #expect(one.seconds > 0)

        var times = AuditCommitTimes()
        times.record(.microseconds(300))
        times.record(.milliseconds(1))
        times.record(.milliseconds(12))
        times.record(.seconds(9))
        #expect(times.counts == [1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1])
        #expect(times.count == 4)
        #expect(abs(times.seconds - 9.0133) < 1e-9)
        #expect(times.count(slowerThan: 0.01) == 2)
        #expect(times.count(slowerThan: 0.001) == 2)
        #expect(times.count(slowerThan: 0.0005) == 3)
        #expect(times.count(slowerThan: 0.007) == nil)
        var later = times
        later.record(.milliseconds(30))
        #expect(later.since(times).counts == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test("slow commits are reported at once, then at most once per interval with those counted in between")
    func slowCommitReports() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // The idle writer never signs the tail during the test: a signature waiting for the lock
        // would take the slow moment from the batch that is measured. The writer waits up to 5 s
        // for the lock, so a busy machine that holds it longer than 400 ms fails nothing.
        let log = try makeLog(path, timeout: .seconds(10), checkpointInterval: .seconds(3600))
        try await log.append(event(0))
        let reports = Mutex<[(count: Int, slowest: Duration)]>([])
        let threshold = Duration.milliseconds(150)
        log.observeSlowCommits(over: threshold, every: .seconds(3600)) { count, slowest in
            reports.withLock { $0.append((count, slowest)) }
        }
        // A commit made slow by another connection holding the write lock for 400 ms.
        let blocker = try AuditLock(path: path + "/audit.sqlite")
        // The lock is held for 400 ms from the moment the append is under way, however late a
        // busy machine starts its task.
        func slowAppend(_ number: Int) async throws {
            try await blocker.lock()
            let started = Mutex(false)
            let appended = Task {
                started.withLock { $0 = true }
                return try await log.append(event(number))
            }
            while !started.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
            try await Task.sleep(for: .milliseconds(400))
            try await blocker.unlock()
            _ = try await appended.value
        }
        // Reports are made on the writer's thread after the batch's callers were resumed.
        func reportCount(reaching expected: Int) async throws -> Int {
            let deadline = ContinuousClock.now + .seconds(5)
            while reports.withLock({ $0.count }) < expected, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            return reports.withLock { $0.count }
        }
        try await slowAppend(1)
        #expect(try await reportCount(reaching: 1) == 1)
        #expect(reports.withLock { $0.first?.count } == 1)
        #expect(reports.withLock { $0.first?.slowest ?? .zero } > threshold)
        // Within the interval: counted, not reported.
        try await slowAppend(2)
        try await Task.sleep(for: .milliseconds(200))
        #expect(reports.withLock { $0.count } == 1)
        // With the interval gone, the next slow commit reports both.
        log.observeSlowCommits(over: threshold, every: .zero) { count, slowest in
            reports.withLock { $0.append((count, slowest)) }
        }
        try await slowAppend(3)
        #expect(try await reportCount(reaching: 2) == 2)
        #expect(reports.withLock { $0.last?.count } == 2)
        #expect(reports.withLock { $0.last?.slowest ?? .zero } > threshold)
    }

    struct Tamper: Sendable, CustomTestStringConvertible {
        var name: String
        var sql: String
        var firstBad: Int
        var testDescription: String { name }
    }

    static let tampering = [
        Tamper(
            name: "edit an entry",
            sql: "UPDATE entries SET event = replace(event, 'data.read', 'data.xead') WHERE seq = 13",
            firstBad: 13
        ),
        Tamper(
            name: "edit an entry and overwrite its leaf hash",
            sql:
                "UPDATE entries SET event = replace(event, 'data.read', 'data.xead'), leaf = zeroblob(32) WHERE seq = 13",
            firstBad: 13
        ),
        Tamper(name: "delete an entry", sql: "DELETE FROM entries WHERE seq = 9", firstBad: 9),
        Tamper(
            name: "reorder two entries",
            sql: """
                UPDATE entries SET seq = -1 WHERE seq = 4; UPDATE entries SET seq = 4 WHERE seq = 5;
                UPDATE entries SET seq = 5 WHERE seq = -1
                """,
            firstBad: 4
        ),
        Tamper(name: "cut off the end", sql: "DELETE FROM entries WHERE seq >= 25", firstBad: 25),
        // A value of another type where bytes belong: read as no bytes, never a stopped process.
        Tamper(
            name: "put a number in place of an event",
            sql: "UPDATE entries SET event = 4.5 WHERE seq = 13",
            firstBad: 13
        ),
        Tamper(
            name: "put a number in place of a leaf hash",
            sql: "UPDATE entries SET leaf = 7 WHERE seq = 6",
            firstBad: 6
        ),
        // The columns and rows searches go by are not signed: each is compared with its event.
        Tamper(
            name: "change an entry's principal column",
            sql: "UPDATE entries SET principal = 'p9' WHERE seq = 17",
            firstBad: 17
        ),
        Tamper(
            name: "change an entry's time column",
            sql: "UPDATE entries SET time_ms = 99 WHERE seq = 11",
            firstBad: 11
        ),
        Tamper(
            name: "put text in an entry's time column",
            sql: "UPDATE entries SET time_ms = 'noon' WHERE seq = 12",
            firstBad: 12
        ),
        Tamper(
            name: "change an entry's decision column",
            sql: "UPDATE entries SET decision = 'allow' WHERE seq = 21",
            firstBad: 21
        ),
    ]

    @Test(
        "verify catches every kind of tampering with the raw database and names the first bad entry",
        arguments: tampering
    )
    func tamper(_ tamper: Tamper) async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try await filledLog(path)
        try execute(path, tamper.sql)
        let result = try await makeLog(path).verify()
        #expect(!result.isValid)
        #expect(result.firstBadEntry == tamper.firstBad, "\(result.problems)")
    }

    @Test("verify finds an entry's customer row deleted, and a row added that no entry lists")
    func customerIndex() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try await filledLog(path)
        // Appended concurrently, events get their numbers in any order: found by subject.
        let holder = try #require(try await value(path, "SELECT seq FROM entry_subjects WHERE subject = 's17'"))
        try execute(path, "DELETE FROM entry_subjects WHERE subject = 's17'")
        let deleted = try await log.verify()
        #expect(deleted.firstBadEntry == holder)
        #expect(
            deleted.problems == [
                "entry \(holder) is missing from the customer index: a search by customer does not find it"
            ]
        )

        try execute(path, "INSERT INTO entry_subjects (subject, seq) VALUES ('s17', \(holder))")
        #expect(try await log.verify().isValid)
        try execute(path, "INSERT INTO entry_subjects (subject, seq) VALUES ('s17', \((holder + 1) % 30))")
        let added = try await log.verify()
        #expect(added.firstBadEntry == nil)
        #expect(
            added.problems.count == 1
                && added.problems[0].hasPrefix("the customer index holds 1 row that no entry lists")
        )
    }

    @Test("an event whose values JSON escapes verifies, and its columns are still compared")
    func escapedColumns() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try makeLog(path)
        let purpose = "say \"hi\" \\ to\tall é"
        let sequence = try await log.append(
            AuditEvent(time: 5, requestID: "r", kind: "http.rejected", principal: "p", purpose: purpose, outcome: "ok")
        )
        #expect(try await log.verify().isValid)
        try execute(path, "UPDATE entries SET purpose = replace(purpose, 'hi', 'ho') WHERE seq = \(sequence)")
        #expect(try await log.verify().firstBadEntry == sequence)
    }

    @Test("a search found through an altered column or customer row is refused, naming the entry")
    func searchThroughAlteredIndex() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try await filledLog(path)
        var byPrincipal = AuditFilter()
        byPrincipal.principal = "p0"
        var byCustomer = AuditFilter()
        byCustomer.subjectHMAC = "s5"
        let holder = try #require(try await value(path, "SELECT seq FROM entry_subjects WHERE subject = 's5'"))
        #expect(try await log.search(byPrincipal, limit: 100).count == 10)
        #expect(try await log.search(byCustomer, limit: 100).map(\.sequence) == [holder])

        let other = try #require(try await value(path, "SELECT max(seq) FROM entries WHERE principal <> 'p0'"))
        try execute(path, "UPDATE entries SET principal = 'p0' WHERE seq = \(other)")
        let principalError = await #expect(throws: TutelaError.self) { try await log.search(byPrincipal, limit: 100) }
        #expect(principalError?.code == .storage)
        #expect(principalError?.message.contains("audit entry \(other) was found by search columns") == true)

        let unlisted = try #require(try await value(path, "SELECT max(seq) FROM entries WHERE seq <> \(holder)"))
        try execute(path, "INSERT INTO entry_subjects (subject, seq) VALUES ('s5', \(unlisted))")
        let customerError = await #expect(throws: TutelaError.self) { try await log.search(byCustomer, limit: 100) }
        #expect(customerError?.message.contains("audit entry \(unlisted) was found by search columns") == true)
    }

    @Test("an entry whose stored event no longer parses is named by search and by its own read")
    func unreadableEntry() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try await filledLog(path)
        try execute(path, "UPDATE entries SET event = substr(event, 2) WHERE seq = 13")
        let log = try makeLog(path)
        let searchError = await #expect(throws: TutelaError.self) { try await log.search(AuditFilter(), limit: 100) }
        #expect(searchError?.code == .storage)
        #expect(searchError?.message.contains("audit entry 13 is damaged or was altered") == true)
        let entryError = await #expect(throws: TutelaError.self) { try await log.entry(13) }
        #expect(entryError?.message.contains("audit entry 13 is damaged or was altered") == true)
        // The entries after it are still found.
        #expect(try await log.search(AuditFilter(), limit: 10).count == 10)
        // A value of another type in place of the event: the same error, not a stopped process.
        try execute(path, "UPDATE entries SET event = 4.5 WHERE seq = 13")
        let numberError = await #expect(throws: TutelaError.self) { try await log.search(AuditFilter(), limit: 100) }
        #expect(numberError?.message.contains("audit entry 13 is damaged or was altered") == true)
    }

    @Test("an export proves every entry against the latest checkpoint, and refuses a log that no longer matches it")
    func export() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try await filledLog(path)
        var lines: [String] = []
        let checkpoint = try await log.export { lines.append($0) }
        #expect(checkpoint.size == 30)
        #expect(lines.count == 31 && lines.last?.hasPrefix("{\"checkpoint\":") == true)
        for (index, line) in lines.dropLast().enumerated() {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let leafText = try #require(object["leaf"] as? String)
            let leaf = try #require(Hex.decode(leafText))
            let path = try #require(object["inclusion"] as? [String]).compactMap { Hex.decode($0) }
            #expect(object["tree_size"] as? Int == 30)
            #expect((object["event"] as? [String: Any])?["seq"] as? Int == index)
            #expect(MerkleTree.verifyInclusion(leaf: leaf, index: index, size: 30, proof: path, root: checkpoint.root))
        }
        try execute(path, "UPDATE entries SET event = replace(event, 'data.read', 'data.xead') WHERE seq = 13")
        let error = await #expect(throws: TutelaError.self) { try await makeLog(path).export { _ in } }
        #expect(error?.code == .invalidState)
    }

    @Test("an entry edited with a correctly recomputed leaf hash is still caught by the signed roots")
    func consistentEdit() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try await filledLog(path)
        let queue = try DatabaseQueue(path: path + "/audit.sqlite", configuration: .waitingForLocks)
        try await queue.write { db in
            let bytes = try #require(try Data.fetchOne(db, sql: "SELECT event FROM entries WHERE seq = 13"))
            let edited = Array(
                String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "data.read", with: "data.xead").utf8
            )
            try db.execute(
                sql: "UPDATE entries SET event = ?, leaf = ? WHERE seq = 13",
                arguments: [Data(edited), Data(MerkleTree.leafHash(edited))]
            )
        }
        let result = try await makeLog(path).verify()
        #expect(!result.isValid)
        #expect((result.firstBadEntry ?? 99) <= 13)
        #expect(result.problems.contains { $0.contains("do not match") })
    }

    @Test("a log cut off together with its later checkpoints is caught by a checkpoint kept elsewhere")
    func externalCheckpoint() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try await filledLog(path)
        let saved = try Checkpoint(text: try await log.latestCheckpoint().text)
        try execute(
            path,
            """
            DELETE FROM entries WHERE seq >= 20; DELETE FROM entry_subjects WHERE seq >= 20;
            DELETE FROM checkpoints WHERE size > 20; DELETE FROM state
            """
        )
        let cut = try makeLog(path)
        #expect(try await cut.verify().isValid)
        let result = try await cut.verify(against: saved)
        #expect(!result.isValid)
        #expect(result.firstBadEntry == 20)
        // A forged checkpoint is refused.
        let forged = try Checkpoint.sign(
            logID: "test-log",
            size: 30,
            root: saved.root,
            time: 0,
            key: Curve25519.Signing.PrivateKey()
        )
        #expect(try await cut.verify(against: forged).problems.contains { $0.contains("bad signature") })
    }

    @Test("batches are signed once per interval; the writer signs the tail when idle, a reader on demand")
    func checkpointInterval() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // An interval longer than the test: nothing is signed by the writer.
        let slow = try makeLog(path, checkpointInterval: .seconds(3600))
        try await append(0..<30, to: slow)
        #expect(try storedCheckpointSizes(path) == [])
        let unsigned = try await slow.verify()
        #expect(unsigned.isValid, "\(unsigned.problems)")
        #expect(unsigned.unsignedEntries == 30)
        // A log whose tail is unsigned (a process stopped under load) opens and goes on.
        let reopened = try makeLog(path, checkpointInterval: .milliseconds(20))
        #expect(try await reopened.append(event(30)) == 30)
        // Idle for longer than the interval: the writer signs everything.
        var sizes: [Int] = []
        for _ in 0..<100 where sizes.last != 31 {
            try await Task.sleep(for: .milliseconds(20))
            sizes = try storedCheckpointSizes(path)
        }
        #expect(sizes == [31])
        #expect(try await reopened.verify().unsignedEntries == 0)
        // Asking for the latest checkpoint signs what is not signed yet.
        try await append(31..<40, to: slow)
        let checkpoint = try await slow.latestCheckpoint()
        #expect(checkpoint.size == 40)
        #expect(try storedCheckpointSizes(path).last == 40)
    }

    @Test("a search by time finds exactly the events in its bounds, newest first, also when times go back and forth")
    func searchByTime() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try makeLog(path)
        // Times out of step with sequence numbers: a clock set back, events from two processes.
        let times: [Int64] = [50, 10, 90, 30, 30, 70, 20, 100, 60, 40, 5, 80]
        for (sequence, time) in times.enumerated() {
            let appended = try await log.append(
                AuditEvent(
                    time: time,
                    requestID: "r\(sequence)",
                    kind: "data.read",
                    principal: "p\(sequence % 2)",
                    outcome: "ok"
                )
            )
            #expect(appended == sequence)
        }
        let bounds: [(Int64?, Int64?)] = [
            (30, nil), (nil, 30), (30, 70), (55, 56), (101, nil), (nil, 5), (0, 1000), (95, 100), (5, 6), (70, 30),
        ]
        for (since, until) in bounds {
            for principal in [nil, "p1"] {
                var filter = AuditFilter()
                filter.since = since
                filter.until = until
                filter.principal = principal
                let expected = times.indices.reversed().filter { sequence in
                    times[sequence] >= (since ?? .min) && times[sequence] < (until ?? .max)
                        && (principal == nil || principal == "p\(sequence % 2)")
                }
                for limit in [1, 3, 100] {
                    let found = try await log.search(filter, limit: limit).map(\.requestID)
                    #expect(
                        found == expected.prefix(limit).map { "r\($0)" },
                        "since \(String(describing: since)), until \(String(describing: until)), \(String(describing: principal)), limit \(limit)"
                    )
                }
            }
        }
    }

    @Test("expected calls share one commit: the writer holds a batch until the last of them has appended")
    func groupCommitWaitsForExpectedCalls() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // A window far longer than the calls' spread, shorter than the append timeout.
        let log = try makeLog(path, timeout: .seconds(30), gatherWindow: .seconds(10))
        #expect(try await appendSpacedOut(to: log) == [0, 1, 2, 3])
        #expect(log.writeCounts.batches == 1)
        #expect(log.writeCounts.events == 4)
        // Without a window, the same calls do not wait for each other.
        let eagerPath = try directory()
        defer { try? FileManager.default.removeItem(atPath: eagerPath) }
        let eager = try makeLog(eagerPath, gatherWindow: .zero)
        #expect(try await appendSpacedOut(to: eager) == [0, 1, 2, 3])
        #expect(eager.writeCounts.batches > 1)
    }

    @Test("a batch's entries are stored in chunks of rows, each row with its own columns and subjects")
    func largeBatchesStoredRowForRow() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try makeLog(path, timeout: .seconds(30), gatherWindow: .seconds(10))
        // 103 expected calls: the writer holds a batch until they have all appended, so it
        // stores them in few batches, in chunks of 64, 32, 4, 2 and 1 rows or smaller ones.
        let count = 103
        let sequences = try await withThrowingTaskGroup(of: Int.self) { group in
            for number in 0..<count {
                group.addTask {
                    try await log.expectingAppend {
                        var event = self.event(number)
                        event.subjects = ["subject-\(number)", "shared"]
                        return try await log.append(event)
                    }
                }
            }
            return try await group.reduce(into: Set<Int>()) { $0.insert($1) }
        }
        #expect(sequences == Set(0..<count))
        #expect(log.writeCounts.batches < count / 2)
        let result = try await log.verify()
        #expect(result.isValid, "\(result.problems)")
        #expect(result.entries == count)
        // Each subject row points at its own event, each principal column matches its event.
        for number in [0, 1, 63, 64, 95, 96, 100, 101, 102] {
            var filter = AuditFilter()
            filter.subjectHMAC = "subject-\(number)"
            let found = try await log.search(filter, limit: 10)
            #expect(found.count == 1)
            #expect(found.first?.time == Int64(number))
            #expect(found.first?.requestID == "r\(number)")
        }
        var shared = AuditFilter()
        shared.subjectHMAC = "shared"
        #expect(try await log.search(shared, limit: 1000).count == count)
        var principal = AuditFilter()
        principal.principal = "p1"
        let byPrincipal = try await log.search(principal, limit: 1000)
        #expect(byPrincipal.count == (0..<count).count { $0 % 3 == 1 })
        #expect(byPrincipal.allSatisfy { $0.principal == "p1" && $0.time % 3 == 1 })
    }

    /// Four expected calls that append 50 ms apart; their sequence numbers.
    private func appendSpacedOut(to log: AuditLog) async throws -> Set<Int> {
        try await withThrowingTaskGroup(of: Int.self) { group in
            for number in 0..<4 {
                group.addTask {
                    try await log.expectingAppend {
                        try await Task.sleep(for: .milliseconds(50 * number))
                        return try await log.append(self.event(number))
                    }
                }
            }
            return try await group.reduce(into: Set<Int>()) { $0.insert($1) }
        }
    }

    @Test("a lone call, or one whose expected neighbour has appended, is never held for the window")
    func groupCommitDoesNotHoldALoneCall() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // Held for the window, these appends would miss their 2 s deadline and fail.
        let log = try makeLog(path, timeout: .seconds(2), gatherWindow: .seconds(60))
        #expect(try await log.expectingAppend { try await log.append(event(0)) } == 0)
        #expect(try await log.append(event(1)) == 1)
        // A call that ended without appending is no longer expected.
        await log.expectingAppend {}
        #expect(try await log.expectingAppend { try await log.append(event(2)) } == 2)
        #expect(log.writeCounts.batches == 3)
    }

    @Test("the log's WAL is copied into its database by the checkpointer's thread, not only inside commits")
    func walCheckpointedInBackground() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try makeLog(path)
        // One commit per event, a few frames each: the log passes the thread's length many times.
        for number in 0..<300 { _ = try await log.append(event(number)) }
        try await settle(at: { log.walCheckpoints.background > 0 })
        #expect(log.walCheckpoints.background > 0)
        let verification = try await log.verify()
        #expect(verification.isValid)
        #expect(verification.entries == 300)
    }

    @Test("a new log's file has 2 KiB pages; a file made with 4 KiB pages keeps them and takes appends")
    func pageSize() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try makeLog(path)
        #expect(try await log.storage.pageSize == 2048)
        // A log file created before, with SQLite's default page size.
        let older = try directory()
        defer { try? FileManager.default.removeItem(atPath: older) }
        try await DatabasePool(path: older + "/audit.sqlite").write { db in
            try db.execute(sql: "CREATE TABLE earlier (id INTEGER PRIMARY KEY)")
            try db.execute(sql: "DROP TABLE earlier")
        }
        let kept = try makeLog(older)
        #expect(try await kept.storage.pageSize == 4096)
        try await append(0..<3, to: kept)
        #expect(try await kept.verify().entries == 3)
    }

    @Test("a log released with entries it has not signed yet signs them as it closes")
    func signsOnClose() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let log = try makeLog(path, checkpointInterval: .seconds(3600))
            try await append(0..<5, to: log)
            #expect(try storedCheckpointSizes(path) == [])
        }
        var sizes: [Int] = []
        for _ in 0..<100 where sizes != [5] {
            try await Task.sleep(for: .milliseconds(10))
            sizes = try storedCheckpointSizes(path)
        }
        #expect(sizes == [5])
        // Opening and verifying writes nothing.
        do { _ = try await makeLog(path).verify() }
        #expect(try storedCheckpointSizes(path) == [5])
    }

    @Test("a log cut behind its latest checkpoint, state rewritten to match, refuses to open")
    func checkpointAheadOfState() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try await filledLog(path)
        try await DatabaseQueue(path: path + "/audit.sqlite", configuration: .waitingForLocks).write { db in
            var frontier = MerkleFrontier()
            for leaf in try Data.fetchAll(db, sql: "SELECT leaf FROM entries WHERE seq < 20 ORDER BY seq") {
                frontier.append(Array(leaf))
            }
            try db.execute(sql: "DELETE FROM entries WHERE seq >= 20")
            try db.execute(sql: "UPDATE state SET size = 20, frontier = ?", arguments: [Data(frontier.encoded)])
        }
        let error = #expect(throws: TutelaError.self) { try makeLog(path) }
        #expect(error?.code == .auditTampered)
    }

    @Test(
        "a damaged saved state is refused as tampered, never read as another size",
        arguments: [
            "UPDATE state SET size = size + 1", "UPDATE state SET frontier = x'00'",
            "UPDATE state SET size = 'twelve'", "UPDATE state SET frontier = 'not a frontier'",
        ]
    )
    func damagedState(sql: String) async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try await filledLog(path)
        try await DatabaseQueue(path: path + "/audit.sqlite", configuration: .waitingForLocks).write { db in
            try db.execute(sql: sql)
        }
        let error = #expect(throws: TutelaError.self) { try makeLog(path) }
        #expect(error?.code == .auditTampered)
    }

    @Test(
        "with the audit store locked, an append fails within its deadline instead of hanging, and the failure is told"
    )
    func failClosed() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try makeLog(path, timeout: .milliseconds(500))
        let told = Mutex<[String?]>([])
        log.observeWriteHealth { reason in told.withLock { $0.append(reason) } }
        try await log.append(event(0))
        #expect(log.recentWriteFailure(within: .seconds(60)) == nil)
        let blocker = try AuditLock(path: path + "/audit.sqlite")
        try await blocker.lock()
        let error = await #expect(throws: TutelaError.self) { try await log.append(self.event(1)) }
        #expect(error?.code == .auditUnavailable)
        // The batch fails on the lock (SQLITE_BUSY), or the caller's deadline passes first on a
        // loaded machine: either is noted before the caller hears of it, and told once.
        let reason = try #require(log.recentWriteFailure(within: .seconds(60)))
        #expect(["SQLite error 5: database is locked", "an event was not stored within 0.5 seconds"].contains(reason))
        #expect(log.recentWriteFailure(within: .zero) == nil)
        #expect(log.failedWrites >= 1)
        try await blocker.unlock()
        try await log.append(event(2))
        #expect(log.recentWriteFailure(within: .seconds(60)) == nil)
        #expect(told.withLock { $0 } == [reason, nil])
        #expect(try await log.verify().isValid)
    }
}

@Suite("Every governed operation is audited")
struct GovernanceAuditTests {
    @Test(
        "reads, denials, lookups, imports, erasures, key and principal changes leave events; details die with the customer"
    )
    func operationsAreAudited() async throws {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        let (tutela, _) = try await environment.startWithSample(customers: 10)
        _ = try await tutela.createPrincipal(name: "alice", roles: ["support_agent"], attributes: [:])
        let support = Caller(principal: "alice", purpose: "support")
        _ = try await tutela.governedRecord(support, collection: "customers", id: "c000002")
        await #expect(throws: TutelaError.self) {
            try await tutela.governedRecord(
                Caller(principal: "alice", purpose: "analytics"),
                collection: "customers",
                id: "c000002"
            )
        }
        let email = try await tutela.record(collection: "customers", id: "c000003").fields["email"]?.displayText ?? ""
        _ = try await tutela.governedFind(support, collection: "customers", field: "email", value: email)
        try await tutela.rotateKey(now: 5)

        let kinds = Set(try await tutela.auditSearch(AuditFilter(), limit: 100).map(\.kind))
        #expect(
            kinds.isSuperset(of: [
                "log.init", "data.import", "principals.create", "data.read", "data.lookup", "admin.read", "keys.rotate",
            ])
        )
        var denied = AuditFilter()
        denied.decision = "deny"
        let denials = try await tutela.auditSearch(denied, limit: 10)
        #expect(denials.count == 1)
        #expect(denials.first?.denial == "not_permitted")
        #expect(denials.first?.purpose == "analytics")

        let aboutTwo = try await tutela.auditSearch(AuditFilter(), customer: "c000002", limit: 100)
        #expect(aboutTwo.contains { $0.kind == "data.read" && $0.principal == "alice" })
        for event in try await tutela.auditSearch(AuditFilter(), limit: 100) {
            let text = String(decoding: event.canonicalBytes, as: UTF8.self)
            #expect(!text.contains("c000002") && !text.contains("c000003") && !text.contains("@"))
        }

        let lookup = try #require(
            try await tutela.auditSearch(AuditFilter(), customer: "c000003", limit: 100).first {
                $0.kind == "data.lookup"
            }
        )
        #expect(try await tutela.auditDetail(lookup, customer: "c000003").contains(email))
        _ = try await tutela.erase(subject: "c000003", now: 6)
        let shredded = await #expect(throws: TutelaError.self) {
            try await tutela.auditDetail(lookup, customer: "c000003")
        }
        #expect(shredded?.code == .subjectErased)
        #expect(try await tutela.audit.verify().isValid)
    }

    @Test("with the audit log unwritable, an import fails and stores nothing")
    func failClosedImport() async throws {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        let tutela = try await environment.start()
        let blocker = try AuditLock(path: tutela.configuration.auditPath)
        try await blocker.lock()
        let content = "customer_id,email\nc1,one@example.com\n"
        let error = await #expect(throws: TutelaError.self) {
            try await tutela.importRecords(into: "customers", data: Data(content.utf8), format: .csv)
        }
        #expect(error?.code == .auditUnavailable)
        try await blocker.unlock()
        #expect(try await tutela.recordCount(collection: "customers") == 0)
    }
}

extension Configuration {
    /// Waits up to 10 s for a lock another connection holds, instead of failing at once: a log
    /// under test signs its tail when its writer has been idle for the checkpoint interval, and
    /// on a loaded machine that moment can fall on a test's own write.
    static var waitingForLocks: Configuration {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        return configuration
    }
}

/// Another connection that holds the audit database's write lock, as a stuck or hostile writer
/// would, so that the log cannot make anything durable.
struct AuditLock {
    let queue: DatabaseQueue

    init(path: String) throws {
        // Taking the lock waits for a transaction under way (a batch, or the idle writer
        // signing the tail), instead of failing on it.
        var configuration = Configuration.waitingForLocks
        configuration.allowsUnsafeTransactions = true
        queue = try DatabaseQueue(path: path, configuration: configuration)
    }

    func lock() async throws {
        try await queue.writeWithoutTransaction { db in try db.execute(sql: "BEGIN IMMEDIATE") }
    }

    func unlock() async throws {
        try await queue.writeWithoutTransaction { db in try db.execute(sql: "ROLLBACK") }
    }
}

@Suite("Audit log shared by two processes")
struct AuditLogSharingTests {
    @Test("two log instances on one file (a server and a CLI command) append in turn and the log verifies")
    func twoWriters() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tutela-audit-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let key = Curve25519.Signing.PrivateKey()
        let server = try AuditLog(path: path + "/audit.sqlite", logID: "shared", signingKey: key)
        try await server.append(AuditEvent(time: 0, requestID: "s0", kind: "test", principal: "server", outcome: "ok"))
        let command = try AuditLog(path: path + "/audit.sqlite", logID: "shared", signingKey: key)
        var sequences: [Int] = []
        for round in 1...5 {
            sequences.append(
                try await command.append(
                    AuditEvent(time: 0, requestID: "c\(round)", kind: "test", principal: "cli", outcome: "ok")
                )
            )
            sequences.append(
                try await server.append(
                    AuditEvent(time: 0, requestID: "s\(round)", kind: "test", principal: "server", outcome: "ok")
                )
            )
        }
        #expect(sequences == Array(1...10))
        #expect(try await server.verify().isValid)
        #expect(try await command.size == 11)
    }
}

@Suite("Durable commits")
struct DurableCommitTests {
    @Test(
        "the audit log's and the store's writers sync every commit (synchronous = FULL, which a WAL pool would lower)"
    )
    func writersSyncEveryCommit() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tutela-sync-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try AuditLog(
            path: path + "/audit.sqlite",
            logID: "test-log",
            signingKey: Curve25519.Signing.PrivateKey()
        )
        #expect(try log.writerSynchronousSetting() == 2)
        let store = try SQLiteRecordStore(path: path + "/tutela.sqlite")
        #expect(try store.writerSynchronousSetting() == 2)
    }
}

import Crypto
import Foundation
import GRDB
import Synchronization
import Testing
import TutelaCore

@testable import Audit

@Suite("Audit log: archiving old events")
struct AuditArchiveTests {
    static let key = Curve25519.Signing.PrivateKey()

    private func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("tutela-archive-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    private func makeLog(_ directory: String) throws -> AuditLog {
        try AuditLog(path: directory + "/audit.sqlite", logID: "archive-test", signingKey: Self.key)
    }

    /// Appends events one at a time, each with its number as its time in milliseconds, so that
    /// sequence numbers and times agree.
    private func append(_ numbers: Range<Int>, to log: AuditLog) async throws {
        for number in numbers {
            let sequence = try await log.append(
                AuditEvent(
                    time: Int64(number),
                    requestID: "r\(number)",
                    kind: "data.read",
                    principal: "p\(number % 3)",
                    subjects: ["s\(number)"],
                    outcome: "ok"
                )
            )
            #expect(sequence == number)
        }
    }

    private func count(_ path: String, _ sql: String) throws -> Int {
        try DatabaseQueue(path: path + "/audit.sqlite", configuration: .waitingForLocks).read { db in
            try Int.fetchOne(db, sql: sql) ?? -1
        }
    }

    @Test("the oldest events move to lines that prove them; the log still verifies, proves, exports and appends")
    func archiveOldest() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try makeLog(path)
        try await append(0..<30, to: log)

        var lines: [String] = []
        var commits = 0
        let reports = Mutex<[String]>([])
        // Removed five entries per transaction: three transactions.
        let archive = try await log.archive(
            before: 12,
            removingPerTransaction: 5,
            write: { lines.append($0) },
            commit: { commits += 1 },
            progress: { phase, done, total in reports.withLock { $0.append("\(phase) \(done)/\(total)") } }
        )
        #expect(archive.from == 0 && archive.to == 12 && archive.checkpointSize == 30)
        #expect(commits == 1)
        // Every leaf of the signed tree hashed, the archived entries written, then removed, and
        // the pages they freed (if any) released.
        let steps = reports.withLock { $0 }
        #expect(
            steps.prefix(5) == [
                "hashing 30/30", "writing 12/12", "removing 5/12", "removing 10/12", "removing 12/12",
            ]
        )
        #expect(steps.dropFirst(5).allSatisfy { $0.hasPrefix("releasing ") }, "\(steps)")
        #expect(lines.count == 13 && lines.last?.hasPrefix("{\"checkpoint\":") == true)
        let lastLine = try #require(lines.last)
        let checkpointObject = try JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: String]
        let checkpointText = try #require(checkpointObject?["checkpoint"])
        let checkpoint = try Checkpoint(text: checkpointText)
        #expect(checkpoint.isValid(under: Self.key.publicKey) && checkpoint.size == 30)
        for (index, line) in lines.dropLast().enumerated() {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let event = try #require(object["event"] as? [String: Any])
            #expect(event["seq"] as? Int == index)
            let leafText = try #require(object["leaf"] as? String)
            let leaf = try #require(Hex.decode(leafText))
            let proof = try #require(object["inclusion"] as? [String]).compactMap { Hex.decode($0) }
            #expect(MerkleTree.verifyInclusion(leaf: leaf, index: index, size: 30, proof: proof, root: checkpoint.root))
        }

        // Out of the log: no event bytes, no subjects, not found by search or by number.
        #expect(try count(path, "SELECT count(*) FROM entries WHERE seq < 12 AND length(event) > 0") == 0)
        #expect(try count(path, "SELECT count(*) FROM entry_subjects WHERE seq < 12") == 0)
        #expect(try count(path, "SELECT count(*) FROM entry_subjects") == 18)
        let found = try await log.search(AuditFilter(), limit: 100)
        #expect(found.map(\.sequence).sorted() == Array(12..<30))
        let archived = await #expect(throws: TutelaError.self) { _ = try await log.entry(5) }
        #expect(archived?.message.contains("was archived") == true)
        let negative = await #expect(throws: TutelaError.self) { _ = try await log.entry(-1) }
        #expect(negative?.message == "no audit entry -1")

        // The hashes stay: the log verifies, proves an archived entry, and goes on.
        let verified = try await log.verify()
        #expect(verified.isValid, "\(verified.problems)")
        #expect(verified.entries == 30 && verified.archivedEntries == 12)
        #expect(try await log.inclusionProof(sequence: 5).isValid)
        var exported: [String] = []
        _ = try await log.export { exported.append($0) }
        #expect(exported.count == 19 && exported.first?.contains("\"seq\":12,") == true)
        try await append(30..<35, to: log)
        #expect(try await log.verify().isValid)

        // Nothing older left: no lines, no commit.
        let again = try await log.archive(
            before: 12,
            write: { _ in Issue.record("wrote a line") },
            commit: {
                Issue.record("committed")
            }
        )
        #expect(again.entries == 0 && again.from == 12)
        #expect(try await log.archivedEntries == 12)

        // At most `limit` entries at a time, the rest left for the next archive.
        var limited: [String] = []
        let part = try await log.archive(before: 30, limit: 5, write: { limited.append($0) }, commit: {})
        #expect(part.from == 12 && part.to == 17 && limited.count == 6)
        #expect(try await log.archivedEntries == 17)
        #expect(try await log.verify().isValid)
    }

    @Test("when the archive cannot be made durable, nothing leaves the log")
    func failedCommit() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try makeLog(path)
        try await append(0..<10, to: log)
        await #expect(throws: TutelaError.self) {
            _ = try await log.archive(
                before: 5,
                write: { _ in },
                commit: { throw TutelaError(.io, "the disk is full") }
            )
        }
        #expect(try await log.archivedEntries == 0)
        #expect(try await log.entry(3).sequence == 3)
        #expect(try count(path, "SELECT count(*) FROM entry_subjects") == 10)
        #expect(try await log.verify().isValid)
    }

    @Test("an event altered behind its kept hash is refused as it is archived, and nothing leaves the log")
    func alteredEventIsNotArchived() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try makeLog(path)
        try await append(0..<20, to: log)
        // The event's bytes changed, its stored leaf hash left as it was: the tree built from
        // the stored hashes still matches the signed root, so the event itself must be checked.
        let queue = try DatabaseQueue(path: path + "/audit.sqlite", configuration: .waitingForLocks)
        try await queue.write { db in
            try db.execute(sql: "UPDATE entries SET event = replace(event, 'r3', 'rX') WHERE seq = 3")
        }
        var lines: [String] = []
        var commits = 0
        await #expect {
            _ = try await log.archive(before: 10, write: { lines.append($0) }, commit: { commits += 1 })
        } throws: { error in
            (error as? TutelaError)?.code == .invalidState
                && (error as? TutelaError)?.message.hasPrefix("entry 3 does not match its hash") == true
        }
        #expect(lines.count == 3 && commits == 0)
        #expect(try await log.archivedEntries == 0)
        #expect(try count(path, "SELECT count(*) FROM entries") == 20)
        // An export stops at the same entry.
        await #expect(throws: TutelaError.self) { try await log.export { _ in } }
    }

    @Test("an archived entry's kept hash, altered, is caught by the signed roots")
    func alteredArchivedHash() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try makeLog(path)
        try await append(0..<20, to: log)
        _ = try await log.archive(before: 10, write: { _ in }, commit: {})
        let queue = try DatabaseQueue(path: path + "/audit.sqlite", configuration: .waitingForLocks)
        try await queue.write { try $0.execute(sql: "UPDATE archived_leaves SET leaf = randomblob(32) WHERE seq = 4") }
        let result = try await makeLog(path).verify()
        #expect(!result.isValid)
        #expect((result.firstBadEntry ?? 99) <= 4, "\(result.problems)")
    }
    @Test("an archive file checks out against the log; an altered, shortened, cut or foreign one does not")
    func checkFile() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try makeLog(path)
        try await append(0..<20, to: log)
        var lines: [String] = []
        _ = try await log.archive(before: 10, write: { lines.append($0) }, commit: {})
        let good = try await log.checkArchive(at: try writeFile(lines, in: path))
        #expect(good.isValid, "\(good.problems)")
        #expect(good.entries == 10 && good.from == 0 && good.to == 10)

        var altered = lines
        altered[4] = altered[4].replacingOccurrences(of: "\"principal\":\"p1\"", with: "\"principal\":\"p2\"")
        #expect(altered[4] != lines[4])
        let alteredCheck = try await log.checkArchive(at: try writeFile(altered, in: path))
        #expect(!alteredCheck.isValid && alteredCheck.problems.first?.contains("entry 4") == true)

        var shortened = lines
        shortened.remove(at: 6)
        let shortenedCheck = try await log.checkArchive(at: try writeFile(shortened, in: path))
        #expect(shortenedCheck.problems.contains { $0.contains("entry 6 is missing") })

        let cut = try await log.checkArchive(at: try writeFile(Array(lines.dropLast()), in: path))
        #expect(!cut.isValid && cut.entries == 0)

        let other = try AuditLog(
            path: path + "/other.sqlite",
            logID: "archive-test",
            signingKey: Curve25519.Signing.PrivateKey()
        )
        let foreign = try await other.checkArchive(at: try writeFile(lines, in: path))
        #expect(!foreign.isValid && foreign.problems.first?.contains("bad signature") == true)
    }

    /// Appends `count` events of about 500 bytes, together so that they share commits.
    private func appendMany(_ count: Int, to log: AuditLog) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for number in 0..<count {
                group.addTask {
                    try await log.append(
                        AuditEvent(
                            time: 1,
                            requestID: "request-\(number)",
                            kind: "data.read",
                            principal: "principal-\(number % 7)",
                            resource: String(repeating: "r", count: 300),
                            subjects: ["subject-\(number)"],
                            outcome: "ok"
                        )
                    )
                }
            }
            try await group.waitForAll()
        }
    }

    @Test("an archive gives the pages of its entries back to the file system, a step at a time")
    func archivedPagesAreReleased() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try makeLog(path)
        #expect(try await log.storage.releasesFreePages)
        try await appendMany(800, to: log)
        let written = try await log.storage
        let steps = Mutex<[AuditArchivePhase: [Int]]>([:])
        let archive = try await log.archive(
            before: 2,
            write: { _ in },
            commit: {},
            progress: { phase, done, _ in steps.withLock { $0[phase, default: []].append(done) } }
        )
        #expect(archive.entries == 800)
        let after = try await log.storage
        // 800 events of about 500 bytes took some 100 pages; their kept leaves take a few.
        #expect(after.freePages == 0)
        #expect(after.pages < written.pages / 3, "\(after.pages) pages, \(written.pages) before")
        // Removing the entries added their kept leaves first, so the file gave back more than it
        // shrank by from its size before the archive.
        #expect(archive.releasedBytes >= (written.pages - after.pages) * written.pageSize)
        #expect(steps.withLock { $0[.releasing]?.last } == archive.releasedBytes / written.pageSize)
        // Appends after the archive grow the file again, and it verifies.
        try await appendMany(400, to: log)
        #expect(try await log.storage.pages > after.pages)
        #expect(try await log.verify().isValid)
    }

    @Test("a release runs in steps of the pages asked for, and stops when none are free")
    func releaseInSteps() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try makeLog(path)
        try await appendMany(600, to: log)
        // Removed without a release, as by an archive cut off before it.
        try await log.writeLog { db in
            try db.execute(sql: "DELETE FROM entry_subjects; DELETE FROM entries WHERE seq < 500")
        }
        let storage = try await log.storage
        let free = storage.freePages
        #expect(free > 40)
        let reports = Mutex<[Int]>([])
        let released = try await log.releaseFreePages(chunk: 16) { done, total in
            #expect(total == free)
            reports.withLock { $0.append(done) }
        }
        #expect(released == free * storage.pageSize)
        #expect(reports.withLock { $0 } == Array(stride(from: 16, to: free, by: 16)) + [free])
        #expect(try await log.storage.freePages == 0)
        #expect(try await log.releaseFreePages() == 0)
    }

    @Test("a log made before it could release pages keeps them until compact converts it once")
    func compactConvertsAnOlderLog() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // An older log: a file whose tables were made without incremental auto-vacuum.
        try await DatabaseQueue(path: path + "/audit.sqlite", configuration: .waitingForLocks).writeWithoutTransaction {
            db in
            try db.execute(sql: "PRAGMA journal_mode = WAL; CREATE TABLE earlier (x)")
        }
        let log = try makeLog(path)
        #expect(try await !log.storage.releasesFreePages)
        try await appendMany(800, to: log)
        let archive = try await log.archive(before: 2, write: { _ in }, commit: {})
        #expect(archive.entries == 800 && archive.releasedBytes == 0)
        let kept = try await log.storage
        #expect(kept.freePages > kept.pages / 2)

        let unchanged = try await log.compact(convert: false)
        #expect(!unchanged.converted && unchanged.releasedBytes == 0 && unchanged.after == kept)

        let compaction = try await log.compact(convert: true)
        #expect(compaction.converted)
        #expect(compaction.after.releasesFreePages && compaction.after.freePages == 0)
        // All the free pages, but for the few that now map the file's pages (one per 800 or so).
        #expect(compaction.releasedBytes >= kept.freeBytes - 2 * kept.pageSize, "\(compaction)")
        #expect(try await log.verify().isValid)
        // From then on an archive releases its pages itself.
        try await appendMany(400, to: log)
        let later = try await log.archive(before: 2, write: { _ in }, commit: {})
        #expect(later.entries == 400 && later.releasedBytes > 0)
        #expect(try await log.storage.freePages == 0)
    }

    @Test("a log archived before the leaves had a table of their own moves them there on opening, and verifies")
    func archivedBeforeMigration() async throws {
        let path = try directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await {
            let log = try makeLog(path)
            try await append(0..<20, to: log)
            _ = try await log.archive(before: 8, write: { _ in }, commit: {})
        }()
        // Back to the earlier form: archived rows emptied in place, no leaf table, no migration.
        try await DatabaseQueue(path: path + "/audit.sqlite", configuration: .waitingForLocks).write { db in
            try db.execute(
                sql: """
                    INSERT INTO entries (seq, time_ms, kind, principal, action, purpose, decision, event, leaf)
                        SELECT seq, seq, '', '', '', '', '', x'', leaf FROM archived_leaves;
                    DROP TABLE archived_leaves;
                    DELETE FROM grdb_migrations WHERE identifier = 'v3-archived-leaves';
                    """
            )
        }
        #expect(try count(path, "SELECT count(*) FROM entries") == 20)

        let reopened = try makeLog(path)
        #expect(try count(path, "SELECT count(*) FROM entries") == 12)
        #expect(try count(path, "SELECT count(*) FROM archived_leaves") == 8)
        let verified = try await reopened.verify()
        #expect(verified.isValid, "\(verified.problems)")
        #expect(verified.entries == 20 && verified.archivedEntries == 8)
        #expect(try await reopened.inclusionProof(sequence: 3).isValid)
    }

    private func writeFile(_ lines: [String], in directory: String) throws -> String {
        let file = directory + "/archive-\(UUID().uuidString).jsonl"
        try Data(lines.map { $0 + "\n" }.joined().utf8).write(to: URL(fileURLWithPath: file))
        return file
    }
}

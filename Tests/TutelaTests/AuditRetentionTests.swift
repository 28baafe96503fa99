import Audit
import Foundation
import Governance
import Logging
import Testing
import TutelaCore
import TutelaTestSupport

@testable import Gateway

@Suite("Audit retention while serving")
struct AuditRetentionTests {
    /// A started instance (whose `tutela init` events are dated 2023) with `count` more events
    /// in its log, all of this moment; and the first of those.
    private func instance(events count: Int) async throws -> (TestEnvironment, Tutela, first: Int) {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        let tutela = try await environment.start()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var first: Int?
        for number in 0..<count {
            let sequence = try await tutela.audit.append(
                AuditEvent(time: now, requestID: "r\(number)", kind: "data.read", principal: "p", outcome: "ok")
            )
            first = first ?? sequence
        }
        return (environment, tutela, first ?? 0)
    }

    private func archiver(_ tutela: Tutela, directory: String, entriesPerFile: Int) -> AuditArchiver {
        AuditArchiver(
            tutela: tutela,
            retention: AuditRetention(keep: .seconds(86_400), directory: directory, entriesPerFile: entriesPerFile),
            logger: Logger(label: "test")
        )
    }

    private func listing(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }

    @Test("events past the period go to files of at most the set size, each verifying against the log")
    func archivesExpiredEvents() async throws {
        let (environment, tutela, first) = try await instance(events: 23)
        defer { environment.remove() }
        let directory = environment.root + "/archive"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let archiver = archiver(tutela, directory: directory, entriesPerFile: 10)

        // Today: the events of `tutela init` and nothing after them.
        let old = try await archiver.archiveExpired()
        #expect(old.count == 1 && old.first?.archive.from == 0 && old.first?.archive.to == first)
        #expect(try listing(directory).count == 1)
        #expect(try await tutela.audit.archivedEntries == first)
        // Again today: nothing is a day old any more, and no file is made.
        #expect(try await archiver.archiveExpired().isEmpty)
        #expect(try listing(directory).count == 1)

        // Two days on, everything up to the latest checkpoint is past the period.
        let later = Date().addingTimeInterval(2 * 86_400)
        let files = try await archiver.archiveExpired(now: later)
        #expect(files.count >= 3)
        #expect(files.first?.archive.from == first)
        for (earlier, next) in zip(files, files.dropFirst()) { #expect(earlier.archive.to == next.archive.from) }
        #expect(files.allSatisfy { $0.archive.entries <= 10 })
        #expect(files.dropLast().allSatisfy { $0.archive.entries == 10 })
        let stamp = AuditArchiver.stamp(milliseconds: Int64(later.timeIntervalSince1970 * 1000))
        #expect(
            try listing(directory).filter { $0.hasSuffix("-\(stamp).jsonl") }
                == files.map { "audit-\($0.archive.from)-\($0.archive.to - 1)-\(stamp).jsonl" }.sorted()
        )
        for file in files {
            let check = try await tutela.audit.checkArchive(at: file.path)
            #expect(check.isValid, "\(check.problems)")
            #expect(check.from == file.archive.from && check.to == file.archive.to)
        }
        let last = try #require(files.last)
        #expect(try await tutela.audit.archivedEntries == last.archive.to)
        // What /metrics reports: every entry this process archived, no failure.
        #expect(tutela.audit.archiveCounts == (entries: last.archive.to, failures: 0))
        let verified = try await tutela.audit.verify()
        #expect(verified.problems.isEmpty)
        // Each file was an audited archive; the last one's events are still in the log.
        var filter = AuditFilter()
        filter.kind = "audit.archive"
        let runs = try await tutela.audit.search(filter, limit: 100)
        #expect(runs.first?.outcome == "ok" && runs.first?.count == last.archive.entries)
    }

    @Test("a file already at an archive's name is left as it was, and so is the log")
    func neverWritesOver() async throws {
        let (environment, tutela, _) = try await instance(events: 5)
        defer { environment.remove() }
        let directory = environment.root + "/archive"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let later = Date().addingTimeInterval(2 * 86_400)
        let stamp = AuditArchiver.stamp(milliseconds: Int64(later.timeIntervalSince1970 * 1000))
        let taken = "\(directory)/audit-0-3-\(stamp).jsonl"
        try Data("kept\n".utf8).write(to: URL(fileURLWithPath: taken))

        let archiver = archiver(tutela, directory: directory, entriesPerFile: 4)
        await #expect(throws: TutelaError.self) { try await archiver.archiveExpired(now: later) }
        #expect(try String(contentsOfFile: taken, encoding: .utf8) == "kept\n")
        #expect(tutela.audit.archiveCounts == (entries: 0, failures: 1))
        #expect(try listing(directory) == ["audit-0-3-\(stamp).jsonl"])
        #expect(try await tutela.audit.archivedEntries == 0)
    }

    @Test("a directory that is gone fails the archive and leaves the log as it was")
    func missingDirectory() async throws {
        let (environment, tutela, _) = try await instance(events: 5)
        defer { environment.remove() }
        let archiver = archiver(tutela, directory: environment.root + "/gone", entriesPerFile: 100)
        await #expect(throws: TutelaError.self) {
            try await archiver.archiveExpired(now: Date().addingTimeInterval(2 * 86_400))
        }
        #expect(try await tutela.audit.archivedEntries == 0)
        #expect(!FileManager.default.fileExists(atPath: environment.root + "/gone"))
    }

    @Test("tutela serve with a retention period archives the expired events at start, and stops cleanly")
    func serveArchivesAtStart() async throws {
        let tutela = try ChildProcess.builtTutela()
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        // `tutela init` here dates its events in 2023: more than a day old.
        _ = try await environment.start()
        let configuration = environment.configuration
        let paths = environment.pathArguments
        let server = try SpawnedProcess(
            tutela,
            ["serve", "--port", "0", "--audit-retention-days", "1"] + paths,
            environment: configuration.environment
        )
        let directory = configuration.dataDirectory + "/audit-archive"
        var files: [String] = []
        for _ in 0..<100 where files.isEmpty {
            try await Task.sleep(for: .milliseconds(100))
            files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter {
                $0.hasSuffix(".jsonl")
            }
        }
        server.signal()
        #expect(await server.termination() == .exited(0))
        let file = try #require(files.first)
        #expect(files.count == 1 && file.hasPrefix("audit-0-"))

        let checked = try await ChildProcess.run(
            tutela,
            ["audit", "verify", "--archive", directory + "/" + file, "--json"] + paths,
            environment: configuration.environment
        )
        #expect(checked.status == 0, "\(checked.output)")
        let verified = try await ChildProcess.run(
            tutela,
            ["audit", "verify", "--json"] + paths,
            environment: configuration.environment
        )
        let report = try #require(try JSONSerialization.jsonObject(with: Data(verified.output.utf8)) as? [String: Any])
        #expect(verified.status == 0 && (report["archived_entries"] as? Int ?? 0) > 0)
    }

    @Test("the retention period and directory come from the file, the environment or flags, and are checked")
    func settings() throws {
        let file = try ServeSettings.parse(
            "audit_retention_days: 30\naudit_archive_dir: /srv/archive\n",
            file: "t.yaml"
        )
        #expect(
            try file.auditRetention(dataDirectory: "/data")
                == AuditRetention(keep: .seconds(30 * 86_400), directory: "/srv/archive")
        )
        let environment = try ServeSettings.environment(["TUTELA_AUDIT_RETENTION_DAYS": "7"])
        #expect(try environment.auditRetention(dataDirectory: "/data")?.directory == "/data/audit-archive")
        #expect(try ServeSettings().auditRetention(dataDirectory: "/data") == nil)
        var flags = ServeSettings()
        flags.auditRetentionDays = 2
        #expect(try file.overridden(by: flags).auditRetention(dataDirectory: "/data")?.keep == .seconds(2 * 86_400))

        var zero = ServeSettings()
        zero.auditRetentionDays = 0
        #expect(throws: TutelaError.self) { try zero.auditRetention(dataDirectory: "/data") }
        var directoryOnly = ServeSettings()
        directoryOnly.auditArchiveDirectory = "/srv/archive"
        #expect(throws: TutelaError.self) { try directoryOnly.auditRetention(dataDirectory: "/data") }
        #expect(throws: TutelaError.self) { try ServeSettings.environment(["TUTELA_AUDIT_RETENTION_DAYS": "soon"]) }
    }
}

import Foundation
import Governance
import Testing
import TutelaTestSupport

@Suite("tutela audit archive")
struct AuditArchiveCommandTests {
    @Test(
        "archives to a new file that verifies against the log; never writes over a file; nothing to archive makes none"
    )
    func archiveCommand() async throws {
        let tutela = try ChildProcess.builtTutela()
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        _ = try await environment.start()
        let configuration = environment.configuration
        func run(_ arguments: [String]) async throws -> ChildProcess {
            try await ChildProcess.run(
                tutela,
                arguments + environment.pathArguments,
                environment: configuration.environment
            )
        }
        func json(_ run: ChildProcess) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any])
        }
        let file = environment.root + "/archive-1.jsonl"

        let archived = try await run(["audit", "archive", "--before", "2100-01-01T00:00:00Z", "--out", file, "--json"])
        #expect(archived.status == 0, "\(archived.errors)")
        let entries = try #require(try json(archived)["entries"] as? Int)
        #expect(entries > 0)
        #expect(try json(archived)["released_bytes"] is Int)
        let written = try String(contentsOfFile: file, encoding: .utf8)
        #expect(written.split(separator: "\n").count == entries + 1)

        let checked = try await run(["audit", "verify", "--archive", file, "--json"])
        #expect(checked.status == 0, "\(checked.output)")
        #expect(try json(checked)["entries"] as? Int == entries)
        let verified = try await run(["audit", "verify", "--json"])
        #expect(verified.status == 0, "\(verified.output)")
        #expect(try json(verified)["archived_entries"] as? Int == entries)

        // The same file again: refused, the archive untouched.
        let again = try await run(["audit", "archive", "--before", "2100-01-01T00:00:00Z", "--out", file])
        #expect(again.status != 0)
        #expect(again.errors.contains("never written over"))
        #expect(try String(contentsOfFile: file, encoding: .utf8) == written)

        // A directory that does not exist: refused before the log is read, no event moved.
        let nowhere = try await run([
            "audit", "archive", "--before", "2100-01-01T00:00:00Z", "--out",
            environment.root + "/missing/archive.jsonl",
        ])
        #expect(nowhere.status == 1)
        #expect(nowhere.errors.contains("missing/archive.jsonl: no such directory"), "\(nowhere.errors)")
        #expect(!nowhere.errors.contains("hashing"), "\(nowhere.errors)")

        // Nothing older than 1970: no file made.
        let empty = environment.root + "/archive-2.jsonl"
        let nothing = try await run(["audit", "archive", "--before", "1970-01-02T00:00:00Z", "--out", empty])
        #expect(nothing.status == 0, "\(nothing.errors)")
        #expect(nothing.output.contains("Nothing to archive"))
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: environment.root).filter {
                $0.hasPrefix("archive-2.jsonl")
            }.isEmpty
        )

        // The archive released its pages: compact finds at most the odd page freed since, gives
        // it back, and says how large the file is.
        let compacted = try await run(["audit", "compact", "--json"])
        #expect(compacted.status == 0, "\(compacted.errors)")
        let after = try #require(try json(compacted)["after"] as? [String: Any])
        #expect(after["free_pages"] as? Int == 0)
        #expect(after["releases_free_pages"] as? Bool == true)
        let told = try await run(["audit", "compact"])
        #expect(told.status == 0 && told.output.hasPrefix("Gave back "), "\(told.output)")
        #expect(told.output.contains("; the log's file is "), "\(told.output)")
        // Each compaction is audited, started and ended.
        let events = try await run(["audit", "search", "--kind", "audit.compact"])
        #expect(events.output.split(separator: "\n").count == 4, "\(events.output)")
    }
}

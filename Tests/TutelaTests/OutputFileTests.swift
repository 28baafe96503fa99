import Foundation
import Governance
import Testing
import TutelaTestSupport

@Suite("Files the commands write")
struct OutputFileTests {
    @Test(
        "an export, a checkpoint or a sample never writes over a file without --overwrite, nor over Tutela's own files with it"
    )
    func neverWritesOver() async throws {
        let tutela = try ChildProcess.builtTutela()
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        _ = try await environment.startWithSample(customers: 5)
        let configuration = environment.configuration
        func run(_ arguments: [String]) async throws -> ChildProcess {
            // `data sample` writes only where it is told, and takes no directories.
            let paths = arguments.starts(with: ["data", "sample"]) ? [] : environment.pathArguments
            return try await ChildProcess.run(tutela, arguments + paths, environment: configuration.environment)
        }
        func contents(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

        // Tutela's own files: refused with or without --overwrite, and still what they were.
        let database = configuration.dataDirectory + "/tutela.sqlite"
        let keyring = configuration.keysDirectory + "/keyring.json"
        let keyringBytes = try contents(keyring)
        for extra in [[], ["--overwrite"]] {
            let overDatabase = try await run(["data", "export", "customers", "--out", database] + extra)
            #expect(overDatabase.status == 1)
            #expect(
                overDatabase.errors.contains(
                    extra.isEmpty ? "exists; add --overwrite" : "is in the data directory; Tutela's own files"
                ),
                "\(overDatabase.errors)"
            )
            let overKeyring = try await run(["audit", "export", "--out", keyring] + extra)
            #expect(overKeyring.status == 1)
            #expect(try contents(keyring) == keyringBytes)
            let overLog = try await run(
                ["audit", "checkpoint", "--out", configuration.dataDirectory + "/audit.sqlite"] + extra
            )
            #expect(overLog.status == 1)
        }
        let stillThere = try await run(["data", "get", "customers", "c000001"])
        #expect(stillThere.status == 0, "\(stillThere.errors)")
        #expect(try await run(["audit", "verify"]).status == 0)

        // A file of the user's: kept without --overwrite, replaced with it.
        let export = environment.root + "/customers.jsonl"
        #expect(try await run(["data", "export", "customers", "--out", export]).status == 0)
        let exported = try contents(export)
        #expect(!exported.isEmpty)
        try Data("an earlier export\n".utf8).write(to: URL(fileURLWithPath: export))
        let again = try await run(["data", "export", "customers", "--out", export])
        #expect(again.status == 1)
        #expect(again.errors.contains("customers.jsonl exists; add --overwrite to replace it"), "\(again.errors)")
        #expect(try contents(export) == Data("an earlier export\n".utf8))
        let replaced = try await run(["data", "export", "customers", "--out", export, "--overwrite"])
        #expect(replaced.status == 0, "\(replaced.errors)")
        #expect(try contents(export) == exported)

        let checkpoint = environment.root + "/checkpoint.txt"
        #expect(try await run(["audit", "checkpoint", "--out", checkpoint]).status == 0)
        #expect(try await run(["audit", "checkpoint", "--out", checkpoint]).status == 1)
        #expect(try await run(["audit", "checkpoint", "--out", checkpoint, "--overwrite"]).status == 0)
        let directory = try await run(["audit", "export", "--out", environment.root])
        #expect(directory.status == 1)
        #expect(directory.errors.contains("is a directory"), "\(directory.errors)")

        // A sample over one existing file writes none of its files.
        let sample = environment.root + "/sample"
        try FileManager.default.createDirectory(atPath: sample, withIntermediateDirectories: true)
        try Data("customer_id\n".utf8).write(to: URL(fileURLWithPath: sample + "/consents.csv"))
        let refusedSample = try await run(["data", "sample", "--customers", "3", "--out", sample])
        #expect(refusedSample.status == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: sample) == ["consents.csv"])
        let sampled = try await run(["data", "sample", "--customers", "3", "--out", sample, "--overwrite"])
        #expect(sampled.status == 0, "\(sampled.errors)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: sample).count == 4)
        #expect(try contents(sample + "/consents.csv") != Data("customer_id\n".utf8))
    }
}

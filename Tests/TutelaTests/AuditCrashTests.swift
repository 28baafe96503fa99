import Foundation
import Governance
import Synchronization
import Testing
import TutelaCore
import TutelaTestSupport

@testable import Audit

@Suite("Audit log under a killed process")
struct AuditCrashTests {
    @Test("a process killed while appending loses no acknowledged event and the log still verifies")
    func killWhileAppending() async throws {
        let binary = try ChildProcess.builtTutela()
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        _ = try await environment.start()

        let output = try SpawnedProcess.pipe()
        let reader = FileHandle(fileDescriptor: output.read, closeOnDealloc: true)
        let process = try {
            // The child holds the only writing end once it runs: the pipe ends when it does.
            defer { close(output.write) }
            return try SpawnedProcess(
                binary,
                ["audit", "stress", "--count", "1000000", "--writers", "8"] + environment.pathArguments,
                environment: environment.configuration.environment,
                standardOutput: output.write
            )
        }()

        // Read acknowledgements until a few hundred are in, then kill without warning.
        let acknowledged = try await Task.detached { () throws -> [Int] in
            var text = ""
            var numbers: [Int] = []
            while numbers.count < 300 {
                let data = reader.availableData
                if data.isEmpty { break }
                text += String(decoding: data, as: UTF8.self)
                let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
                text = String(lines.last ?? "")
                numbers += lines.dropLast().compactMap { Int($0) }
            }
            process.signal(SIGKILL)
            // Whatever was already written to the pipe was acknowledged too.
            let rest = String(decoding: reader.readDataToEndOfFile(), as: UTF8.self)
            numbers += (text + rest).split(separator: "\n").compactMap { Int($0) }
            return numbers
        }.value
        #expect(await process.termination() == .signalled(SIGKILL))
        #expect(acknowledged.count >= 300)

        let reopened = try await Tutela.open(environment.configuration)
        let verification = try await reopened.audit.verify()
        #expect(verification.isValid, "\(verification.problems)")
        for sequence in acknowledged {
            let event = try await reopened.audit.entry(sequence)
            #expect(event.kind == "audit.stress")
        }
        // The log goes on from where the killed process left it.
        let next = try await reopened.audit.append(
            AuditEvent(time: 0, requestID: "after", kind: "test", principal: "test", outcome: "ok")
        )
        #expect(next == verification.entries)
        #expect(try await reopened.audit.verify().isValid)
    }
}

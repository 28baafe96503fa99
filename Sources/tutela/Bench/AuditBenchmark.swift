import Audit
import Crypto
import Foundation

/// Durable appends per second, alone and with concurrent writers (group commit), and how fast
/// the whole log verifies.
struct AuditBenchmark {
    let directory: String

    func run(into report: BenchReport) async throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let log = try AuditLog(
            path: directory + "/audit.sqlite",
            logID: "bench",
            signingKey: Curve25519.Signing.PrivateKey()
        )
        func event(_ number: Int) -> AuditEvent {
            AuditEvent(
                time: Int64(number),
                requestID: String(number),
                kind: "data.read",
                principal: "bench",
                action: "read",
                resource: "customers",
                subjects: ["3f2a9c4e1d7b6a5f8e9d0c1b2a3f4e5d"],
                purpose: "support",
                decision: "allow",
                policies: ["support-reads-customers"],
                policySet: String(repeating: "ab", count: 32),
                outcome: "ok",
                count: 1
            )
        }
        let sequential = 1000
        let processorAlone = processCPUSeconds()
        let alone = try await measureAsync {
            for number in 0..<sequential { try await log.append(event(number)) }
        }
        report.record("audit", "append_sequential_per_s", Double(sequential) / alone)
        // Processor time of one append that is a batch of its own: what a commit costs.
        report.record(
            "audit",
            "append_sequential_cpu_ns",
            (processCPUSeconds() - processorAlone) * 1e9 / Double(sequential)
        )
        for writers in [32, 256] {
            let total = 20_000
            let processorBefore = processCPUSeconds()
            let seconds = try await measureAsync {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for writer in 0..<writers {
                        group.addTask {
                            for number in stride(from: writer, to: total, by: writers) {
                                try await log.append(event(number))
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            report.record("audit", "append_\(writers)_writers_per_s", Double(total) / seconds)
            // Processor time of the appending tasks and the writer thread together, per event.
            report.record(
                "audit",
                "append_\(writers)_writers_cpu_ns",
                (processCPUSeconds() - processorBefore) * 1e9 / Double(total)
            )
        }
        var entries = 0
        let verifySeconds = try await measureAsync {
            let result = try await log.verify()
            entries = result.entries
            guard result.isValid else { throw BenchError.unexpected("the benchmark log does not verify") }
        }
        report.record("audit", "entries", Double(entries))
        report.record("audit", "verify_entries_per_s", Double(entries) / verifySeconds)
        try await searchByTime(log, into: report)
    }

    /// Searches whose time bounds few or no entries meet, as `tutela audit search` runs them.
    ///
    /// The time index bounds what is read, so these cost next to nothing however long the log
    /// is. The appends above numbered their events' times from 0 three times over (to 1,000,
    /// then twice to 20,000), so the matching entries are spread over the log, as times out of
    /// step with it would be: time 0 is three entries apart by thousands.
    private func searchByTime(_ log: AuditLog, into report: BenchReport) async throws {
        var none = AuditFilter()
        none.since = 1_000_000
        var oldest = AuditFilter()
        oldest.until = 1
        for (name, filter, expected) in [("search_since_after_all_ms", none, 0), ("search_until_oldest_ms", oldest, 3)]
        {
            let repeats = 20
            var found = 0
            let seconds = try await measureAsync {
                for _ in 0..<repeats { found = try await log.search(filter, limit: 10).count }
            }
            guard found == expected else {
                throw BenchError.unexpected("a search by time found \(found) events, not \(expected)")
            }
            report.record("audit", name, seconds / Double(repeats) * 1000)
        }
    }
}

enum BenchError: Error {
    case unexpected(String)
}

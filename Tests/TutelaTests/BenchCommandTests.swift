import Foundation
import Testing
import TutelaTestSupport

@Suite("tutela bench")
struct BenchCommandTests {
    @Test(
        "a small run prints JSON grouped by area with every store and crypto figure, ratios positive, with their spread"
    )
    func smallRun() async throws {
        let tutela = try ChildProcess.builtTutela()
        let run = try await ChildProcess.run(
            tutela,
            [
                "bench", "--json", "--areas", "crypto,store", "--rows", "200", "--batch", "50", "--rounds", "3",
                "--policies-dir", TestEnvironment.policiesDirectory,
            ]
        )
        #expect(run.status == 0, "\(run.errors)")
        let json = try JSONSerialization.jsonObject(with: Data(run.output.utf8))
        let figures = try #require(json as? [String: [String: Double]])
        #expect(Set(figures.keys) == ["crypto", "store"])
        let store = try #require(figures["store"])
        #expect(store["rows"] == 200)
        for name in [
            "insert_plaintext_per_s", "insert_encrypted_per_s", "insert_ratio", "read_plaintext_per_s",
            "read_encrypted_per_s", "read_ratio", "lookup_plaintext_per_s", "lookup_blind_index_per_s",
            "lookup_ratio", "insert_step_seal_ns", "insert_step_write_ns", "read_step_fetch_ns",
            "import_jsonl_rows", "import_jsonl_per_s",
        ] {
            #expect((store[name] ?? 0) > 0, "store.\(name)")
        }
        // Each ratio is the median of three rounds, between the lowest and the highest round's.
        for name in ["insert_ratio", "read_ratio", "read_uncached_ratio", "lookup_ratio"] {
            let (low, median, high) = (store[name + "_min"] ?? 0, store[name] ?? 0, store[name + "_max"] ?? 0)
            #expect(low > 0 && low <= median && median <= high, "store.\(name): \(low) \(median) \(high)")
        }
        let crypto = try #require(figures["crypto"])
        for name in ["aes_gcm_4k_mb_per_s", "aes_siv_4k_mb_per_s", "field_seal_ns", "field_open_ns"] {
            #expect((crypto[name] ?? 0) > 0, "crypto.\(name)")
        }
    }

    @Test("the disk area syncs a scratch file for three seconds and reports its sync times, then removes it")
    func diskArea() async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tutela-disk-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var environment = ProcessInfo.processInfo.environment
        environment["TMPDIR"] = scratch
        let run = try await ChildProcess.run(
            try ChildProcess.builtTutela(),
            ["bench", "--json", "--areas", "disk"],
            environment: environment
        )
        #expect(run.status == 0, "\(run.errors)")
        let json = try JSONSerialization.jsonObject(with: Data(run.output.utf8))
        let disk = try #require((json as? [String: [String: Double]])?["disk"])
        // Paced at 500 a second: a slow disk makes fewer, never more.
        let syncs = try #require(disk["syncs"])
        #expect(syncs >= 1 && syncs <= 1_501)
        let p50 = try #require(disk["sync_p50_ms"])
        let p99 = try #require(disk["sync_p99_ms"])
        let slowest = try #require(disk["sync_max_ms"])
        #expect(p50 > 0 && p50 <= p99 && p99 <= slowest)
        #expect(try #require(disk["syncs_over_10ms"]) <= syncs)
        // Its scratch directory, probe file included, is gone.
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty)
    }

    @Test("an unknown area is refused with a clear error")
    func unknownArea() async throws {
        let run = try await ChildProcess.run(try ChildProcess.builtTutela(), ["bench", "--areas", "storage"])
        #expect(run.status != 0)
        #expect(run.errors.contains("unknown area"))
    }

    @Test("the policies directory comes from TUTELA_POLICIES_DIR as for every other command, the flag first")
    func policiesFromEnvironment() async throws {
        var environment = ProcessInfo.processInfo.environment
        environment["TUTELA_POLICIES_DIR"] = "/nonexistent/tutela-policies"
        let arguments = ["bench", "--areas", "store", "--rows", "100", "--rounds", "1"]
        let fromEnvironment = try await ChildProcess.run(
            try ChildProcess.builtTutela(),
            arguments,
            environment: environment
        )
        #expect(fromEnvironment.status == 1)
        #expect(
            fromEnvironment.errors.contains("/nonexistent/tutela-policies/schema.yaml"),
            "\(fromEnvironment.errors)"
        )
        let flagFirst = try await ChildProcess.run(
            try ChildProcess.builtTutela(),
            arguments + ["--policies-dir", "/nonexistent/flag-policies"],
            environment: environment
        )
        #expect(flagFirst.errors.contains("/nonexistent/flag-policies/schema.yaml"), "\(flagFirst.errors)")
    }

    @Test(
        "a number option out of range, or a search value no event holds, is refused as a usage error before anything runs"
    )
    func numbersOutOfRange() async throws {
        let tutela = try ChildProcess.builtTutela()
        for (arguments, message) in [
            (["bench", "--rows", "10"], "--rows must be from 100 to 1000000, not 10"),
            // Generated rows are held in memory: a count past what could be used to start the
            // generation and never end.
            (
                ["bench", "--rows", "9223372036854775807"],
                "--rows must be from 100 to 1000000, not 9223372036854775807"
            ),
            (["data", "sample", "--customers", "0"], "--customers must be from 1 to 1000000, not 0"),
            (
                ["data", "sample", "--customers", "9223372036854775807"],
                "--customers must be from 1 to 1000000, not 9223372036854775807"
            ),
            (["bench", "--rounds=0"], "--rounds must be at least 1, not 0"),
            (["bench", "--batch=-4", "--areas", "store"], "--batch must be at least 1, not -4"),
            (["audit", "search", "--limit=-1"], "--limit must be at least 1, not -1"),
            (["audit", "tail", "-n", "0"], "--number must be at least 1, not 0"),
            (["keys", "rewrap", "--batch-size", "0"], "--batch-size must be at least 1, not 0"),
            // A value no event holds would find nothing, as if nothing had happened.
            (["audit", "search", "--decision", "denied"], "--decision takes allow or deny"),
            (["audit", "search", "--action", "reed"], "--action takes one of read, write, export, lookup"),
            (["audit", "search", "--customer", ""], "--customer takes a customer id"),
            (
                ["audit", "search", "--since", "2027-01-01T00:00:00Z", "--until", "2026-01-01T00:00:00Z"],
                "--since 2027-01-01T00:00:00Z is not before --until 2026-01-01T00:00:00Z"
            ),
            (
                ["audit", "search", "--since", "2026-13-01T00:00:00Z"],
                "'2026-13-01T00:00:00Z' is not an RFC 3339 time or Unix seconds in the years 1 to 9999"
            ),
        ] {
            let run = try await ChildProcess.run(tutela, arguments)
            #expect(run.status == 64, "\(arguments)")
            #expect(run.errors.contains(message), "\(arguments): \(run.errors)")
        }
    }
}

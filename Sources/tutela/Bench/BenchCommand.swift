import ArgumentParser
import Foundation
import Governance
import TutelaCore

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run the benchmarks in a temporary directory and print a table (or --json).",
        discussion: """
            Each comparison runs ours and a baseline in the same process, on the same rows, and
            reports 'ratio' as our time divided by the baseline's. Build with -c release for
            figures worth quoting.
            """
    )

    @Flag(name: .long, help: "Print JSON grouped by area.") var json = false
    @Option(help: "Customer rows for the store benchmark.") var rows = 20_000
    @Option(help: "Records per write transaction.") var batch = 1000
    @Option(help: "Rounds of each store and gateway comparison; medians are reported.") var rounds = 3
    @Option(
        help:
            "Comma-separated areas to run: crypto, store, policy, pii, audit, disk, gateway (default: all but gateway)."
    )
    var areas = "crypto,store,policy,pii,audit,disk"
    @Option(help: "Seconds per load run of the gateway benchmark.") var loadSeconds = 5
    @Option(
        name: .customLong("policies-dir"),
        help: "The policies directory with schema.yaml (env TUTELA_POLICIES_DIR, default ./Policies)."
    )
    var policiesOption: String?

    /// The policies directory, found as every other command finds it.
    var policiesDirectory: String {
        policiesOption ?? ProcessInfo.processInfo.environment["TUTELA_POLICIES_DIR"]
            ?? TutelaConfiguration.defaultPoliciesDirectory
    }

    func validate() throws {
        try requireWithin(100...1_000_000, rows, "--rows")
        try requireAtLeast(1, batch, "--batch")
        try requireAtLeast(1, rounds, "--rounds")
        try requireAtLeast(1, loadSeconds, "--load-seconds")
    }

    func run() async throws {
        try await Console.run(json: json) {
            let report = BenchReport()
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
                "tutela-bench-\(UUID().uuidString)"
            ).path
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let selected = Set(areas.split(separator: ",").map { String($0.trimmingWhitespace) })
            let known: Set = ["crypto", "store", "policy", "pii", "audit", "disk", "gateway"]
            guard selected.isSubset(of: known), !selected.isEmpty else {
                throw TutelaError(
                    .invalidInput,
                    "unknown area in --areas (known: crypto, store, policy, pii, audit, disk, gateway)"
                )
            }
            if selected.contains("crypto") {
                Console.printError("crypto …")
                try CryptoBenchmark.run(into: report)
            }
            if selected.contains("store") {
                Console.printError("store (\(rows) rows) …")
                let benchmark = StoreBenchmark(
                    rows: rows,
                    batch: batch,
                    rounds: rounds,
                    directory: scratch,
                    policies: policiesDirectory
                )
                try await benchmark.run(into: report)
            }
            if selected.contains("policy") {
                Console.printError("policy (1,000 rules, 100 roles) …")
                try PolicyBenchmark(directory: scratch + "/policy", policies: policiesDirectory).run(into: report)
            }
            if selected.contains("pii") {
                Console.printError("pii detection …")
                PIIBenchmark.run(into: report)
            }
            if selected.contains("audit") {
                Console.printError("audit log …")
                try await AuditBenchmark(directory: scratch + "/audit").run(into: report)
            }
            if selected.contains("disk") {
                Console.printError("disk syncs (\(Int(DiskSyncProbe.standardSeconds)) s) …")
                try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
                let probe = try await DiskSyncProbe.run(in: scratch)
                probe.record(into: report, area: "disk", prefix: "")
            }
            if selected.contains("gateway") {
                Console.printError("gateway under wrk …")
                let benchmark = GatewayBenchmark(
                    directory: scratch + "/gateway",
                    policies: policiesDirectory,
                    seconds: loadSeconds,
                    rounds: rounds
                )
                try await benchmark.run(into: report)
            }
            if json {
                print(report.json())
            } else {
                print(report.table())
            }
        }
    }
}

/// Figures grouped by area, in insertion order.
final class BenchReport: @unchecked Sendable {
    // Filled by one benchmark at a time from the command's task.
    private(set) var areas: [(name: String, figures: [(key: String, value: Double)])] = []

    func record(_ area: String, _ key: String, _ value: Double) {
        if let index = areas.firstIndex(where: { $0.name == area }) {
            areas[index].figures.append((key, value))
        } else {
            areas.append((area, [(key, value)]))
        }
    }

    func json() -> String {
        var text = "{\n"
        for (areaIndex, area) in areas.enumerated() {
            text += "  \"\(area.name)\": {\n"
            for (index, figure) in area.figures.enumerated() {
                text +=
                    "    \"\(figure.key)\": \(Self.format(figure.value))"
                    + (index < area.figures.count - 1 ? ",\n" : "\n")
            }
            text += "  }" + (areaIndex < areas.count - 1 ? ",\n" : "\n")
        }
        return text + "}"
    }

    func table() -> String {
        // Columns as wide as their longest entry: `padding(toLength:)` cuts a longer one short.
        let areaWidth = areas.map(\.name.count).reduce(4, max) + 2
        let keyWidth = areas.flatMap { $0.figures.map(\.key.count) }.reduce(6, max) + 2
        func row(_ area: String, _ key: String, _ value: String) -> String {
            area.padding(toLength: areaWidth, withPad: " ", startingAt: 0)
                + key.padding(toLength: keyWidth, withPad: " ", startingAt: 0) + value
        }
        var lines = [row("AREA", "FIGURE", "VALUE")]
        for area in areas {
            for figure in area.figures { lines.append(row(area.name, figure.key, Self.format(figure.value))) }
        }
        return lines.joined(separator: "\n")
    }

    private static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(format: value < 10 ? "%.3f" : "%.1f", value)
    }
}

/// Measures a closure's wall time in seconds.
func measure(_ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    let start = clock.now
    try body()
    return seconds(clock.now - start)
}

/// Measures an async closure's wall time in seconds.
func measureAsync(_ body: () async throws -> Void) async rethrows -> Double {
    let clock = ContinuousClock()
    let start = clock.now
    try await body()
    return seconds(clock.now - start)
}

/// Processor time used by the whole process so far, in seconds, on all its threads.
func processCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

private func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

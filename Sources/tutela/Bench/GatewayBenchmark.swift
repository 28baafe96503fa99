import Audit
import Crypto
import Foundation
import Gateway
import Governance
import Hummingbird
import KeyManagement
import Logging
import Store
import TutelaCore

/// The running server under `wrk`: a governed customer fetch (authenticate, decide, decrypt,
/// mask, audit) next to the unauthenticated `/healthz` route, in the same run, each at the
/// connection count where it peaks; then the governed route again with fewer connections, at
/// about half of its peak, for its p99 there: `wrk`'s, corrected for coordinated omission, and
/// the server's own from its request-duration histogram.
///
/// The two peak loads run back to back in `rounds` rounds; the round with the median ratio is
/// reported.
struct GatewayBenchmark {
    let directory: String
    let policies: String
    let seconds: Int
    let rounds: Int

    struct Load {
        var requestsPerSecond: Double
        var p50Milliseconds: Double
        var p99Milliseconds: Double
        /// The server's processor time per request (this process's, over all its threads;
        /// `wrk` runs in its own): steadier than throughput on a machine whose speed drifts,
        /// and blind to how much of the machine `wrk` takes.
        var serverCPUMicrosecondsPerRequest = 0.0
    }

    func run(into report: BenchReport) async throws {
        guard let wrk = Self.which("wrk") else {
            throw TutelaError(.notFound, "the gateway benchmark needs wrk on PATH (Scripts/bench.sh installs it)")
        }
        let key = "tutela-mk1:" + SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() }
        var configuration = TutelaConfiguration(
            dataDirectory: directory + "/data",
            keysDirectory: directory + "/keys",
            policiesDirectory: policies,
            environment: ["TUTELA_MASTER_KEY": key]
        )
        // As `tutela serve` opens it.
        configuration.cachedDataKeys = EnvelopeCipher.defaultCachedDataKeys
        _ = try await Tutela.initialize(configuration, now: 0)
        let tutela = try await Tutela.open(configuration)
        let sample = SampleDataset.generate(customers: 1000, interactionsPerCustomer: 0)
        _ = try await tutela.importRecords(into: "customers", data: Data(sample.customersCSV.utf8), format: .csv)
        _ = try await tutela.createPrincipal(name: "bench-agent", roles: ["support_agent"], attributes: [:])
        let token = try await tutela.createAPIKey(principal: "bench-agent", expiresAt: nil).token

        try await steps(tutela: tutela, token: token, into: report)

        let port = 18_000 + Int.random(in: 0..<2000)
        let app = try buildApplication(
            tutela: tutela,
            configuration: GatewayConfiguration(
                port: port,
                requestsPerSecond: 1e9,
                burst: 1e9,
                maxConcurrentRequests: 4096
            ),
            logger: Self.serverLogger
        )
        let server = Task { try await app.run() }
        defer { server.cancel() }
        try await Task.sleep(for: .milliseconds(500))

        let base = "http://127.0.0.1:\(port)"
        let governedArguments = [
            "-H", "Authorization: Bearer \(token)", "-H", "Tutela-Purpose: support", "\(base)/v1/customers/c000001",
        ]
        let staticArguments = ["\(base)/healthz"]
        let (staticConnections, governedConnections) = try await Self.peakConnections(
            wrk,
            staticArguments: staticArguments,
            governedArguments: governedArguments
        )
        // Static and governed load back to back in each round, each at its peak's connection
        // count; the round with the median ratio is reported whole, so that its figures agree
        // with each other.
        var measured: [(staticLoad: Load, governedLoad: Load)] = []
        let writtenBefore = tutela.audit.writeCounts
        for _ in 0..<rounds {
            let staticLoad = try await Self.wrk(
                wrk,
                connections: staticConnections,
                seconds: seconds,
                arguments: staticArguments
            )
            let governedLoad = try await Self.wrk(
                wrk,
                connections: governedConnections,
                seconds: seconds,
                arguments: governedArguments
            )
            measured.append((staticLoad, governedLoad))
        }
        func throughputRatio(_ round: (staticLoad: Load, governedLoad: Load)) -> Double {
            round.governedLoad.requestsPerSecond / max(1, round.staticLoad.requestsPerSecond)
        }
        measured.sort { throughputRatio($0) < throughputRatio($1) }
        let (staticLoad, governedLoad) = measured[measured.count / 2]
        let writtenAfter = tutela.audit.writeCounts
        // Audit events per commit under the governed peak load: the audit log's group commit.
        let batches = writtenAfter.batches - writtenBefore.batches
        let events = writtenAfter.events - writtenBefore.events
        report.record("gateway", "rounds", Double(rounds))
        report.record("gateway", "static_connections", Double(staticConnections))
        report.record("gateway", "governed_connections", Double(governedConnections))
        report.record("gateway", "static_per_s", staticLoad.requestsPerSecond)
        report.record("gateway", "static_p50_ms", staticLoad.p50Milliseconds)
        report.record("gateway", "static_p99_ms", staticLoad.p99Milliseconds)
        report.record("gateway", "governed_fetch_per_s", governedLoad.requestsPerSecond)
        report.record("gateway", "governed_fetch_p50_ms", governedLoad.p50Milliseconds)
        report.record("gateway", "governed_fetch_p99_ms", governedLoad.p99Milliseconds)
        report.record("gateway", "governed_audit_events_per_batch", Double(events) / Double(max(1, batches)))
        report.record("gateway", "static_server_cpu_us_per_request", staticLoad.serverCPUMicrosecondsPerRequest)
        report.record("gateway", "governed_server_cpu_us_per_request", governedLoad.serverCPUMicrosecondsPerRequest)
        // Processor time per request, governed / static: what the throughput ratio would be the
        // inverse of if the server had the machine to itself.
        report.record(
            "gateway",
            "governed_vs_static_cpu_ratio",
            governedLoad.serverCPUMicrosecondsPerRequest / max(1e-9, staticLoad.serverCPUMicrosecondsPerRequest)
        )
        report.record(
            "gateway",
            "governed_vs_static_throughput",
            governedLoad.requestsPerSecond / max(1, staticLoad.requestsPerSecond)
        )
        // The lowest and highest round's: how far the machine's drift moved one from another.
        report.record("gateway", "governed_vs_static_throughput_min", throughputRatio(measured[0]))
        report.record("gateway", "governed_vs_static_throughput_max", throughputRatio(measured[measured.count - 1]))
        typealias HalfLoad = (
            load: Load, commits: AuditCommitTimes, server: ServerDurations, checkpoints: (background: Int, inline: Int)
        )
        func halfLoad(connections: Int) async throws -> HalfLoad {
            let commitsBefore = tutela.audit.commitTimes
            let checkpointsBefore = tutela.audit.walCheckpoints
            let serverBefore = try ServerDurations.scrape(port: port, route: "/v1/customers/{id}")
            let load = try await Self.wrk(wrk, connections: connections, seconds: seconds, arguments: governedArguments)
            let commits = tutela.audit.commitTimes.since(commitsBefore)
            let server = try ServerDurations.scrape(port: port, route: "/v1/customers/{id}").since(serverBefore)
            let checkpoints = tutela.audit.walCheckpoints
            return (
                load, commits, server,
                (checkpoints.background - checkpointsBefore.background, checkpoints.inline - checkpointsBefore.inline)
            )
        }
        // The connection count whose run comes nearest half the peak, then `rounds` runs in
        // all at that count; the run with the median p99 is reported whole, the lowest and
        // highest p99 beside it. One stall of the disk (a sync of tens of milliseconds, which
        // `wrk` weighs as many slow requests) then moves one run's p99, not the figure, and
        // stalls in most runs still do.
        var probes: [(connections: Int, run: HalfLoad)] = []
        for connections in [1, 2, 4, 8] { probes.append((connections, try await halfLoad(connections: connections))) }
        let target = governedLoad.requestsPerSecond / 2
        let nearest = probes.min {
            abs($0.run.load.requestsPerSecond - target) < abs($1.run.load.requestsPerSecond - target)
        }
        guard let nearest else { throw TutelaError(.invalidState, "no half-load run") }
        var halfRuns = [nearest.run]
        for _ in 1..<max(1, rounds) { halfRuns.append(try await halfLoad(connections: nearest.connections)) }
        halfRuns.sort { $0.load.p99Milliseconds < $1.load.p99Milliseconds }
        let half = halfRuns[halfRuns.count / 2]
        report.record("gateway", "governed_half_load_connections", Double(nearest.connections))
        report.record("gateway", "governed_half_load_per_s", half.load.requestsPerSecond)
        report.record("gateway", "governed_half_load_p99_ms", half.load.p99Milliseconds)
        report.record("gateway", "governed_half_load_p99_ms_min", halfRuns[0].load.p99Milliseconds)
        report.record("gateway", "governed_half_load_p99_ms_max", halfRuns[halfRuns.count - 1].load.p99Milliseconds)
        // `wrk` corrects its latencies for the requests a client sending at a steady rate would
        // have sent while one was held up, so a 100 ms stall weighs as a hundred slow requests;
        // the server's own histogram of the same run counts each request once.
        report.record("gateway", "governed_half_load_server_requests", Double(half.server.count))
        report.record("gateway", "governed_half_load_server_over_10ms", Double(half.server.count(over: 0.01) ?? 0))
        if let bound = half.server.bound(ofShare: 0.99) {
            report.record("gateway", "governed_half_load_server_p99_at_most_ms", bound * 1000)
        }
        // Every governed request waits for its audit commit and its disk sync: at half load, the
        // commits slower than 10 ms and the disk probe after them show how much of the p99 is the disk's.
        report.record("gateway", "governed_half_load_audit_commits", Double(half.commits.count))
        // Checkpoints of the audit log's WAL in that run: by its thread, and inside a commit.
        report.record("gateway", "governed_half_load_wal_checkpoints_background", Double(half.checkpoints.background))
        report.record("gateway", "governed_half_load_wal_checkpoints_in_commits", Double(half.checkpoints.inline))
        report.record(
            "gateway",
            "governed_half_load_audit_commits_over_10ms",
            Double(half.commits.count(slowerThan: 0.01) ?? 0)
        )
        try await DiskSyncProbe.run(in: directory + "/data").record(into: report, area: "gateway", prefix: "disk_")
    }

    /// The steps of a governed fetch in process, one at a time, so that the load figures can be
    /// read against what each step costs on its own.
    private func steps(tutela: Tutela, token: String, into report: BenchReport) async throws {
        let rounds = 2000
        let caller = Caller(principal: "bench-agent", purpose: "support", requestID: "bench")
        let definition = try tutela.schema.collection("customers")
        var authenticate = Duration.zero
        var fetch = Duration.zero
        var encode = Duration.zero
        var read = Duration.zero
        for round in 0..<rounds {
            let id = String(format: "c%06d", 1 + round % 1000)
            let clock = ContinuousClock()
            let started = clock.now
            _ = try await tutela.authenticate(token: token, requestID: "bench")
            let authenticated = clock.now
            let record = try await tutela.governedRecord(caller, collection: "customers", id: id)
            let fetched = clock.now
            _ = RecordJSON.encode(record, definition: definition)
            let encoded = clock.now
            _ = try await tutela.store.get(collection: "customers", id: id)
            read += clock.now - encoded
            authenticate += authenticated - started
            fetch += fetched - authenticated
            encode += encoded - fetched
        }
        func nanoseconds(_ total: Duration) -> Double {
            (Double(total.components.seconds) * 1e9 + Double(total.components.attoseconds) / 1e9) / Double(rounds)
        }
        report.record("gateway", "step_authenticate_ns", nanoseconds(authenticate))
        report.record("gateway", "step_governed_fetch_ns", nanoseconds(fetch))
        report.record("gateway", "step_encode_json_ns", nanoseconds(encode))
        report.record("gateway", "step_read_decrypt_ns", nanoseconds(read))
    }

    /// The connection counts tried for each route's peak.
    static let connectionLevels = [16, 32, 64, 128, 256]

    /// The connection count at which each route answers the most requests per second, from
    /// short runs at each of `connectionLevels`, the two routes taking turns.
    ///
    /// The routes peak at different counts: the static route is bound by processor time from
    /// a few connections on, while a governed request also waits for its audit event's commit,
    /// so it needs more requests in flight to fill the commits and keep the processors busy.
    /// Past its peak a route loses throughput to queueing, so the search keeps the best count
    /// rather than the largest. The levels are run twice, up then down, and each count's two
    /// rates added: one pass alone let a burst of the machine's drift pick a count well off the
    /// peak.
    static func peakConnections(
        _ wrk: String,
        staticArguments: [String],
        governedArguments: [String]
    ) async throws -> (staticConnections: Int, governedConnections: Int) {
        var staticRates = [Int: Double]()
        var governedRates = [Int: Double]()
        for connections in connectionLevels + connectionLevels.reversed() {
            let staticLoad = try await Self.wrk(wrk, connections: connections, seconds: 2, arguments: staticArguments)
            staticRates[connections, default: 0] += staticLoad.requestsPerSecond
            let governedLoad = try await Self.wrk(
                wrk,
                connections: connections,
                seconds: 2,
                arguments: governedArguments
            )
            governedRates[connections, default: 0] += governedLoad.requestsPerSecond
        }
        func best(_ rates: [Int: Double]) -> Int {
            connectionLevels.max { rates[$0, default: 0] < rates[$1, default: 0] } ?? connectionLevels[0]
        }
        return (best(staticRates), best(governedRates))
    }

    /// One `wrk` run against the server in this process.
    ///
    /// `wrk` is waited for on a thread of its own: blocked on a thread of Swift's cooperative
    /// pool, which has one thread per core, it would take half of the server's request
    /// threads away on two cores, and the governed route, which does most of its work there,
    /// far more than the static one.
    static func wrk(_ path: String, connections: Int, seconds: Int, arguments: [String]) async throws -> Load {
        let cpuBefore = processCPUSeconds()
        let text = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, any Error>) in
            let thread = Thread {
                continuation.resume(
                    with: Result {
                        try runWrk(path, connections: connections, seconds: seconds, arguments: arguments)
                    }
                )
            }
            thread.name = "tutela.bench.wrk"
            thread.start()
        }
        let cpu = processCPUSeconds() - cpuBefore
        var load = Load(requestsPerSecond: 0, p50Milliseconds: 0, p99Milliseconds: 0)
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count > 2, parts[1] == "requests", parts[2] == "in", let count = Double(parts[0]), count > 0 {
                load.serverCPUMicrosecondsPerRequest = cpu / count * 1e6
            }
            if parts.first == "Requests/sec:", parts.count == 2 { load.requestsPerSecond = Double(parts[1]) ?? 0 }
            if parts.count == 2, parts[0] == "50%" { load.p50Milliseconds = milliseconds(parts[1]) }
            if parts.count == 2, parts[0] == "99%" { load.p99Milliseconds = milliseconds(parts[1]) }
        }
        guard load.requestsPerSecond > 0 else { throw TutelaError(.io, "wrk produced no figures") }
        return load
    }

    /// Runs `wrk` to its end and returns what it printed; blocks the calling thread.
    private static func runWrk(_ path: String, connections: Int, seconds: Int, arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments =
            ["-t", String(min(2, connections)), "-c", String(connections), "-d", "\(seconds)s", "--latency"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return text
    }

    /// The in-process server's logger, critical messages only.
    ///
    /// Its start line and the error it logs when the benchmark cancels it at the end would land
    /// in the middle of the figures; a server that does not answer shows as a `wrk` run without
    /// figures.
    private static var serverLogger: Logger {
        var logger = Logger(label: "tutela.bench.gateway")
        logger.logLevel = .critical
        return logger
    }

    static func milliseconds(_ text: Substring) -> Double {
        for (suffix, factor) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0)] where text.hasSuffix(suffix) {
            return (Double(text.dropLast(suffix.count)) ?? 0) * factor
        }
        return 0
    }

    static func which(_ name: String) -> String? {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return paths.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

/// A route's request-duration histogram as the server's `/metrics` shows it: counts at or below
/// each bucket bound (seconds), and the total.
struct ServerDurations {
    var cumulative: [(bound: Double, count: Int)] = []
    var count = 0

    /// The histogram of `route` from the server listening on `port` of this machine.
    static func scrape(port: Int, route: String) throws -> ServerDurations {
        let prefix = "tutela_http_request_duration_seconds_bucket{route=\"\(route)\",le=\""
        let total = "tutela_http_request_duration_seconds_count{route=\"\(route)\"} "
        var durations = ServerDurations()
        for line in try LocalHTTP.get(port: port, path: "/metrics").split(separator: "\n") {
            if line.hasPrefix(total) {
                durations.count = Int(line.dropFirst(total.count)) ?? 0
            } else if line.hasPrefix(prefix), let close = line.lastIndex(of: "}") {
                let bound = line[line.index(line.startIndex, offsetBy: prefix.count)..<close].dropLast()
                guard let seconds = Double(bound), let count = Int(line[close...].dropFirst(2)) else { continue }
                durations.cumulative.append((seconds, count))
            }
        }
        return durations
    }

    /// The requests counted since `earlier`.
    func since(_ earlier: ServerDurations) -> ServerDurations {
        var difference = ServerDurations(count: count - earlier.count)
        for (bound, count) in cumulative {
            let before = earlier.cumulative.first { $0.bound == bound }?.count ?? 0
            difference.cumulative.append((bound, count - before))
        }
        return difference
    }

    /// Requests slower than `seconds`, a bucket bound; nil for another value.
    func count(over seconds: Double) -> Int? {
        cumulative.first { $0.bound == seconds }.map { count - $0.count }
    }

    /// The least bucket bound at or below which `share` of the requests fall.
    func bound(ofShare share: Double) -> Double? {
        guard count > 0 else { return nil }
        return cumulative.first { Double($0.count) >= share * Double(count) }?.bound
    }
}

/// A plain HTTP/1.1 GET to this machine, for the benchmark's look at a running server.
enum LocalHTTP {
    /// The body of `path` from 127.0.0.1:`port`.
    static func get(port: Int, path: String) throws -> String {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw TutelaError(.io, "no socket for the benchmark's request") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw TutelaError(.io, "the benchmark's server on port \(port) does not answer") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let written = request[sent...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, 0) }
            guard written > 0 else { throw TutelaError(.io, "the benchmark's request was not sent") }
            sent += written
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let received = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard received > 0 else { break }
            response += buffer[..<received]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200"), let body = text.range(of: "\r\n\r\n") else {
            throw TutelaError(.io, "the benchmark's server did not answer \(path) with 200")
        }
        return String(text[body.upperBound...])
    }
}

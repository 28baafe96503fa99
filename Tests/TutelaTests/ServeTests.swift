import Audit
import Foundation
import GRDB
import Glibc
import Governance
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeyManagement
import Logging
import Store
import Synchronization
import Testing
import TutelaCore
import TutelaTestSupport

@testable import Gateway

/// Log lines kept in memory, for checking what the gateway writes.
final class CollectedLog: Sendable {
    private let stored = Mutex<[String]>([])

    var lines: [String] { stored.withLock { $0 } }

    func logger() -> Logger {
        Logger(label: "tutela.gateway.test") { label in CollectingHandler(label: label, log: self) }
    }

    func add(_ line: String) { stored.withLock { $0.append(line) } }

    struct CollectingHandler: LogHandler {
        let label: String
        let log: CollectedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let fields = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            log.add(([event.message.description] + fields).joined(separator: " "))
        }
    }
}

@Suite("tutela serve: settings, logs, reloads, TLS")
struct ServeTests {
    @Test("a configuration file is layered under the environment and flags, and validated")
    func settingsLayers() throws {
        let file = try ServeSettings.parse(
            """
            port: 9000
            rate_limit: 25
            burst: 50
            log_format: text
            tls_certificate: /etc/tutela/cert.pem
            tls_key: /etc/tutela/key.pem
            idle_timeout_seconds: 15
            refusals_per_second: 7
            """,
            file: "serve.yaml"
        )
        let environment = try ServeSettings.environment(["TUTELA_PORT": "9100", "TUTELA_RATE_LIMIT": "30"])
        var flags = ServeSettings()
        flags.port = 9200
        let resolved = try file.overridden(by: environment).overridden(by: flags).gatewayConfiguration()
        #expect(resolved.port == 9200)
        #expect(resolved.requestsPerSecond == 30)
        #expect(resolved.burst == 50)
        #expect(resolved.tls?.privateKeyPath == "/etc/tutela/key.pem")
        #expect(resolved.host == "127.0.0.1")
        #expect(resolved.idleTimeout == .seconds(15))
        #expect(resolved.refusalsPerSecond == 7)
        let fromEnvironment = try ServeSettings.environment(["TUTELA_IDLE_TIMEOUT": "5"])
        #expect(try file.overridden(by: fromEnvironment).gatewayConfiguration().idleTimeout == .seconds(5))
        #expect(try ServeSettings().gatewayConfiguration().idleTimeout == .seconds(60))
    }

    @Test(
        "a bad configuration is refused with the file, line and key",
        arguments: [
            ("port: 8080\nrate_limt: 5\n", "serve.yaml:2", "unknown key 'rate_limt'"),
            ("port: eighty\n", "serve.yaml:1", "port must be an integer"),
            ("log_format: xml\n", "serve.yaml:1", "log_format must be json or text"),
            ("burst: [1, 2]\n", "serve.yaml:1", "burst must be a single value"),
        ]
    )
    func badFile(text: String, location: String, message: String) {
        #expect {
            _ = try ServeSettings.parse(text, file: "serve.yaml")
        } throws: { error in
            let error = error as? TutelaError
            return error?.message.contains(location) == true && error?.message.contains(message) == true
        }
    }

    @Test("values out of range, half a TLS pair and unparsable environment values are refused")
    func badValues() throws {
        var settings = ServeSettings()
        settings.tlsCertificate = "/etc/tutela/cert.pem"
        #expect(throws: TutelaError.self) { _ = try settings.gatewayConfiguration() }
        settings = ServeSettings()
        settings.port = 70_000
        #expect(throws: TutelaError.self) { _ = try settings.gatewayConfiguration() }
        settings = ServeSettings()
        settings.rateLimit = 0
        #expect(throws: TutelaError.self) { _ = try settings.gatewayConfiguration() }
        // An infinite rate stopped the server at a key's second request in the same instant.
        for (rate, burst) in [(Double.infinity, 200.0), (100, .infinity), (.nan, 200)] {
            settings = ServeSettings()
            settings.rateLimit = rate
            settings.burst = burst
            #expect(throws: TutelaError.self) { _ = try settings.gatewayConfiguration() }
        }
        settings = ServeSettings()
        settings.idleTimeoutSeconds = 0
        #expect(throws: TutelaError.self) { _ = try settings.gatewayConfiguration() }
        settings = ServeSettings()
        settings.refusalsPerSecond = 0
        #expect(throws: TutelaError.self) { _ = try settings.gatewayConfiguration() }
        // A body is held in memory while it is read: no limit beyond 256 MiB.
        settings = ServeSettings()
        settings.maxBodyBytes = GatewayConfiguration.largestBodyLimit
        #expect(try settings.gatewayConfiguration().maxBodyBytes == 256 << 20)
        settings.maxBodyBytes = GatewayConfiguration.largestBodyLimit + 1
        #expect(throws: TutelaError.self) { _ = try settings.gatewayConfiguration() }
        #expect(throws: TutelaError.self) { _ = try ServeSettings.environment(["TUTELA_PORT": "http"]) }
    }

    @Test("request log lines name the route template and status, never a customer id or a looked-up value")
    func requestLogs() async throws {
        let log = CollectedLog()
        let (fixture, app) = try await GatewayFixture.make(
            configuration: GatewayConfiguration(logRequests: true),
            logger: log.logger()
        )
        defer { fixture.environment.remove() }
        let email = try #require(
            try await fixture.tutela.store.get(collection: "customers", id: "c000002").fields["email"]?.displayText
        )
        try await app.test(.router) { client in
            let headers = GatewayFixture.headers(fixture.keys["agent"])
            try await client.execute(uri: "/v1/customers/c000002", method: .get, headers: headers) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/v1/customers?email=\(email)", method: .get, headers: headers) { response in
                #expect(response.status == .ok)
            }
        }
        let requests = log.lines.filter { $0.hasPrefix("request ") }
        #expect(requests.count == 2)
        #expect(requests.contains { $0.contains("route=/v1/customers/{id}") && $0.contains("status=200") })
        #expect(requests.contains { $0.contains("route=/v1/customers ") && $0.contains("request_id=") })
        for line in log.lines {
            #expect(!line.contains("c000002"))
            #expect(!line.contains(email))
        }
    }

    @Test(
        "a record damaged in the database gets 500 with its code and an audit event, cuts an export off, and is logged by code"
    )
    func damagedRecord() async throws {
        let log = CollectedLog()
        let (fixture, app) = try await GatewayFixture.make(logger: log.logger())
        defer { fixture.environment.remove() }
        _ = try await fixture.tutela.createPrincipal(name: "dora", roles: ["data_protection_officer"], attributes: [:])
        let exporter = try await fixture.tutela.createAPIKey(principal: "dora", expiresAt: nil).token
        // The first byte of the stored payload names its format: one no version wrote.
        let backend = fixture.tutela.store.backend
        var (stored, _) = try #require(try await backend.record(collection: "customers", id: "c000003"))
        stored.payload[0] = 0x7F
        var batch = WriteBatch()
        batch.records = [stored]
        try await backend.apply(batch)
        try await app.test(.router) { client in
            let headers = GatewayFixture.headers(fixture.keys["agent"])
            try await client.execute(uri: "/v1/customers/c000003", method: .get, headers: headers) { response in
                // The stored data is at fault, not the request: not a 400.
                #expect(response.status == .internalServerError)
                let body = String(buffer: response.body)
                #expect(body.contains("\"code\":\"ciphertext_tampered\""))
                #expect(!body.contains("c000003"))
                let requestID = try #require(response.headers[HTTPField.Name("X-Request-Id")!])
                let failures = log.lines.filter { $0.hasPrefix("a request failed on the server's side") }
                #expect(failures.count == 1)
                #expect(failures.first?.contains("code=ciphertext_tampered") == true)
                #expect(failures.first?.contains("request_id=\(requestID)") == true)
                #expect(failures.first?.contains("route=/v1/customers/{id}") == true)
                var filter = AuditFilter()
                filter.principal = "agent"
                let event = try await fixture.tutela.audit.search(filter, limit: 10).first { $0.requestID == requestID }
                #expect(event?.outcome == "error:ciphertext_tampered")
            }
            // Other records are served as before.
            try await client.execute(uri: "/v1/customers/c000002", method: .get, headers: headers) { response in
                #expect(response.status == .ok)
            }
            // An export meets the record after its status line went out: the response is cut off
            // (the client sees no last chunk), and the log says so by code.
            let officer = GatewayFixture.headers(exporter, purpose: "compliance")
            _ = try? await client.execute(uri: "/v1/collections/customers/export", method: .get, headers: officer) {
                response in #expect(response.status == .ok)
            }
        }
        let cut = log.lines.filter { $0.hasPrefix("an export failed after its response began") }
        #expect(cut.count == 1)
        #expect(cut.first?.contains("code=ciphertext_tampered") == true)
        for line in log.lines { #expect(!line.contains("c000003")) }
    }

    @Test("an API key row damaged in the database gets 500 for its requests; the server stays up for the others")
    func damagedAPIKeyRow() async throws {
        let log = CollectedLog()
        let (fixture, app) = try await GatewayFixture.make(logger: log.logger())
        defer { fixture.environment.remove() }
        let damaged = try await fixture.tutela.createAPIKey(principal: "agent", expiresAt: nil)
        let database = try DatabaseQueue(path: fixture.environment.configuration.databasePath)
        try await database.write { db in
            try db.execute(sql: "UPDATE api_keys SET created_ms = 'abc' WHERE id = ?", arguments: [damaged.id])
        }
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/v1/customers/c000002",
                method: .get,
                headers: GatewayFixture.headers(damaged.token)
            ) { response in
                #expect(response.status == .internalServerError)
                #expect(String(buffer: response.body).contains("\"code\":\"storage_error\""))
            }
            try await client.execute(
                uri: "/v1/customers/c000002",
                method: .get,
                headers: GatewayFixture.headers(fixture.keys["agent"])
            ) { response in
                #expect(response.status == .ok)
            }
        }
        #expect(
            log.lines.contains {
                $0.hasPrefix("a request failed on the server's side") && $0.contains("code=storage_error")
            }
        )
        let listed = await #expect(throws: TutelaError.self) { try await fixture.tutela.listAPIKeys() }
        #expect(listed?.message.contains("a stored API key row is damaged or was altered: its column 4") == true)
    }

    @Test("a keyring rotated and re-wrapped by another process is used by the running gateway at once")
    func keyringReload() async throws {
        let (fixture, app) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        let command = try await Tutela.open(fixture.environment.configuration)
        let version = try await command.rotateKey(now: Int64(Date().timeIntervalSince1970 * 1000))
        #expect(try await command.rewrapAll() > 0)
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/v1/customers/c000003",
                method: .get,
                headers: GatewayFixture.headers(fixture.keys["agent"])
            ) { response in
                #expect(response.status == .ok)
            }
        }
        #expect(fixture.tutela.store.keyring.activeVersion == version)
        let reloads = try await fixture.tutela.auditSearch(
            {
                var filter = AuditFilter()
                filter.kind = "keys.reload"
                return filter
            }()
        )
        #expect(reloads.contains { $0.outcome == "ok" })
    }

    @Test("a request held up past its timeout gets 504 without waiting for the audit log's own deadline")
    func requestTimeout() async throws {
        let (environment, tutela, token) = try await Self.slowAuditInstallation()
        defer { environment.remove() }
        let app = try buildApplication(
            tutela: tutela,
            configuration: GatewayConfiguration(requestTimeout: .milliseconds(300))
        )
        // With the audit log locked the request cannot be recorded, and the log itself would
        // give up only after 30 s (its busy wait, then its deadline). The bound below is a
        // third of that: it tells a request cancelled at its timeout (0.3 s, a few seconds on a
        // machine loaded by the tests running beside it) from one left waiting.
        let lock = try AuditLock(path: environment.configuration.auditPath)
        try await lock.lock()
        let started = ContinuousClock.now
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/v1/customers/c000001",
                method: .get,
                headers: GatewayFixture.headers(token)
            ) { response in
                #expect(response.status == .gatewayTimeout)
                #expect(String(buffer: response.body).contains("\"code\":\"timeout\""))
            }
        }
        #expect(ContinuousClock.now - started < .seconds(10))
        try await lock.unlock()
    }

    @Test("connections that stay idle or never finish a request head are closed")
    func idleConnections() async throws {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        let tutela = try await environment.start()
        let app = try buildApplication(
            tutela: tutela,
            configuration: GatewayConfiguration(port: 0, idleTimeout: .milliseconds(300))
        )
        try await app.test(.live) { client in
            let port = try #require(client.port)
            // A request head that never ends: closed without an answer.
            let halfSent = try RawConnection(port: port)
            halfSent.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
            let unanswered = try await halfSent.readUntilClosed(within: .seconds(10))
            #expect(unanswered.closed)
            #expect(unanswered.text.isEmpty)

            // A keep-alive connection answered, then left idle: closed after its answer.
            let idle = try RawConnection(port: port)
            idle.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let answered = try await idle.readUntilClosed(within: .seconds(10))
            #expect(answered.closed)
            #expect(answered.text.hasPrefix("HTTP/1.1 200"))
        }
    }

    @Test("a request body that stalls past the request timeout gets 504 on its connection and is audited")
    func stalledBody() async throws {
        let (environment, tutela, token) = try await Self.slowAuditInstallation()
        defer { environment.remove() }
        let app = try buildApplication(
            tutela: tutela,
            configuration: GatewayConfiguration(port: 0, requestTimeout: .milliseconds(500))
        )
        try await app.test(.live) { client in
            // A body that never arrives whole: 504 once the request times out, and an audit event
            // naming the admitted caller and the route (never the body or the path).
            let trickle = try RawConnection(port: try #require(client.port))
            trickle.send(
                "POST /v1/interactions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(token)\r\n"
                    + "Tutela-Purpose: data_management\r\nContent-Type: application/json\r\n"
                    + "Content-Length: 1000\r\n\r\n[{\"customer_id\":"
            )
            let cut = try await trickle.readUntilClosed(within: .seconds(20))
            #expect(cut.text.hasPrefix("HTTP/1.1 504"))
            let requestID = try #require(Self.header("X-Request-Id", in: cut.text))
            var filter = AuditFilter()
            filter.principal = "agent"
            filter.kind = "http.rejected"
            let event = try #require(
                try await tutela.audit.search(filter, limit: 10).first { $0.requestID == requestID }
            )
            #expect(event.outcome == "error:timeout")
            #expect(event.resource == "/v1/interactions")
        }
    }

    @Test("a request held up longer than the idle timeout still gets its 504, without waiting for the audit log")
    func heldPastIdleTimeout() async throws {
        let (environment, tutela, token) = try await Self.slowAuditInstallation()
        defer { environment.remove() }
        let app = try buildApplication(
            tutela: tutela,
            configuration: GatewayConfiguration(
                port: 0,
                requestTimeout: .milliseconds(1500),
                idleTimeout: .milliseconds(300)
            )
        )
        let auditPath = environment.configuration.auditPath
        try await app.test(.live) { client in
            // Held up by the locked audit log until its timeout: the connection stays open
            // through it (nothing is idle while a request read whole is answered) and carries
            // the answer, which waits for the log at most a second to record the timeout.
            let lock = try AuditLock(path: auditPath)
            try await lock.lock()
            let slow = try RawConnection(port: try #require(client.port))
            slow.send(
                "GET /v1/customers/c000001 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(token)\r\n"
                    + "Tutela-Purpose: support\r\n\r\n"
            )
            let held = try await slow.readUntilClosed(within: .seconds(20))
            try await lock.unlock()
            #expect(held.text.hasPrefix("HTTP/1.1 504"))
            #expect(held.text.contains("\"code\":\"timeout\""))
        }
    }

    @Test("refusals beyond the per-address share get 429 and one counted audit event; valid keys still pass")
    func refusalFlood() async throws {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        let tutela = try await environment.start()
        _ = try await tutela.createPrincipal(name: "agent", roles: ["support_agent"], attributes: [:])
        let token = try await tutela.createAPIKey(principal: "agent", expiresAt: nil).token
        // A window of eight seconds: the eight refusals wait for their audit commits one after
        // another, which on a heavily loaded machine has taken longer than three.
        var configuration = GatewayConfiguration(port: 0, refusalsPerSecond: 3)
        configuration.refusalWindow = .seconds(8)
        let app = try buildApplication(tutela: tutela, configuration: configuration)
        let statuses = try await app.test(.live) { client -> [HTTPResponse.Status] in
            var statuses: [HTTPResponse.Status] = []
            // Eight refusals in a row from this address (wrong keys, then paths no route serves).
            for attempt in 0..<8 {
                let uri = attempt < 5 ? "/v1/customers/c000001" : "/v1/nothing-here-\(attempt)"
                let status = try await client.execute(
                    uri: uri,
                    method: .get,
                    headers: GatewayFixture.headers("tut_AAAAAAAAAAAAAAAA_wrong")
                ) { response in
                    if response.status == .tooManyRequests {
                        #expect(response.headers[.retryAfter] == "1")
                        #expect(String(buffer: response.body).contains("\"code\":\"too_many_refusals\""))
                    }
                    return response.status
                }
                statuses.append(status)
            }
            // A valid key from the same address is not held back.
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/customers/c000001", method: .get, headers: GatewayFixture.headers(token))
            {
                #expect($0.status != .tooManyRequests && $0.status != .unauthorized)
            }
            return statuses
        }
        #expect(statuses.prefix(3).allSatisfy { $0 == .unauthorized })
        #expect(statuses.dropFirst(3).allSatisfy { $0 == .tooManyRequests })
        // Three refusals audited one by one, the other five in one event once the window ends.
        var limited: [AuditEvent] = []
        let deadline = ContinuousClock.now + configuration.refusalWindow + .seconds(20)
        while limited.isEmpty, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            var filter = AuditFilter()
            filter.kind = "http.refusals_limited"
            limited = try await tutela.audit.search(filter, limit: 10)
        }
        #expect(limited.count == 1)
        #expect(limited.first?.count == 5)
        #expect(limited.first?.record == "address 127.0.0.1")
        var failed = AuditFilter()
        failed.kind = "auth.failed"
        #expect(try await tutela.audit.search(failed, limit: 100).count == 3)
    }

    @Test("a port already in use is reported in words, not as a socket error")
    func portInUse() async throws {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        let tutela = try await environment.start()
        let first = try buildApplication(tutela: tutela, configuration: GatewayConfiguration(port: 0))
        try await first.test(.live) { client in
            let port = try #require(client.port)
            let second = try buildApplication(tutela: tutela, configuration: GatewayConfiguration(port: port))
            let failure = await #expect(throws: (any Error).self) { try await second.run() }
            let reported = try #require(failure.flatMap { listeningError($0, host: "127.0.0.1", port: port) })
            #expect(
                reported.message
                    == "cannot listen on 127.0.0.1:\(port): the address is in use (is another server running?)"
            )
        }
        #expect(listeningError(TutelaError(.io, "other"), host: "127.0.0.1", port: 1) == nil)
        // A host that is no address and resolves to none.
        let nowhere = try buildApplication(
            tutela: tutela,
            configuration: GatewayConfiguration(host: "999.1.1.1", port: 0)
        )
        let unresolved = await #expect(throws: (any Error).self) { try await nowhere.run() }
        #expect(
            unresolved.flatMap { listeningError($0, host: "999.1.1.1", port: 0) }?.message
                == "cannot listen on 999.1.1.1:0: the host is neither an IP address nor a name that resolves"
        )
    }

    /// A header's value in a raw HTTP response.
    private static func header(_ name: String, in response: String) -> String? {
        let prefix = name.lowercased() + ": "
        return response.split(separator: "\r\n").first { $0.lowercased().hasPrefix(prefix) }
            .map { String($0.dropFirst(prefix.count)) }
    }

    /// Whether this machine can bind the IPv6 loopback address.
    static let hasIPv6Loopback: Bool = {
        let descriptor = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_addr = in6addr_loopback
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) == 0
            }
        }
    }()

    @Test(
        "serving on an IPv6 address, the start line's address brackets it apart from the port",
        .enabled(if: hasIPv6Loopback)
    )
    func ipv6Address() async throws {
        let lines = try await serveLog(["--host", "::1"])
        let serving = try #require(lines.first { $0.contains("\"serving\"") })
        #expect(serving.contains("\"address\":\"http://[::1]:"), "\(serving)")
    }

    @Test("a TUTELA_ environment variable that names no setting is logged by name at start, not its value")
    func unknownEnvironmentVariable() async throws {
        #expect(
            ServeSettings.unknownVariables(in: [
                "TUTELA_RATE_LIMT": "5", "TUTELA_PORT": "1", "HOME": "/", "TUTELA": "x",
            ])
                == ["TUTELA_RATE_LIMT"]
        )
        let lines = try await serveLog(["--host", "127.0.0.1"], extra: ["TUTELA_RATE_LIMT": "secret-5"])
        let warnings = lines.filter { $0.contains("names no setting") }
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("\"variable\":\"TUTELA_RATE_LIMT\"") == true)
        #expect(!lines.contains { $0.contains("secret-5") })
        #expect(lines.contains { $0.contains("\"serving\"") })
    }

    @Test("started under a low soft limit on open files, the gateway raises it to the hard limit and says so")
    func openFileLimit() async throws {
        var limit = rlimit()
        try #require(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0)
        try #require(limit.rlim_max != rlim_t.max && limit.rlim_max > 256)
        // `prlimit` lowers only the soft limit, then runs the server in its own process.
        let lines = try await serveLog(["--host", "127.0.0.1"], through: ["/usr/bin/prlimit", "--nofile=256:"])
        let serving = try #require(lines.first { $0.contains("\"serving\"") })
        #expect(serving.contains("\"open_files_limit\":\"\(limit.rlim_max)\""), "\(serving)")
    }

    /// The log lines of `tutela serve` on port 0 with `arguments` (and `extra` in its
    /// environment), from its start until it says it is serving; `launcher` is a program and
    /// its arguments that start the server in their place.
    private func serveLog(
        _ arguments: [String],
        extra: [String: String] = [:],
        through launcher: [String] = []
    ) async throws -> [Substring] {
        let tutela = try ChildProcess.builtTutela()
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        _ = try await environment.start()
        let log = environment.root + "/serve.log"
        #expect(FileManager.default.createFile(atPath: log, contents: nil))
        let logFile = open(log, O_WRONLY | O_CLOEXEC)
        try #require(logFile >= 0)
        defer { close(logFile) }
        let command = launcher + [tutela, "serve"] + arguments + ["--port", "0"] + environment.pathArguments
        let server = try SpawnedProcess(
            command[0],
            Array(command.dropFirst()),
            environment: environment.configuration.environment.merging(extra) { $1 },
            standardError: logFile
        )
        var lines: [Substring] = []
        for _ in 0..<100 where !lines.contains(where: { $0.contains("\"serving\"") }) {
            try await Task.sleep(for: .milliseconds(100))
            lines = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n") ?? []
        }
        server.signal()
        _ = await server.termination()
        return lines
    }

    @Test("with a certificate and key the gateway speaks HTTPS only")
    func tls() async throws {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        let tutela = try await environment.start()
        let certificate = environment.root + "/cert.pem"
        let key = environment.root + "/key.pem"
        try await run(
            "openssl",
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                "-out", certificate, "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
            ]
        )
        let port = 20_000 + Int.random(in: 0..<10_000)
        let app = try buildApplication(
            tutela: tutela,
            configuration: GatewayConfiguration(
                port: port,
                tls: .init(certificatePath: certificate, privateKeyPath: key)
            )
        )
        let server = Task { try await app.run() }
        defer { server.cancel() }
        var answer = ""
        for _ in 0..<50 where !answer.contains("ok") {
            try await Task.sleep(for: .milliseconds(100))
            answer =
                (try? await run("curl", ["-s", "--cacert", certificate, "https://localhost:\(port)/healthz"])) ?? ""
        }
        #expect(answer == "{\"status\":\"ok\"}")
        let plain = try? await run("curl", ["-s", "-m", "5", "http://localhost:\(port)/healthz"])
        #expect(plain == nil || plain?.contains("\"status\"") == false)

        let missing = GatewayConfiguration(tls: .init(certificatePath: key + ".missing", privateKeyPath: key))
        let refused = #expect(throws: TutelaError.self) {
            _ = try buildApplication(tutela: tutela, configuration: missing)
        }
        #expect(refused?.message == "cannot read the TLS certificate \(key).missing: no such file or directory")
        // A file that reads but is not PEM is refused as such.
        let notPEM = GatewayConfiguration(tls: .init(certificatePath: certificate, privateKeyPath: certificate))
        let unparsed = #expect(throws: TutelaError.self) {
            _ = try buildApplication(tutela: tutela, configuration: notPEM)
        }
        #expect(unparsed?.message == "cannot read a PEM private key from \(certificate)")
        // A key of its own that is not the certificate's is named as such.
        let otherKey = environment.root + "/other-key.pem"
        try await run(
            "openssl",
            ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", otherKey]
        )
        let mismatched = GatewayConfiguration(tls: .init(certificatePath: certificate, privateKeyPath: otherKey))
        let foreign = #expect(throws: TutelaError.self) {
            _ = try buildApplication(tutela: tutela, configuration: mismatched)
        }
        #expect(foreign?.message == "the TLS key in \(otherKey) does not belong to the certificate in \(certificate)")
    }

    /// An installation whose audit log waits 30 s before giving up on a locked file, with a
    /// support agent's API key: a request held up by a locked log meets the request timeout first.
    private static func slowAuditInstallation() async throws -> (TestEnvironment, Tutela, String) {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        do {
            var configuration = environment.configuration
            configuration.auditTimeout = .seconds(30)
            _ = try await Tutela.initialize(configuration, now: 1_700_000_000_000)
            let tutela = try await Tutela.open(configuration)
            _ = try await tutela.createPrincipal(name: "agent", roles: ["support_agent"], attributes: [:])
            return (environment, tutela, try await tutela.createAPIKey(principal: "agent", expiresAt: nil).token)
        } catch {
            environment.remove()
            throw error
        }
    }

    /// Runs a program from PATH; throws on a non-zero exit.
    @discardableResult
    private func run(_ program: String, _ arguments: [String]) async throws -> String {
        let run = try await ChildProcess.run("/usr/bin/env", [program] + arguments)
        guard run.status == 0 else { throw TutelaError(.io, "\(program) exited with \(run.status)") }
        return run.output
    }
}

/// A plain TCP connection to a local port, for requests no HTTP client would send.
final class RawConnection {
    private let descriptor: Int32

    /// Connects to 127.0.0.1 on `port`.
    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TutelaError(.io, "cannot open a socket") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(descriptor)
            throw TutelaError(.io, "cannot connect to port \(port)")
        }
    }

    deinit { close(descriptor) }

    /// Writes `text` whole.
    func send(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }

    /// What arrives until the server closes the connection or `limit` passes, and whether it closed.
    ///
    /// Polls without blocking, so that no thread of the server's is held by the test.
    func readUntilClosed(within limit: Duration) async throws -> (text: String, closed: Bool) {
        let deadline = ContinuousClock.now + limit
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            let count = buffer.withUnsafeMutableBytes {
                recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT))
            }
            if count == 0 { return (String(decoding: received, as: UTF8.self), true) }
            if count > 0 {
                received += buffer[0..<count]
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                try await Task.sleep(for: .milliseconds(20))
            } else {
                // Reset by the server: closed too.
                return (String(decoding: received, as: UTF8.self), true)
            }
        }
        return (String(decoding: received, as: UTF8.self), false)
    }
}

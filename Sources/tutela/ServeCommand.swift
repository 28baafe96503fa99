import ArgumentParser
import Audit
import Foundation
import Gateway
import Governance
import Hummingbird
import KeyManagement
import Logging
import Policy
import TutelaCore

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the HTTP API on the data directory of 'tutela init' until SIGTERM or SIGINT.",
        discussion: """
            Settings come from flags, then TUTELA_* environment variables, then the YAML file given \
            with --config (or TUTELA_CONFIG), then defaults. SIGHUP reloads the policies and the \
            keyring; a keyring changed by 'tutela keys ...' is also picked up on the next request.
            """
    )

    @OptionGroup var options: GlobalOptions
    @Option(help: "A YAML configuration file (env TUTELA_CONFIG); see docs/SERVE.md.") var config: String?
    @Option(help: "Address to bind (env TUTELA_HOST, default 127.0.0.1).") var host: String?
    @Option(help: "Port (env TUTELA_PORT, default 8080).") var port: Int?
    @Option(help: "Largest request body in bytes (default 1048576).") var maxBodyBytes: Int?
    @Option(help: "Requests per second per API key (default 100).") var rateLimit: Double?
    @Option(help: "Burst size per API key (default 200).") var burst: Double?
    @Option(help: "Seconds before a request times out (default 10).") var timeout: Int?
    @Option(help: "Requests in flight before new ones get 503 (default 256).") var maxConcurrent: Int?
    @Option(
        help:
            "Seconds a connection may go without a request part, unless a request is being answered, before it is closed (default 60)."
    )
    var idleTimeout: Int?
    @Option(help: "Refused requests per client address audited one by one each second; more get 429 (default 20).")
    var refusalsPerSecond: Int?
    @Option(help: "PEM certificate chain: serve HTTPS (with --tls-key).") var tlsCertificate: String?
    @Option(help: "PEM private key of the certificate.") var tlsKey: String?
    @Option(help: "Log lines as json (default) or text.") var logFormat: String?
    @Flag(inversion: .prefixedNo, help: "Log every request (method, route, status, duration; default on).")
    var logRequests: Bool?
    @Option(
        help: "Days audit events stay in the log; older ones are moved to archive files every hour (default: kept)."
    )
    var auditRetentionDays: Int?
    @Option(help: "Where archived audit events go (default DATA_DIR/audit-archive).") var auditArchiveDir: String?

    func run() async throws {
        try await Console.run(json: options.json) {
            let settings = try resolvedSettings()
            let gateway = try settings.gatewayConfiguration()
            let format = settings.logFormat ?? .json
            LoggingSystem.bootstrap { label in
                switch format {
                case .json: return JSONLogHandler(label: label)
                case .text: return StreamLogHandler.standardError(label: label)
                }
            }
            let logger = Logger(label: "tutela.gateway")
            // A misspelt variable would otherwise leave its setting at the default unnoticed.
            for name in ServeSettings.unknownVariables(in: ProcessInfo.processInfo.environment) {
                logger.warning(
                    "an environment variable names no setting and is ignored",
                    metadata: ["variable": .string(name)]
                )
            }
            var paths = options
            paths.dataDirectory = settings.dataDirectory
            paths.keysDirectory = settings.keysDirectory
            paths.policiesDirectory = settings.policiesDirectory
            var configuration = paths.configuration
            configuration.cachedDataKeys = EnvelopeCipher.defaultCachedDataKeys
            let retention = try settings.auditRetention(dataDirectory: configuration.dataDirectory)
            if let retention { try Self.makeArchiveDirectory(retention.directory) }
            let openFiles = OpenFileLimit.raiseToHardLimit()
            let tutela = try await Tutela.open(configuration)
            let scheme = gateway.tls == nil ? "http" : "https"
            // An IPv6 address is bracketed in a URL, so that its port stays apart (RFC 3986).
            let host = gateway.host.contains(":") ? "[\(gateway.host)]" : gateway.host
            let policySet = tutela.policies.digest
            // Said once the socket is bound, with the port it got (0 asks for any).
            let application = try buildApplication(tutela: tutela, configuration: gateway, logger: logger) {
                channel in
                logger.notice(
                    "serving",
                    metadata: [
                        "address": .string("\(scheme)://\(host):\(channel.localAddress?.port ?? gateway.port)"),
                        "policy_set": .string(policySet),
                        "open_files_limit": .string(openFiles.map(String.init) ?? "unlimited"),
                    ]
                )
            }
            let reloads = Self.reloadOnHangUp(tutela: tutela, logger: logger)
            defer { reloads.cancel() }
            let archiving = retention.map { retention in
                Task { await AuditArchiver(tutela: tutela, retention: retention, logger: logger).run() }
            }
            defer { archiving?.cancel() }
            do {
                try await application.runService()
            } catch {
                throw listeningError(error, host: gateway.host, port: gateway.port) ?? error
            }
            // An archive file under way is finished, and its events removed, before the end.
            archiving?.cancel()
            await archiving?.value
            // The last requests' entries are signed now rather than by the next process.
            _ = try? await tutela.audit.latestCheckpoint()
        }
    }

    /// Defaults, then the file, then the environment, then flags.
    private func resolvedSettings() throws -> ServeSettings {
        let environment = ProcessInfo.processInfo.environment
        var flags = ServeSettings()
        flags.host = host
        flags.port = port
        flags.maxBodyBytes = maxBodyBytes
        flags.rateLimit = rateLimit
        flags.burst = burst
        flags.timeoutSeconds = timeout
        flags.maxConcurrent = maxConcurrent
        flags.idleTimeoutSeconds = idleTimeout
        flags.refusalsPerSecond = refusalsPerSecond
        flags.tlsCertificate = tlsCertificate
        flags.tlsKey = tlsKey
        if let logFormat {
            guard let format = ServeSettings.LogFormat(rawValue: logFormat) else {
                throw TutelaError(.invalidInput, "--log-format takes json or text")
            }
            flags.logFormat = format
        }
        flags.logRequests = logRequests
        flags.dataDirectory = options.dataDirectory
        flags.keysDirectory = options.keysDirectory
        flags.policiesDirectory = options.policiesDirectory
        flags.auditRetentionDays = auditRetentionDays
        flags.auditArchiveDirectory = auditArchiveDir
        var settings = ServeSettings()
        if let file = config ?? environment["TUTELA_CONFIG"] {
            settings = try ServeSettings.load(file: file)
        }
        return settings.overridden(by: try ServeSettings.environment(environment)).overridden(by: flags)
    }

    /// Creates the audit archive directory (mode 0700) when it is missing, so that a directory
    /// the server cannot write is an error at start rather than a warning an hour later.
    private static func makeArchiveDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(
                atPath: path,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
        } catch {
            throw TutelaError(.io, "cannot create the audit archive directory \(path)")
        }
        guard access(path, W_OK) == 0 else {
            throw TutelaError(.io, "the audit archive directory \(path) is not writable")
        }
    }

    /// Reloads policies and keyring on SIGHUP; a set or keyring that does not load leaves the one
    /// in force, and either way the attempt is logged and audited.
    private static func reloadOnHangUp(tutela: Tutela, logger: Logger) -> any DispatchSourceSignal {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler {
            Task {
                do {
                    let policies = try await tutela.reloadPolicies()
                    logger.notice("policies reloaded", metadata: ["policy_set": .string(policies.digest)])
                } catch {
                    logger.error(
                        "policy reload failed; the previous set stays in force",
                        metadata: logMetadata(for: error)
                    )
                }
                do {
                    logKeyringReload(.success(try await tutela.reloadKeyring()), to: logger)
                } catch {
                    logKeyringReload(.failure(error), to: logger)
                }
            }
        }
        source.resume()
        return source
    }
}

struct APIKeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apikeys",
        abstract: "Create, list and revoke API keys; a key is shown once and stored only as a hash.",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key for a principal and print it once.")
        @OptionGroup var options: GlobalOptions
        @Option(help: "The principal the key authenticates.") var principal: String
        @Option(help: "Expiry: RFC 3339 time, or a duration such as 30d or 12h.") var expires: String?

        func run() async throws {
            try await Console.run(json: options.json) {
                let tutela = try await Tutela.open(options.configuration)
                let expiry = try expires.map(Self.expiry)
                let (id, token) = try await tutela.createAPIKey(principal: principal, expiresAt: expiry)
                if options.json { return try Console.printJSON(["id": id, "token": token]) }
                print(token)
                Console.printError("Key \(id) for \(principal). It is shown only now; keep it secret.")
            }
        }

        static func expiry(_ text: String) throws -> Int64 {
            let units: [Character: Int64] = ["d": 86_400_000, "h": 3_600_000, "m": 60_000]
            if let unit = text.last.flatMap({ units[$0] }), let count = Int64(text.dropLast()), count > 0 {
                // A duration past what a time can hold is as late as any: refused as too late.
                let (span, tooLong) = count.multipliedReportingOverflow(by: unit)
                let (time, tooLate) = Console.now.addingReportingOverflow(span)
                return tooLong || tooLate ? .max : time
            }
            guard let time = CalendarDate.parseTimestamp(Substring(text)) else {
                throw TutelaError(.invalidInput, "--expires takes an RFC 3339 time or a duration like 30d, 12h, 15m")
            }
            // A bare number is a time in Unix seconds: '30' meant as 30 days is a time in 1970.
            guard time > Console.now else {
                throw TutelaError(
                    .invalidInput,
                    "--expires '\(text)' is the time \(CalendarDate.formatTimestamp(milliseconds: time)), which has passed; a duration takes a unit: 30d, 12h, 15m"
                )
            }
            return time
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never their secrets).")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await Console.run(json: options.json) {
                let keys = try await Tutela.open(options.configuration).listAPIKeys()
                if options.json { return try Console.printJSON(keys) }
                for key in keys {
                    print(
                        "\(key.id)  \(key.principal)  \(key.state)  created \(key.createdAt)"
                            + (key.expiresAt.map { "  expires \($0)" } ?? "")
                    )
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a key; it is refused from the next request on."
        )
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The key id.") var id: String

        func run() async throws {
            try await Console.run(json: options.json) {
                try await Tutela.open(options.configuration).revokeAPIKey(id: id)
                if options.json { return try Console.printJSON(JSONReports.RevokedKeyReport(id: id, revoked: true)) }
                print("Key \(id) is revoked.")
            }
        }
    }
}

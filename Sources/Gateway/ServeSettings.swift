import Foundation
import Policy
import TutelaCore

/// The settings of `tutela serve`, from a configuration file, the environment and flags.
///
/// Each source fills what it names; `overridden(by:)` layers them so that flags beat the
/// environment, which beats the file, which beats the defaults. Every value is checked when the
/// layers are resolved, and an unknown key in the file is an error naming its line: a typo never
/// silently leaves a limit at its default.
public struct ServeSettings: Sendable, Equatable {
    public var host: String?
    public var port: Int?
    public var maxBodyBytes: Int?
    public var rateLimit: Double?
    public var burst: Double?
    public var timeoutSeconds: Int?
    public var maxConcurrent: Int?
    public var idleTimeoutSeconds: Int?
    public var refusalsPerSecond: Int?
    public var tlsCertificate: String?
    public var tlsKey: String?
    public var logFormat: LogFormat?
    public var logRequests: Bool?
    public var dataDirectory: String?
    public var keysDirectory: String?
    public var policiesDirectory: String?
    public var auditRetentionDays: Int?
    public var auditArchiveDirectory: String?

    /// How log lines are written.
    public enum LogFormat: String, Sendable, Equatable {
        /// One JSON object per line.
        case json
        /// `time level label: message key=value ...` for a terminal.
        case text
    }

    /// Nothing set.
    public init() {}

    /// The keys a configuration file may use.
    static let fileKeys: Set<String> = [
        "host", "port", "max_body_bytes", "rate_limit", "burst", "timeout_seconds", "max_concurrent",
        "idle_timeout_seconds", "refusals_per_second",
        "tls_certificate", "tls_key", "log_format", "log_requests", "data_dir", "keys_dir", "policies_dir",
        "audit_retention_days", "audit_archive_dir",
    ]

    /// Reads a YAML configuration file.
    /// - Throws: `.configurationInvalid` naming the file and line of a bad or unknown key.
    public static func load(file: String) throws -> ServeSettings {
        let data = try FileReading.contents(of: file, role: "the configuration file", code: .notFound)
        return try parse(try FileReading.text(data, of: file, code: .configurationInvalid), file: file)
    }

    /// Parses configuration text; `file` names it in errors.
    public static func parse(_ source: String, file: String) throws -> ServeSettings {
        let root = try YAMLNode.parse(source, file: file)
        let fields = try root.fields("the serve configuration", allowed: fileKeys)
        var settings = ServeSettings()
        func text(_ key: String) throws -> String? { try fields[key]?.string(key) }
        func number(_ key: String) throws -> Double? {
            guard let node = fields[key] else { return nil }
            guard let value = Double(try node.string(key)) else { throw node.error("\(key) must be a number") }
            return value
        }
        settings.host = try text("host")
        settings.port = try fields["port"]?.int("port")
        settings.maxBodyBytes = try fields["max_body_bytes"]?.int("max_body_bytes")
        settings.rateLimit = try number("rate_limit")
        settings.burst = try number("burst")
        settings.timeoutSeconds = try fields["timeout_seconds"]?.int("timeout_seconds")
        settings.maxConcurrent = try fields["max_concurrent"]?.int("max_concurrent")
        settings.idleTimeoutSeconds = try fields["idle_timeout_seconds"]?.int("idle_timeout_seconds")
        settings.refusalsPerSecond = try fields["refusals_per_second"]?.int("refusals_per_second")
        settings.tlsCertificate = try text("tls_certificate")
        settings.tlsKey = try text("tls_key")
        if let node = fields["log_format"] {
            guard let format = LogFormat(rawValue: try node.string("log_format")) else {
                throw node.error("log_format must be json or text")
            }
            settings.logFormat = format
        }
        settings.logRequests = try fields["log_requests"]?.bool("log_requests")
        settings.dataDirectory = try text("data_dir")
        settings.keysDirectory = try text("keys_dir")
        settings.policiesDirectory = try text("policies_dir")
        settings.auditRetentionDays = try fields["audit_retention_days"]?.int("audit_retention_days")
        settings.auditArchiveDirectory = try text("audit_archive_dir")
        return settings
    }

    /// The `TUTELA_*` environment variables that Tutela reads: the server's settings, the
    /// directories, the master key and the configuration file.
    public static let environmentVariables: Set<String> = [
        "TUTELA_HOST", "TUTELA_PORT", "TUTELA_MAX_BODY_BYTES", "TUTELA_RATE_LIMIT", "TUTELA_BURST", "TUTELA_TIMEOUT",
        "TUTELA_MAX_CONCURRENT", "TUTELA_IDLE_TIMEOUT", "TUTELA_REFUSALS_PER_SECOND", "TUTELA_TLS_CERTIFICATE",
        "TUTELA_TLS_KEY", "TUTELA_LOG_FORMAT", "TUTELA_LOG_REQUESTS", "TUTELA_DATA_DIR", "TUTELA_KEYS_DIR",
        "TUTELA_POLICIES_DIR", "TUTELA_AUDIT_RETENTION_DAYS", "TUTELA_AUDIT_ARCHIVE_DIR", "TUTELA_CONFIG",
        "TUTELA_MASTER_KEY",
    ]

    /// The names of `TUTELA_*` variables in `environment` that Tutela does not read (a
    /// misspelt setting, say), sorted; their values are never looked at.
    public static func unknownVariables(in environment: [String: String]) -> [String] {
        environment.keys.filter { $0.hasPrefix("TUTELA_") && !environmentVariables.contains($0) }.sorted()
    }

    /// The settings named by `TUTELA_*` environment variables.
    /// - Throws: `.configurationInvalid` naming a variable whose value does not parse.
    public static func environment(_ environment: [String: String]) throws -> ServeSettings {
        func value<T>(_ name: String, _ parse: (String) -> T?) throws -> T? {
            // A variable read here and missing from the list would be warned of as unknown.
            assert(environmentVariables.contains(name), "\(name) is not in ServeSettings.environmentVariables")
            guard let text = environment[name], !text.isEmpty else { return nil }
            guard let value = parse(text) else {
                throw TutelaError(
                    .configurationInvalid,
                    "the environment variable \(name) has a value that does not parse"
                )
            }
            return value
        }
        var settings = ServeSettings()
        settings.host = try value("TUTELA_HOST") { $0 }
        settings.port = try value("TUTELA_PORT") { Int($0) }
        settings.maxBodyBytes = try value("TUTELA_MAX_BODY_BYTES") { Int($0) }
        settings.rateLimit = try value("TUTELA_RATE_LIMIT") { Double($0) }
        settings.burst = try value("TUTELA_BURST") { Double($0) }
        settings.timeoutSeconds = try value("TUTELA_TIMEOUT") { Int($0) }
        settings.maxConcurrent = try value("TUTELA_MAX_CONCURRENT") { Int($0) }
        settings.idleTimeoutSeconds = try value("TUTELA_IDLE_TIMEOUT") { Int($0) }
        settings.refusalsPerSecond = try value("TUTELA_REFUSALS_PER_SECOND") { Int($0) }
        settings.tlsCertificate = try value("TUTELA_TLS_CERTIFICATE") { $0 }
        settings.tlsKey = try value("TUTELA_TLS_KEY") { $0 }
        settings.logFormat = try value("TUTELA_LOG_FORMAT") { LogFormat(rawValue: $0) }
        settings.logRequests = try value("TUTELA_LOG_REQUESTS") { Bool($0) }
        settings.dataDirectory = try value("TUTELA_DATA_DIR") { $0 }
        settings.keysDirectory = try value("TUTELA_KEYS_DIR") { $0 }
        settings.policiesDirectory = try value("TUTELA_POLICIES_DIR") { $0 }
        settings.auditRetentionDays = try value("TUTELA_AUDIT_RETENTION_DAYS") { Int($0) }
        settings.auditArchiveDirectory = try value("TUTELA_AUDIT_ARCHIVE_DIR") { $0 }
        return settings
    }

    /// These settings with every value `other` sets taking precedence.
    public func overridden(by other: ServeSettings) -> ServeSettings {
        var result = self
        result.host = other.host ?? host
        result.port = other.port ?? port
        result.maxBodyBytes = other.maxBodyBytes ?? maxBodyBytes
        result.rateLimit = other.rateLimit ?? rateLimit
        result.burst = other.burst ?? burst
        result.timeoutSeconds = other.timeoutSeconds ?? timeoutSeconds
        result.maxConcurrent = other.maxConcurrent ?? maxConcurrent
        result.idleTimeoutSeconds = other.idleTimeoutSeconds ?? idleTimeoutSeconds
        result.refusalsPerSecond = other.refusalsPerSecond ?? refusalsPerSecond
        result.tlsCertificate = other.tlsCertificate ?? tlsCertificate
        result.tlsKey = other.tlsKey ?? tlsKey
        result.logFormat = other.logFormat ?? logFormat
        result.logRequests = other.logRequests ?? logRequests
        result.dataDirectory = other.dataDirectory ?? dataDirectory
        result.keysDirectory = other.keysDirectory ?? keysDirectory
        result.policiesDirectory = other.policiesDirectory ?? policiesDirectory
        result.auditRetentionDays = other.auditRetentionDays ?? auditRetentionDays
        result.auditArchiveDirectory = other.auditArchiveDirectory ?? auditArchiveDirectory
        return result
    }

    /// The gateway configuration these settings describe, with defaults for what none set.
    /// - Throws: `.configurationInvalid` for a value out of range, or a TLS certificate without
    ///   its key (or the reverse).
    public func gatewayConfiguration() throws -> GatewayConfiguration {
        let defaults = GatewayConfiguration()
        func invalid(_ message: String) -> TutelaError { TutelaError(.configurationInvalid, message) }
        let port = port ?? defaults.port
        guard (0...65_535).contains(port) else { throw invalid("port must be between 0 and 65535") }
        let maxBodyBytes = maxBodyBytes ?? defaults.maxBodyBytes
        // A request body is held in memory while it is read: the bound keeps one request from
        // taking the server's memory.
        guard (1...GatewayConfiguration.largestBodyLimit).contains(maxBodyBytes) else {
            throw invalid("max_body_bytes must be between 1 and \(GatewayConfiguration.largestBodyLimit) (256 MiB)")
        }
        let rateLimit = rateLimit ?? defaults.requestsPerSecond
        let burst = burst ?? defaults.burst
        guard rateLimit.isFinite, rateLimit > 0, burst.isFinite, burst >= 1 else {
            throw invalid("rate_limit must be a positive number and burst a number of at least 1 (neither infinite)")
        }
        let timeout = timeoutSeconds ?? Int(defaults.requestTimeout.components.seconds)
        guard timeout > 0 else { throw invalid("timeout_seconds must be positive") }
        let maxConcurrent = maxConcurrent ?? defaults.maxConcurrentRequests
        guard maxConcurrent > 0 else { throw invalid("max_concurrent must be positive") }
        let idleTimeout = idleTimeoutSeconds ?? Int(defaults.idleTimeout.components.seconds)
        guard idleTimeout > 0 else { throw invalid("idle_timeout_seconds must be positive") }
        let refusals = refusalsPerSecond ?? defaults.refusalsPerSecond
        guard refusals > 0 else { throw invalid("refusals_per_second must be positive") }
        var tls: GatewayConfiguration.TLSFiles?
        switch (tlsCertificate, tlsKey) {
        case (nil, nil): tls = nil
        case (let certificate?, let key?): tls = .init(certificatePath: certificate, privateKeyPath: key)
        default: throw invalid("TLS needs both tls_certificate and tls_key")
        }
        return GatewayConfiguration(
            host: host ?? defaults.host,
            port: port,
            maxBodyBytes: maxBodyBytes,
            requestsPerSecond: rateLimit,
            burst: burst,
            requestTimeout: .seconds(timeout),
            maxConcurrentRequests: maxConcurrent,
            idleTimeout: .seconds(idleTimeout),
            refusalsPerSecond: refusals,
            tls: tls,
            logRequests: logRequests ?? true
        )
    }

    /// The audit retention these settings ask for, archiving under `dataDirectory` unless they
    /// name a directory; nil when they set no retention period.
    /// - Throws: `.configurationInvalid` for a period outside 1 to 36,500 days, or an archive
    ///   directory without a period.
    public func auditRetention(dataDirectory: String) throws -> AuditRetention? {
        guard let days = auditRetentionDays else {
            guard auditArchiveDirectory == nil else {
                throw TutelaError(.configurationInvalid, "audit_archive_dir needs audit_retention_days")
            }
            return nil
        }
        guard (1...36_500).contains(days) else {
            throw TutelaError(.configurationInvalid, "audit_retention_days must be between 1 and 36500")
        }
        return AuditRetention(
            keep: .seconds(days * 86_400),
            directory: auditArchiveDirectory ?? dataDirectory + "/audit-archive"
        )
    }
}

import Foundation
import Logging
import Synchronization
import TutelaCore

/// A log handler that writes one JSON object per line to standard error: `time`, `level`,
/// `label`, `message`, then the metadata as string fields.
///
/// Nothing in Tutela logs customer data: request lines carry the route template (never the
/// path, which holds customer ids, nor the query, which may hold an e-mail address), and
/// errors carry codes and messages written for that purpose.
public struct JSONLogHandler: LogHandler {
    /// Metadata added to every line of this logger.
    public var metadata: Logger.Metadata = [:]
    /// The lowest level written.
    public var logLevel: Logger.Level = .info
    private let label: String

    /// A handler for the logger named `label`.
    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        Self.write(line(for: event))
    }

    /// The line for an event.
    func line(for event: LogEvent) -> [UInt8] {
        var line = JSONWriter(capacity: 256)
        Self.appendHead(level: event.level, label: label, message: event.message.description, to: &line)
        let merged = metadata.isEmpty ? event.metadata ?? [:] : metadata.merging(event.metadata ?? [:]) { $1 }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            line.append(raw: ",")
            line.append(string: key)
            line.append(raw: ":")
            line.append(string: value.description)
        }
        line.append(raw: "}\n")
        return line.bytes
    }

    /// Writes the line of an info-level `request` event with these fields, the line `log` writes
    /// for it, without building swift-log's metadata dictionary: the server writes one for every
    /// call it answers.
    public func logRequest(requestID: String, method: String, route: String, status: Int, milliseconds: String) {
        guard logLevel <= .info else { return }
        Self.write(
            requestLine(requestID: requestID, method: method, route: route, status: status, milliseconds: milliseconds)
        )
    }

    /// The line `logRequest` writes.
    func requestLine(requestID: String, method: String, route: String, status: Int, milliseconds: String) -> [UInt8] {
        let fields: [(key: StaticString, value: String)] = [
            ("duration_ms", milliseconds), ("method", method), ("request_id", requestID), ("route", route),
            ("status", String(status)),
        ]
        guard metadata.isEmpty else {
            var event: Logger.Metadata = [:]
            for field in fields { event[field.key.description] = .string(field.value) }
            return line(
                for: LogEvent(
                    level: .info,
                    message: "request",
                    metadata: event,
                    source: "Gateway",
                    file: #fileID,
                    function: #function,
                    line: #line
                )
            )
        }
        var line = JSONWriter(capacity: 256)
        Self.appendHead(level: .info, label: label, message: "request", to: &line)
        // In key order, as `log` sorts them.
        for field in fields {
            line.append(raw: ",\"")
            line.append(raw: field.key)
            line.append(raw: "\":")
            line.append(string: field.value)
        }
        line.append(raw: "}\n")
        return line.bytes
    }

    private static func appendHead(level: Logger.Level, label: String, message: String, to line: inout JSONWriter) {
        line.append(raw: "{\"time\":")
        line.append(string: timestamp())
        line.append(raw: ",\"level\":")
        line.append(string: level.rawValue)
        line.append(raw: ",\"label\":")
        line.append(string: label)
        line.append(raw: ",\"message\":")
        line.append(string: message)
    }

    private static let output = Mutex(())

    private static func write(_ bytes: [UInt8]) {
        output.withLock { _ in
            bytes.withUnsafeBufferPointer { bytes in
                guard let base = bytes.baseAddress else { return }
                var offset = 0
                while offset < bytes.count {
                    let written = Foundation.write(2, base + offset, bytes.count - offset)
                    guard written > 0 else { return }
                    offset += written
                }
            }
        }
    }

    private static func timestamp() -> String {
        CalendarDate.formatTimestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000))
    }
}

/// Log metadata for an error: its code and message, which Tutela writes without customer data.
public func logMetadata(for error: any Error) -> Logger.Metadata {
    guard let error = error as? TutelaError else { return ["error": .string(String(describing: type(of: error)))] }
    return ["error": .string(error.code.rawValue), "reason": .string(error.message)]
}

/// Logs the outcome of a keyring reload: the active version, or why the previous keyring stays.
public func logKeyringReload(_ outcome: Result<Int, any Error>, to logger: Logger) {
    switch outcome {
    case .success(let version):
        logger.notice("keyring reloaded", metadata: ["active_version": .stringConvertible(version)])
    case .failure(let error):
        logger.error("keyring reload failed; the previous keyring stays in force", metadata: logMetadata(for: error))
    }
}

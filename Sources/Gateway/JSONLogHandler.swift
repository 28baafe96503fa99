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
        var line = "{\"time\":"
        JSONText.appendString(Self.timestamp(), to: &line)
        line += ",\"level\":"
        JSONText.appendString(event.level.rawValue, to: &line)
        line += ",\"label\":"
        JSONText.appendString(label, to: &line)
        line += ",\"message\":"
        JSONText.appendString(event.message.description, to: &line)
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        for key in merged.keys.sorted() {
            guard let value = merged[key] else { continue }
            line += ","
            JSONText.appendString(key, to: &line)
            line += ":"
            JSONText.appendString(value.description, to: &line)
        }
        line += "}\n"
        Self.write(line)
    }

    private static let output = Mutex(())

    private static func write(_ line: String) {
        output.withLock { _ in
            var line = line
            line.withUTF8 { bytes in
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

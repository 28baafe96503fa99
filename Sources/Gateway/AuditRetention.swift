import Audit
import Foundation
import Governance
import Logging
import TutelaCore

/// How long audit events stay in the log while `tutela serve` runs, and where older ones go.
///
/// Every request is audited, so without a limit the log grows as long as the server serves.
/// With a retention period, the server moves the events older than it to archive files (the
/// form of `tutela audit archive`, which `tutela audit verify --archive` checks); the log keeps
/// each archived entry's number, time and hash, so it still verifies and proves inclusion.
public struct AuditRetention: Sendable, Equatable {
    /// How long an event stays in the log.
    public var keep: Duration
    /// The directory the archive files go to.
    public var directory: String
    /// How often the server looks for events older than `keep`.
    public var interval: Duration
    /// The most entries one archive file holds; a larger backlog makes several files.
    public var entriesPerFile: Int

    /// Describes a retention period.
    public init(keep: Duration, directory: String, interval: Duration = .seconds(3600), entriesPerFile: Int = 100_000) {
        self.keep = keep
        self.directory = directory
        self.interval = interval
        self.entriesPerFile = max(1, entriesPerFile)
    }
}

/// Moves the audit events older than the retention period to archive files, once an interval,
/// while the server runs.
///
/// Each file is complete and on disk before its events leave the log, and is never written
/// over; an archive that fails (a full disk, a directory that went away) leaves the events in
/// the log, is logged as a warning, and is tried again at the next interval. Every run is
/// audited as `audit.archive`, like the command.
public struct AuditArchiver: Sendable {
    let tutela: Tutela
    let retention: AuditRetention
    let logger: Logger

    /// An archiver for `tutela` under `retention`.
    public init(tutela: Tutela, retention: AuditRetention, logger: Logger) {
        self.tutela = tutela
        self.retention = retention
        self.logger = logger
    }

    /// One archive file made by `archiveExpired`.
    public struct File: Sendable {
        /// Its path.
        public var path: String
        /// The entries it holds.
        public var archive: AuditArchive
    }

    /// Archives every event older than the retention period at `now`, a file per
    /// `entriesPerFile` entries at most.
    /// - Returns: the files made, oldest entries first; none when no event is old enough.
    public func archiveExpired(now: Date = Date()) async throws -> [File] {
        let nowMilliseconds = Int64(now.timeIntervalSince1970 * 1000)
        let keep = retention.keep.components
        let cutoff = nowMilliseconds - keep.seconds * 1000 - keep.attoseconds / 1_000_000_000_000_000
        let stamp = Self.stamp(milliseconds: nowMilliseconds)
        var files: [File] = []
        while true {
            let directory = retention.directory
            let (tutela, limit) = (tutela, retention.entriesPerFile)
            // In a task of its own, which cancelling this one leaves alone: an archive under way
            // when the server stops completes, with its audit event, instead of ending between
            // its file and its event.
            let archive = try await Task {
                try await tutela.archiveAudit(before: cutoff, limit: limit) {
                    Self.path(of: $0, in: directory, stamp: stamp)
                }
            }.value
            guard archive.entries > 0 else { break }
            let path = Self.path(of: archive, in: directory, stamp: stamp)
            files.append(File(path: path, archive: archive))
            logger.notice(
                "audit events archived",
                metadata: [
                    "file": .string(path), "first_entry": .stringConvertible(archive.from),
                    "last_entry": .stringConvertible(archive.to - 1), "entries": .stringConvertible(archive.entries),
                    "released_bytes": .stringConvertible(archive.releasedBytes),
                ]
            )
            // A shorter archive reached the cutoff or the latest checkpoint; a stopping server
            // leaves the rest of a backlog to its next start.
            guard archive.entries == retention.entriesPerFile, !Task.isCancelled else { break }
        }
        return files
    }

    /// Archives at once, then once every interval, until the task is cancelled.
    public func run() async {
        while !Task.isCancelled {
            do {
                _ = try await archiveExpired()
            } catch {
                var metadata = logMetadata(for: error)
                metadata["next_attempt_seconds"] = .stringConvertible(retention.interval.components.seconds)
                logger.warning(
                    "audit archiving failed; the events stay in the log until the next attempt",
                    metadata: metadata
                )
            }
            do {
                try await Task.sleep(for: retention.interval)
            } catch {
                return
            }
        }
    }

    /// `DIRECTORY/audit-FIRST-LAST-STAMP.jsonl`: the entries and the run, so that a range
    /// archived again after a crash (its file made, its events not yet removed) gets a new name.
    static func path(of archive: AuditArchive, in directory: String, stamp: String) -> String {
        "\(directory)/audit-\(archive.from)-\(archive.to - 1)-\(stamp).jsonl"
    }

    /// `20261201T140102Z` for a time: sorts by time and needs no quoting in a shell.
    static func stamp(milliseconds: Int64) -> String {
        String(CalendarDate.formatTimestamp(milliseconds: milliseconds).prefix(19).filter { $0 != "-" && $0 != ":" })
            + "Z"
    }
}

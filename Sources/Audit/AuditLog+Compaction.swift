import Foundation
import GRDB
import TutelaCore

/// How the log's file uses its pages.
public struct AuditLogStorage: Sendable, Encodable, Equatable {
    /// The size of a page in bytes.
    public var pageSize: Int
    /// The pages the file holds.
    public var pages: Int
    /// The pages that hold nothing (those of removed entries), reused by later appends.
    public var freePages: Int
    /// Whether free pages can be given back to the file system a few at a time, while the log
    /// is in use (SQLite's incremental auto-vacuum); a log made before Tutela set this up needs
    /// one `compact(convert: true)` first.
    public var releasesFreePages: Bool

    /// The file's size in bytes, as the log's latest commit leaves it.
    public var bytes: Int { pages * pageSize }
    /// The bytes of its free pages.
    public var freeBytes: Int { freePages * pageSize }

    enum CodingKeys: String, CodingKey {
        case pageSize = "page_size"
        case pages
        case freePages = "free_pages"
        case releasesFreePages = "releases_free_pages"
        case bytes
        case freeBytes = "free_bytes"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(pageSize, forKey: .pageSize)
        try container.encode(pages, forKey: .pages)
        try container.encode(freePages, forKey: .freePages)
        try container.encode(releasesFreePages, forKey: .releasesFreePages)
        try container.encode(bytes, forKey: .bytes)
        try container.encode(freeBytes, forKey: .freeBytes)
    }
}

/// What `AuditLog.compact` did.
public struct AuditCompaction: Sendable, Encodable {
    /// The file before.
    public var before: AuditLogStorage
    /// The file after.
    public var after: AuditLogStorage
    /// Whether the file was rewritten once to release free pages from then on.
    public var converted: Bool

    /// The bytes given back to the file system.
    public var releasedBytes: Int { max(0, before.bytes - after.bytes) }

    enum CodingKeys: String, CodingKey {
        case before, after, converted
        case releasedBytes = "released_bytes"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(before, forKey: .before)
        try container.encode(after, forKey: .after)
        try container.encode(converted, forKey: .converted)
        try container.encode(releasedBytes, forKey: .releasedBytes)
    }
}

/// Giving the pages of archived entries back to the file system.
///
/// Archiving removes entries, and SQLite keeps the pages they held as free pages inside the
/// file, for later appends. Without more, a log that once grew large (a burst of traffic, a
/// long retention period later shortened) kept its largest size for good. A log created by
/// this version uses SQLite's incremental auto-vacuum: after an archive, its free pages are
/// released `releaseChunk` at a time, each step a short transaction of its own (the last pages
/// of the file moved into free ones, then the file cut), so that appends from a running
/// server wait for one step at a time, never for the whole release.
extension AuditLog {
    /// How many pages one transaction of a release gives back (512 KiB of 2 KiB pages).
    ///
    /// A page that holds entries and is moved into a free one costs about 0.1 ms: a step of 256 holds
    /// appends for some 25 ms at most.
    public static let releaseChunk = 256

    /// Sets up a log file that holds no table yet to release free pages incrementally.
    ///
    /// Any other file is left as it is. Must run before the first migration.
    static func prepareNewFile(_ pool: DatabasePool) throws {
        try pool.writeWithoutTransaction { db in
            guard try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") == 0 else { return }
            // In WAL mode the setting takes effect through a VACUUM, of an empty file here.
            try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
            try db.execute(sql: "VACUUM")
        }
    }

    /// How the log's file uses its pages now.
    public var storage: AuditLogStorage {
        get async throws { try await readLog { db in try Self.storage(db) } }
    }

    static func storage(_ db: Database) throws -> AuditLogStorage {
        AuditLogStorage(
            pageSize: try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 0,
            pages: try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0,
            freePages: try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0,
            releasesFreePages: try Int.fetchOne(db, sql: "PRAGMA auto_vacuum") == 2
        )
    }

    /// Gives the log's free pages back to the file system, `chunk` pages per transaction, when
    /// the file allows it (`AuditLogStorage.releasesFreePages`); does nothing otherwise.
    /// - Parameter progress: called with the pages released so far and the free pages there
    ///   were, after each step.
    /// - Returns: the bytes released.
    @discardableResult
    public func releaseFreePages(
        chunk: Int = releaseChunk,
        progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in }
    ) async throws -> Int {
        let start = try await storage
        guard start.releasesFreePages, start.freePages > 0 else { return 0 }
        var released = 0
        while released < start.freePages {
            // Each step is bounded by the free pages it finds: pages freed meanwhile by another
            // archive are left to that archive's own release.
            let step = min(max(1, chunk), start.freePages - released)
            let freed = try await releaseStep(pages: step)
            guard freed > 0 else { break }
            released += freed
            progress(released, start.freePages)
        }
        return released * start.pageSize
    }

    /// Releases at most `pages` free pages in one write transaction.
    /// - Returns: how many it released.
    private func releaseStep(pages: Int) async throws -> Int {
        try await writeLog { db in
            let before = try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
            guard before > 0 else { return 0 }
            try db.execute(sql: "PRAGMA incremental_vacuum(\(pages))")
            return before - (try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0)
        }
    }

    /// Gives the log's free pages back to the file system.
    ///
    /// A log that releases free pages does so a step at a time, alongside appends. One made
    /// before Tutela set that up is rewritten once when `convert` is true (a VACUUM: it needs
    /// free disk space the size of the log, and holds the log while it runs, so that a
    /// running server refuses audited requests meanwhile); without `convert` it is left as it
    /// is, and `converted` is false.
    /// - Parameter progress: called with the pages released so far and the free pages there
    ///   were.
    /// - Throws: `.auditUnavailable` when the rewrite fails (the log is then as it was).
    public func compact(
        convert: Bool,
        progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in }
    ) async throws -> AuditCompaction {
        let before = try await storage
        var converted = false
        if !before.releasesFreePages && convert {
            do {
                try await rewriteReleasingFreePages()
            } catch {
                throw TutelaError(
                    .auditUnavailable,
                    "the audit log could not be rewritten; it is as it was",
                    cause: error
                )
            }
            converted = true
        }
        try await releaseFreePages(progress: progress)
        return AuditCompaction(before: before, after: try await storage, converted: converted)
    }
}

import Foundation
import GRDB
import SQLiteSupport
import Synchronization
import TutelaCore

/// What `AuditLog.archive` moved out of the log.
public struct AuditArchive: Sendable, Encodable {
    /// The first entry archived.
    public var from: Int
    /// One past the last entry archived; `from == to` when there was nothing to archive.
    public var to: Int
    /// The number of entries archived.
    public var entries: Int
    /// The signed checkpoint the archived entries' inclusion proofs refer to.
    public var checkpointSize: Int
    /// The bytes the log's file gave back to the file system once the entries had left it.
    public var releasedBytes = 0

    init(from: Int, to: Int, checkpointSize: Int) {
        self.from = from
        self.to = to
        self.entries = to - from
        self.checkpointSize = checkpointSize
    }

    enum CodingKeys: String, CodingKey {
        case from, to, entries
        case checkpointSize = "checkpoint_size"
        case releasedBytes = "released_bytes"
    }
}

/// The steps of an archive, for progress output.
public enum AuditArchivePhase: String, Sendable {
    /// The signed tree built from every stored leaf hash, for the archived entries' proofs.
    case hashing
    /// The archived entries written out with their proofs.
    case writing
    /// The archived entries removed from the log, a transaction at a time.
    case removing
    /// The pages they held given back to the file system, a transaction at a time.
    case releasing
}

extension AuditLog {
    /// How many of the oldest entries are archived: their events were moved to an archive
    /// file; the log keeps each one's sequence number, time and leaf hash, so that the signed
    /// checkpoints still verify and inclusion proofs can still be made.
    static func archivedSize(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT size FROM archived WHERE id = 1") ?? 0
    }

    /// The number of archived entries.
    public var archivedEntries: Int {
        get async throws { try await readLog { db in try Self.archivedSize(db) } }
    }

    /// Moves the events of the entries older than `cutoff` (milliseconds since 1970) out of the
    /// log, into lines written through `write`.
    ///
    /// The lines are those of `export`: each archived event with its leaf hash and its
    /// inclusion proof against the latest signed checkpoint, then that checkpoint, so that the
    /// archive can be checked alone. `commit` is called once every line is written, and must
    /// make them durable (the file synced and moved into place); only then are the entries
    /// removed from the log, each keeping its number and leaf hash in `archived_leaves`. A
    /// failure before that changes nothing; an archive whose entries were removed has its file.
    ///
    /// The entries archived run from the first one not archived yet up to the first one at or
    /// after `cutoff`, at most `limit` of them, and never past the latest checkpoint (which this
    /// signs first). They leave the log `chunk` entries per transaction, so that appends wait
    /// for one short transaction at a time rather than for the whole archive; a crash in
    /// between leaves the entries removed so far archived, and the rest in the log, which the
    /// next archive takes again.
    /// - Parameters:
    ///   - opening: called with the range once it is known and before the first line; not
    ///     called when there is nothing to archive.
    ///   - progress: called with each phase's work done and in all, now and then and at its end.
    /// - Returns: the range archived, empty when no entry is older than `cutoff`; `write` and
    ///   `commit` are then not called.
    /// - Throws: `.invalidState` when the entries do not match the checkpoint (`tutela audit
    ///   verify` says where) or when another process archived at the same time.
    public func archive(
        before cutoff: Int64,
        limit: Int = .max,
        removingPerTransaction chunk: Int = removalChunk,
        opening: (AuditArchive) throws -> Void = { _ in },
        write: (String) throws -> Void,
        commit: () throws -> Void,
        progress: @escaping @Sendable (AuditArchivePhase, Int, Int) -> Void = { _, _, _ in }
    ) async throws -> AuditArchive {
        do {
            return try await moveOut(
                before: cutoff,
                limit: limit,
                chunk: chunk,
                opening: opening,
                write: write,
                commit: commit,
                progress: progress
            )
        } catch {
            archiving.withLock { $0.failures += 1 }
            throw error
        }
    }

    private func moveOut(
        before cutoff: Int64,
        limit: Int,
        chunk: Int,
        opening: (AuditArchive) throws -> Void,
        write: (String) throws -> Void,
        commit: () throws -> Void,
        progress: @escaping @Sendable (AuditArchivePhase, Int, Int) -> Void
    ) async throws -> AuditArchive {
        let checkpoint = try await latestCheckpoint()
        let size = checkpoint.size
        let (from, to, tree) = try await readLog { db -> (Int, Int, MerkleLevels?) in
            let from = try Self.archivedSize(db)
            let newer = try Int.fetchOne(
                db,
                sql: "SELECT min(seq) FROM entries WHERE seq >= ? AND time_ms >= ?",
                arguments: [from, cutoff]
            )
            let to = max(from, min(size, newer ?? size, from + max(0, min(limit, size))))
            guard to > from else { return (from, to, nil) }
            let levels = try Self.levels(db, size: size, keeping: from..<to) { done in
                progress(.hashing, done, size)
            }
            return (from, to, levels)
        }
        let summary = AuditArchive(from: from, to: to, checkpointSize: size)
        guard let levels = tree else { return summary }
        guard levels.size == size, levels.root == checkpoint.root else {
            throw TutelaError(
                .invalidState,
                "the log's entries do not match its latest checkpoint; run tutela audit verify"
            )
        }
        try opening(summary)
        try await writeLines(from: from, to: to, levels: levels, write: write) { done in
            progress(.writing, done, to - from)
        }
        try write(Self.checkpointLine(checkpoint))
        try commit()
        for start in stride(from: from, to: to, by: max(1, chunk)) {
            let end = min(to, start + max(1, chunk))
            try await writeLog { db in
                guard try Self.archivedSize(db) == start else {
                    throw TutelaError(
                        .invalidState,
                        "another process archived the audit log at the same time; entries from \(start) on were left in it"
                    )
                }
                // The subject rows by key, as the events list them: the table has no index by
                // sequence number, and a pass over all of it held appends up for a fifth of a
                // second in a log of 140,000 entries.
                try db.execute(
                    sql: """
                        DELETE FROM entry_subjects WHERE (subject, seq) IN (
                            SELECT subject.value, entry.seq
                            FROM entries entry, json_each(CAST(entry.event AS TEXT), '$.subjects') subject
                            WHERE entry.seq >= ? AND entry.seq < ?
                        )
                        """,
                    arguments: [start, end]
                )
                try db.execute(
                    sql: """
                        INSERT INTO archived_leaves (seq, leaf) SELECT seq, leaf FROM entries WHERE seq >= ? AND seq < ?;
                        DELETE FROM entries WHERE seq >= ? AND seq < ?;
                        INSERT OR REPLACE INTO archived (id, size) VALUES (1, ?);
                        """,
                    arguments: [start, end, start, end, end]
                )
            }
            archiving.withLock { $0.entries += end - start }
            progress(.removing, end - from, to - from)
        }
        var archived = summary
        // The archive is complete here: a release that fails leaves free pages, which later
        // appends reuse and the next archive or `compact` releases.
        archived.releasedBytes = (try? await releaseFreePages { progress(.releasing, $0, $1) }) ?? 0
        return archived
    }

    /// How many entries one transaction of `archive` removes by default.
    public static let removalChunk = 250

    /// Each of the first `size` entries' leaf hashes, in order: the stored leaf of an archived
    /// entry, the hash of its event for every other.
    static func forEachLeaf(_ db: Database, below size: Int, _ body: (MerkleTree.Hash) -> Void) throws {
        try forEachEntry(db, below: size) { _, event, stored, _ in body(event.map(MerkleTree.leafHash) ?? stored) }
    }

    /// Each of the first `size` stored entries in order, as its number, its event (nil when
    /// archived), its stored leaf and, when `columns` is set, its row, whose columns from 3 on
    /// are `time_ms, kind, principal, action, purpose, decision` (nil when archived; valid
    /// only in the call): the archived ones' leaves, then the entries in the log.
    ///
    /// Two scans in key order one after the other, where one ordered query over both tables
    /// would sort every row, events included, in a temporary tree first.
    static func forEachEntry(
        _ db: Database,
        below size: Int = .max,
        columns: Bool = false,
        _ body: (Int, [UInt8]?, MerkleTree.Hash, Row?) throws -> Void
    ) throws {
        let archived = try Row.fetchCursor(
            db,
            sql: "SELECT seq, leaf FROM archived_leaves WHERE seq < ? ORDER BY seq",
            arguments: [size]
        )
        while let row = try archived.next() { try body(row[0], nil, row.storedBytes(1), nil) }
        let selected =
            columns ? "seq, event, leaf, time_ms, kind, principal, action, purpose, decision" : "seq, event, leaf"
        let entries = try Row.fetchCursor(
            db,
            sql: "SELECT \(selected) FROM entries WHERE seq < ? ORDER BY seq",
            arguments: [size]
        )
        while let row = try entries.next() {
            try body(row[0], row.storedBytes(1), row.storedBytes(2), columns ? row : nil)
        }
    }

    /// The tree of the first `size` entries from their stored leaf hashes, keeping what the
    /// proofs of the entries in `kept` need: every leaf is read, but the memory held is for
    /// `kept` alone.
    ///
    /// The stored leaves are enough here: the caller compares the tree's root with the signed
    /// checkpoint's, and `writeLines` hashes each archived event again and compares it with its
    /// leaf. Hashing every event of the log instead made an hourly archive of a few thousand
    /// events read and hash the whole log.
    /// - Parameter progress: called with the leaves added so far, every 65,536 and at the end.
    static func levels(
        _ db: Database,
        size: Int,
        keeping kept: Range<Int>,
        progress: (Int) -> Void = { _ in }
    ) throws -> MerkleLevels {
        var levels = MerkleLevels(keeping: kept)
        var count = 0
        for table in ["archived_leaves", "entries"] {
            let leaves = try Row.fetchCursor(
                db,
                sql: "SELECT leaf FROM \(table) WHERE seq < ? ORDER BY seq",
                arguments: [size]
            )
            while let row = try leaves.next() {
                levels.append(row.storedBytes(0))
                count += 1
                if count % 65_536 == 0 { progress(count) }
            }
        }
        levels.close()
        progress(count)
        return levels
    }

    /// Writes the entries `from..<to` as export lines, a page at a time, checking each against
    /// the tree's leaves.
    func writeLines(
        from: Int,
        to: Int,
        levels: MerkleLevels,
        write: (String) throws -> Void,
        progress: (Int) -> Void = { _ in }
    ) async throws {
        let pageSize = 1000
        for start in stride(from: from, to: to, by: pageSize) {
            let page = try await readLog { db in
                try Row.fetchAll(
                    db,
                    sql: "SELECT seq, event FROM entries WHERE seq >= ? AND seq < ? ORDER BY seq",
                    arguments: [start, min(start + pageSize, to)]
                ).map { (sequence: $0[0] as Int, event: $0.storedBytes(1)) }
            }
            for (offset, entry) in page.enumerated() {
                let leaf = MerkleTree.leafHash(entry.event)
                guard entry.sequence == start + offset, leaf == levels.leaf(entry.sequence) else {
                    throw TutelaError(
                        .invalidState,
                        "entry \(start + offset) does not match its hash in the signed tree: the log was altered or changed while it was read; run tutela audit verify"
                    )
                }
                var line = "{\"event\":" + String(decoding: entry.event, as: UTF8.self)
                line += ",\"leaf\":\"\(Hex.encode(leaf))\",\"tree_size\":\(levels.size),\"inclusion\":["
                line += levels.inclusionProof(index: entry.sequence).map { "\"\(Hex.encode($0))\"" }.joined(
                    separator: ","
                )
                line += "]}"
                try write(line)
            }
            progress(min(start + pageSize, to) - from)
        }
    }

    /// The last line of an export or archive: the checkpoint its proofs refer to.
    static func checkpointLine(_ checkpoint: Checkpoint) -> String {
        var text = ""
        JSONText.appendString(checkpoint.text, to: &text)
        return "{\"checkpoint\":\(text)}"
    }
}

/// The outcome of checking an archive or export file against the log.
public struct AuditArchiveCheck: Sendable, Encodable {
    /// The event lines read.
    public var entries = 0
    /// The first and one past the last sequence number in the file.
    public var from = 0
    public var to = 0
    /// Plain descriptions of every problem, earliest first (at most 20).
    public var problems: [String] = []

    /// Whether the file checked out.
    public var isValid: Bool { problems.isEmpty }

    enum CodingKeys: String, CodingKey {
        case entries, from, to, problems
        case isValid = "valid"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(isValid, forKey: .isValid)
        try container.encode(entries, forKey: .entries)
        try container.encode(from, forKey: .from)
        try container.encode(to, forKey: .to)
        try container.encode(problems, forKey: .problems)
    }
}

extension AuditLog {
    /// Checks a file written by `archive` or `export`: every event hashes to its leaf, every
    /// leaf is proved by its inclusion path into the root of the checkpoint on the last line,
    /// that checkpoint is signed by this log, the events are numbered one after another, and
    /// each leaf is the one the log keeps for that number.
    ///
    /// The file is read a line at a time and compared with the log a thousand entries at a
    /// time: memory does not grow with the file.
    /// - Throws: `.io` when the file cannot be read.
    public func checkArchive(at path: String) async throws -> AuditArchiveCheck {
        try FileReading.requireReadable(path, role: "the archive")
        guard let file = fopen(path, "r") else { throw TutelaError(.io, "cannot read \(path)") }
        defer { fclose(file) }
        var check = AuditArchiveCheck()
        guard let checkpoint = Self.lastLineCheckpoint(file) else {
            check.problems = [
                "the file does not end with a checkpoint line: it is not an audit archive or it was cut off"
            ]
            return check
        }
        guard checkpoint.isValid(under: publicKey), checkpoint.logID == logID else {
            check.problems = ["the file's checkpoint has a bad signature or belongs to another log"]
            return check
        }
        rewind(file)
        var state = ArchiveCheckState(checkpoint: checkpoint)
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        var number = 0
        while true {
            let length = getline(&line, &capacity, file)
            guard length >= 0, let line else { break }
            number += 1
            var bytes = Array(UnsafeRawBufferPointer(start: line, count: length))
            while bytes.last == UInt8(ascii: "\n") || bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
            if bytes.isEmpty || bytes.starts(with: Array("{\"checkpoint\":".utf8)) { continue }
            state.check(line: bytes, number: number)
            if state.pending.count >= 1000 { try await compareWithLog(&state) }
        }
        try await compareWithLog(&state)
        return state.result
    }

    /// Compares the leaves checked since the last call with those the log keeps.
    private func compareWithLog(_ state: inout ArchiveCheckState) async throws {
        guard let first = state.pending.first?.sequence, let last = state.pending.last?.sequence else { return }
        let (from, to) = (min(first, last), max(first, last) + 1)
        let kept = try await readLog { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT seq, leaf FROM archived_leaves WHERE seq >= ? AND seq < ?
                    UNION ALL SELECT seq, leaf FROM entries WHERE seq >= ? AND seq < ?
                    """,
                arguments: [from, to, from, to]
            ).map { ($0[0] as Int, $0.storedBytes(1)) }
        }
        let byNumber = Dictionary(kept, uniquingKeysWith: { first, _ in first })
        for (sequence, leaf) in state.pending where byNumber[sequence] != leaf {
            state.problem("entry \(sequence) differs from the hash the log keeps for it")
        }
        state.pending = []
    }

    /// The checkpoint on the file's last non-empty line, if that is one.
    private static func lastLineCheckpoint(_ file: UnsafeMutablePointer<FILE>) -> Checkpoint? {
        guard fseeko(file, 0, SEEK_END) == 0 else { return nil }
        let end = ftello(file)
        let start = max(0, end - 16_384)
        guard fseeko(file, start, SEEK_SET) == 0 else { return nil }
        var tail = [UInt8](repeating: 0, count: Int(end - start))
        guard fread(&tail, 1, tail.count, file) == tail.count else { return nil }
        while tail.last == UInt8(ascii: "\n") || tail.last == UInt8(ascii: "\r") { tail.removeLast() }
        let line = tail.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).last ?? []
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
            let text = object["checkpoint"] as? String
        else { return nil }
        return try? Checkpoint(text: text)
    }
}

/// What `checkArchive` has found so far.
private struct ArchiveCheckState {
    let checkpoint: Checkpoint
    var result = AuditArchiveCheck()
    /// Entries checked and not yet compared with the log.
    var pending: [(sequence: Int, leaf: MerkleTree.Hash)] = []
    var previous: Int?

    private static let prefix = Array("{\"event\":".utf8)
    private static let separator = Array(",\"leaf\":\"".utf8)

    init(checkpoint: Checkpoint) {
        self.checkpoint = checkpoint
    }

    mutating func problem(_ text: String) {
        if result.problems.count < 20 { result.problems.append(text) }
    }

    /// Checks one entry line on its own and against the checkpoint.
    mutating func check(line bytes: [UInt8], number: Int) {
        // The event's exact bytes lie between the prefix and the last `,"leaf":"` (quotes inside
        // an event's strings are escaped, so that text cannot occur in it).
        guard bytes.starts(with: Self.prefix), let cut = Self.lastRange(of: Self.separator, in: bytes),
            let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
            let leafText = object["leaf"] as? String, let statedLeaf = Hex.decode(leafText),
            let size = object["tree_size"] as? Int, let pathText = object["inclusion"] as? [String]
        else {
            problem("line \(number) is not an archived entry")
            return
        }
        let event = Array(bytes[Self.prefix.count..<cut])
        guard let sequence = AuditEvent.sequence(inCanonical: event) else {
            problem("line \(number) does not hold a readable event")
            return
        }
        let leaf = MerkleTree.leafHash(event)
        if leaf != statedLeaf { problem("entry \(sequence) was altered: its event no longer hashes to its leaf") }
        let path = pathText.compactMap { Hex.decode($0) }
        let proved =
            size == checkpoint.size && path.count == pathText.count
            && MerkleTree.verifyInclusion(
                leaf: leaf,
                index: sequence,
                size: checkpoint.size,
                proof: path,
                root: checkpoint.root
            )
        if !proved { problem("entry \(sequence) is not proved by the file's checkpoint of size \(checkpoint.size)") }
        if let previous, sequence != previous + 1 {
            problem("entry \(previous + 1) is missing from the file: the next one is \(sequence)")
        }
        if result.entries == 0 { result.from = sequence }
        result.entries += 1
        result.to = sequence + 1
        previous = sequence
        pending.append((sequence, leaf))
    }

    /// Where the last occurrence of `needle` starts in `bytes`.
    private static func lastRange(of needle: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        var start = bytes.count - needle.count
        while start >= 0 {
            if bytes[start..<start + needle.count].elementsEqual(needle) { return start }
            start -= 1
        }
        return nil
    }
}

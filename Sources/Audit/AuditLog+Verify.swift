import Crypto
import Foundation
import GRDB
import SQLiteSupport
import TutelaCore

/// The outcome of verifying the log.
public struct AuditVerification: Sendable, Encodable {
    /// The number of entries examined.
    public var entries: Int
    /// The number of signed checkpoints checked.
    public var checkpoints: Int
    /// The number of newest entries that no stored checkpoint covers yet.
    ///
    /// A running server leaves up to one checkpoint interval of appends, a process that
    /// stopped under load its last ones. They are checked like the others but are protected by
    /// a signature only once the next checkpoint is signed.
    public var unsignedEntries: Int
    /// The number of oldest entries archived: their events are in archive files, and only
    /// their leaf hashes were checked here (against the signed checkpoints).
    public var archivedEntries = 0
    /// The first entry found bad, if any.
    public var firstBadEntry: Int?
    /// Plain descriptions of every problem, earliest first.
    public var problems: [String]

    /// Whether the log verified.
    public var isValid: Bool { problems.isEmpty }

    enum CodingKeys: String, CodingKey {
        case entries, checkpoints, problems
        case unsignedEntries = "unsigned_entries"
        case archivedEntries = "archived_entries"
        case firstBadEntry = "first_bad_entry"
        case isValid = "valid"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(isValid, forKey: .isValid)
        try container.encode(entries, forKey: .entries)
        try container.encode(checkpoints, forKey: .checkpoints)
        try container.encode(unsignedEntries, forKey: .unsignedEntries)
        try container.encode(archivedEntries, forKey: .archivedEntries)
        try container.encodeIfPresent(firstBadEntry, forKey: .firstBadEntry)
        try container.encode(problems, forKey: .problems)
    }
}

/// An inclusion proof of one entry in the tree of a given size.
public struct InclusionProof: Sendable {
    /// The entry's sequence number.
    public var sequence: Int
    /// The tree size the proof is for.
    public var size: Int
    /// The entry's leaf hash.
    public var leaf: [UInt8]
    /// The audit path.
    public var path: [[UInt8]]
    /// The root of the tree of that size.
    public var root: [UInt8]

    /// Whether the proof holds.
    public var isValid: Bool {
        MerkleTree.verifyInclusion(leaf: leaf, index: sequence, size: size, proof: path, root: root)
    }
}

extension AuditLog {
    /// Checks every entry, every stored checkpoint, and optionally a checkpoint kept elsewhere.
    ///
    /// It finds entries changed, deleted, reordered or cut off: a changed entry no longer hashes
    /// to its recorded leaf or no longer fits the signed roots; a deleted one leaves a gap in the
    /// sequence; a moved one carries another sequence number inside its signed bytes; a cut-off
    /// log is shorter than a checkpoint that covers it.
    /// - Parameter progress: called with the entries checked so far and the log's size, every
    ///   `progressStep` entries and at the end.
    public func verify(
        against external: Checkpoint? = nil,
        progress: @escaping @Sendable (_ done: Int, _ total: Int) -> Void = { _, _ in }
    ) async throws -> AuditVerification {
        let (publicKey, logID) = (self.publicKey, self.logID)
        // One pass over the entries in one read transaction, holding none of them: memory does
        // not grow with the log.
        return try await readLog { db in
            // The size the saved state gives, for progress only: the count below is checked.
            let total = try Int.fetchOne(db, sql: "SELECT size FROM state WHERE id = 1") ?? 0
            var checkpoints: [Checkpoint] = []
            var unreadableCheckpoints = 0
            for text in try String.fetchAll(db, sql: "SELECT text FROM checkpoints ORDER BY size") {
                if let checkpoint = try? Checkpoint(text: text) {
                    checkpoints.append(checkpoint)
                } else {
                    unreadableCheckpoints += 1
                }
            }
            let signedSize = checkpoints.map(\.size).max() ?? 0
            if let external { checkpoints.append(external) }
            checkpoints.sort { $0.size < $1.size }
            let wanted = Set(checkpoints.map(\.size))

            var problems: [String] = []
            // An entry that fails on its own is named exactly; a checkpoint mismatch only bounds
            // the range, so it names the range's start unless an exact finding lies inside it.
            var exactBad: Int?
            var rangeBad: Int?
            func flag(_ entry: Int, _ problem: String) {
                if exactBad == nil || entry < (exactBad ?? entry) { exactBad = entry }
                problems.append(problem)
            }
            func flagRange(from start: Int, _ problem: String) {
                if rangeBad == nil || start < (rangeBad ?? start) { rangeBad = start }
                problems.append(problem)
            }
            // An entry's own checks: its bytes hash to its stored leaf, and hold its number.
            func checkContent(_ sequence: Int, event: [UInt8], leaf: MerkleTree.Hash, stored: MerkleTree.Hash) {
                if leaf != stored, problems.count < 20 {
                    flag(sequence, "entry \(sequence) was altered: its content no longer hashes to its leaf")
                }
                // The number inside the signed bytes, read without decoding the whole event: the
                // bytes themselves are checked by their hashes, so decoding them all (a third of
                // the time of verifying) would find nothing more.
                if let inside = AuditEvent.sequence(inCanonical: event) {
                    if inside != sequence, problems.count < 20 {
                        flag(
                            sequence,
                            "entry \(sequence) holds the event numbered \(inside): entries were reordered or moved"
                        )
                    }
                } else if problems.count < 20 {
                    flag(sequence, "entry \(sequence) is not a readable event")
                }
            }
            // The frontier's root at each checkpoint's size, taken as the entries go by.
            var frontier = MerkleFrontier()
            var roots: [Int: MerkleTree.Hash] = [0: MerkleTree.emptyRoot]
            var count = 0
            let archived = try Self.archivedSize(db)
            // The search indexes beside the signed events: each entry's columns, and a customer
            // row for each subject it lists (and no other rows), compared as a whole first.
            var listed = SubjectPairs()
            // An altered event is reported as such; what it lists says nothing of the indexes.
            var alteredEvents = false
            func checkIndexes(_ sequence: Int, event: [UInt8], row: Row?) throws {
                guard let text = AuditEvent.IndexedText(canonical: event) else {
                    // Said already when not even its number could be read.
                    if problems.count < 20, AuditEvent.sequence(inCanonical: event) != nil {
                        flag(sequence, "entry \(sequence) is not a readable event")
                    }
                    return
                }
                if let row, try !text.matches(row, from: 3), problems.count < 20 {
                    flag(
                        sequence,
                        "entry \(sequence)'s search columns (time, kind, principal, action, purpose, decision) differ from its event: they were altered, and searches by them mislead"
                    )
                }
                listed.add(text.distinctSubjects, entry: sequence)
            }
            try Self.forEachEntry(db, columns: true) { sequence, event, stored, row in
                let position = count
                if sequence != position, problems.count < 20 {
                    flag(
                        position,
                        "entry \(position) is missing: the next stored entry is \(sequence) (deleted or cut)"
                    )
                }
                // An archived entry's event is in an archive file: only its stored leaf is here,
                // checked against the signed roots like every other.
                var leaf = stored
                if let event {
                    leaf = MerkleTree.leafHash(event)
                    checkContent(sequence, event: event, leaf: leaf, stored: stored)
                    if leaf == stored {
                        try checkIndexes(sequence, event: event, row: row)
                    } else {
                        alteredEvents = true
                    }
                }
                frontier.append(leaf)
                count += 1
                if wanted.contains(frontier.size) { roots[frontier.size] = frontier.root }
                if count % Self.progressStep == 0 { progress(count, max(total, count)) }
            }
            progress(count, max(total, count))
            if !alteredEvents {
                var indexed = SubjectPairs()
                let rows = try Row.fetchCursor(db, sql: "SELECT subject, seq FROM entry_subjects")
                while let row = try rows.next() {
                    let entry = row.storedInteger(1).map(Int.init) ?? -1
                    try row.withUnsafeData(atIndex: 0) { subject in
                        (subject ?? Data()).withUnsafeBytes { indexed.add($0, entry: entry) }
                    }
                }
                if indexed != listed {
                    for (entry, problem) in try Self.customerIndexProblems(db) {
                        if let entry { flag(entry, problem) } else { problems.append(problem) }
                    }
                }
            }
            for _ in 0..<unreadableCheckpoints { problems.append("a stored checkpoint is unreadable") }
            var lastGoodSize = 0
            var mismatched = 0
            for checkpoint in checkpoints {
                let origin = checkpoint == external ? "the given checkpoint" : "the stored checkpoint"
                guard checkpoint.isValid(under: publicKey), checkpoint.logID == logID else {
                    problems.append(
                        "\(origin) of size \(checkpoint.size) has a bad signature or belongs to another log"
                    )
                    continue
                }
                guard checkpoint.size <= count, let root = roots[checkpoint.size] else {
                    flagRange(
                        from: count,
                        "the log ends after \(count) entries, but \(origin) signs \(checkpoint.size): entries \(count) to \(checkpoint.size - 1) were cut off"
                    )
                    continue
                }
                if root == checkpoint.root {
                    lastGoodSize = max(lastGoodSize, checkpoint.size)
                } else {
                    mismatched += 1
                    if mismatched == 1 {
                        flagRange(
                            from: lastGoodSize,
                            "entries \(lastGoodSize) to \(checkpoint.size - 1) do not match \(origin) of size \(checkpoint.size): one of them was changed"
                        )
                    }
                }
            }
            if mismatched > 1 { problems.append("\(mismatched - 1) later checkpoints do not match either") }
            var firstBad = exactBad ?? rangeBad
            if let exact = exactBad, let range = rangeBad, exact < range { firstBad = exact }
            return AuditVerification(
                entries: count,
                checkpoints: checkpoints.count,
                unsignedEntries: max(0, count - signedSize),
                archivedEntries: min(archived, count),
                firstBadEntry: firstBad,
                problems: problems
            )
        }
    }

    /// Where the customer index and the entries disagree.
    ///
    /// Each entry that lacks a row for a subject it lists (up to 20), then the rows that no entry
    /// lists, as a count. A lookup per subject, run only when the two did not match as a whole.
    private static func customerIndexProblems(_ db: Database) throws -> [(entry: Int?, problem: String)] {
        var found: [(Int?, String)] = []
        var indexed = 0
        let row = try db.cachedStatement(sql: "SELECT 1 FROM entry_subjects WHERE subject = ? AND seq = ?")
        let entries = try Row.fetchCursor(db, sql: "SELECT seq, event FROM entries ORDER BY seq")
        while let entry = try entries.next() {
            let sequence: Int = entry[0]
            guard let text = AuditEvent.IndexedText(canonical: entry.storedBytes(1)) else { continue }
            for subject in text.distinctSubjects {
                if try Bool.fetchOne(row, arguments: [String(decoding: subject, as: UTF8.self), sequence]) == true {
                    indexed += 1
                } else if found.count < 20 {
                    found.append(
                        (
                            sequence,
                            "entry \(sequence) is missing from the customer index: a search by customer does not find it"
                        )
                    )
                }
            }
        }
        let rows = try Int.fetchOne(db, sql: "SELECT count(*) FROM entry_subjects") ?? 0
        if rows > indexed {
            found.append(
                (
                    nil,
                    "the customer index holds \(rows - indexed) row\(rows - indexed == 1 ? "" : "s") that no entry lists: rows were added, and a search by customer shows entries not about them"
                )
            )
        }
        return found
    }

    /// Entries checked between two progress reports of `verify`.
    static let progressStep = 65_536

    /// The inclusion proof of an entry in the tree of `size` entries (default: the whole log).
    public func inclusionProof(sequence: Int, size: Int? = nil) async throws -> InclusionProof {
        let leaves = try await leafHashes()
        let treeSize = size ?? leaves.count
        guard treeSize <= leaves.count, sequence >= 0, sequence < treeSize else {
            throw TutelaError(
                .invalidInput,
                "entry \(sequence) is not in a tree of \(treeSize) entries (the log has \(leaves.count))"
            )
        }
        let slice = leaves[0..<treeSize]
        return InclusionProof(
            sequence: sequence,
            size: treeSize,
            leaf: leaves[sequence],
            path: MerkleTree.inclusionProof(index: sequence, leaves: slice),
            root: MerkleTree.root(slice)
        )
    }

    /// The consistency proof between two tree sizes, with both roots.
    public func consistencyProof(
        from oldSize: Int,
        to newSize: Int
    ) async throws -> (oldRoot: [UInt8], newRoot: [UInt8], path: [[UInt8]]) {
        let leaves = try await leafHashes()
        guard oldSize > 0, oldSize <= newSize, newSize <= leaves.count else {
            throw TutelaError(.invalidInput, "sizes must satisfy 0 < old <= new <= \(leaves.count)")
        }
        let slice = leaves[0..<newSize]
        return (
            MerkleTree.root(leaves[0..<oldSize]), MerkleTree.root(slice),
            MerkleTree.consistencyProof(oldSize: oldSize, leaves: slice)
        )
    }

    /// Every entry's leaf hash, computed from its stored bytes (the bytes are not kept), or the
    /// stored one of an archived entry.
    private func leafHashes() async throws -> [MerkleTree.Hash] {
        try await readLog { db in
            var leaves: [MerkleTree.Hash] = []
            try Self.forEachLeaf(db, below: Int.max) { leaves.append($0) }
            return leaves
        }
    }
}

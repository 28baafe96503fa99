import Foundation
import GRDB
import TutelaCore

extension AuditLog {
    /// Writes every entry that is not archived as one JSON line with its leaf hash and
    /// inclusion proof against the latest checkpoint, then the checkpoint itself, so that the
    /// file can be checked alone (archived entries are in the archive files, in the same form).
    ///
    /// Two passes over the log: the first keeps only the tree's hashes that the exported
    /// entries' proofs use (about 64 bytes an exported entry), the second reads the entries a
    /// page at a time as it writes them.
    /// - Parameter write: receives each line (without the line break).
    /// - Returns: the checkpoint the proofs refer to.
    /// - Throws: `.invalidState` when the entries do not match the checkpoint or change while
    ///   they are written (`tutela audit verify` says where).
    @discardableResult
    public nonisolated func export(_ write: (String) throws -> Void) async throws -> Checkpoint {
        let checkpoint = try await latestCheckpoint()
        let size = checkpoint.size
        let (archived, levels) = try await readLog { db in
            let archived = min(try Self.archivedSize(db), size)
            return (archived, try Self.levels(db, size: size, keeping: archived..<size))
        }
        guard levels.size == size, levels.root == checkpoint.root else {
            throw TutelaError(
                .invalidState,
                "the log's entries do not match its latest checkpoint; run tutela audit verify"
            )
        }
        try await writeLines(from: archived, to: size, levels: levels, write: write)
        try write(Self.checkpointLine(checkpoint))
        return checkpoint
    }
}

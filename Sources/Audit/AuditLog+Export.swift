import Foundation
import GRDB
import TutelaCore

extension AuditLog {
    /// Writes every entry as one JSON line with its leaf hash and inclusion proof against the
    /// latest checkpoint, then the checkpoint itself, so that the file can be checked alone.
    ///
    /// Two passes over the log: the first keeps only the tree's hashes (about 64 bytes an
    /// entry), the second reads the entries a page at a time as it writes them.
    /// - Parameter write: receives each line (without the line break).
    /// - Returns: the checkpoint the proofs refer to.
    /// - Throws: `.invalidState` when the entries do not match the checkpoint or change while
    ///   they are written (`tutela audit verify` says where).
    @discardableResult
    public nonisolated func export(_ write: (String) throws -> Void) async throws -> Checkpoint {
        let checkpoint = try await latestCheckpoint()
        let size = checkpoint.size
        let levels = try await readLog { db in
            var levels = MerkleLevels()
            let events = try Row.fetchCursor(
                db,
                sql: "SELECT event FROM entries WHERE seq < ? ORDER BY seq",
                arguments: [size]
            )
            while let row = try events.next() { levels.append(MerkleTree.leafHash(Array(row[0] as Data))) }
            levels.close()
            return levels
        }
        guard levels.size == size, levels.root == checkpoint.root else {
            throw TutelaError(
                .invalidState,
                "the log's entries do not match its latest checkpoint; run tutela audit verify"
            )
        }
        let pageSize = 1000
        for start in stride(from: 0, to: size, by: pageSize) {
            let page = try await readLog { db in
                try Row.fetchAll(
                    db,
                    sql: "SELECT seq, event FROM entries WHERE seq >= ? AND seq < ? ORDER BY seq",
                    arguments: [start, min(start + pageSize, size)]
                ).map { (sequence: $0[0] as Int, event: Array($0[1] as Data)) }
            }
            for (offset, entry) in page.enumerated() {
                let leaf = MerkleTree.leafHash(entry.event)
                guard entry.sequence == start + offset, leaf == levels.leaf(entry.sequence) else {
                    throw TutelaError(.invalidState, "the log changed while it was exported; run tutela audit verify")
                }
                var line = "{\"event\":" + String(decoding: entry.event, as: UTF8.self)
                line += ",\"leaf\":\"\(Hex.encode(leaf))\",\"tree_size\":\(size),\"inclusion\":["
                line += levels.inclusionProof(index: entry.sequence).map { "\"\(Hex.encode($0))\"" }.joined(
                    separator: ","
                )
                line += "]}"
                try write(line)
            }
        }
        var text = ""
        JSONText.appendString(checkpoint.text, to: &text)
        try write("{\"checkpoint\":\(text)}")
        return checkpoint
    }
}

import Foundation
import TutelaCore

extension AuditLog {
    /// Writes every entry as one JSON line with its leaf hash and inclusion proof against the
    /// latest checkpoint, then the checkpoint itself, so that the file can be checked alone.
    /// - Parameter write: receives each line (without the line break).
    /// - Returns: the checkpoint the proofs refer to.
    @discardableResult
    public nonisolated func export(_ write: (String) throws -> Void) async throws -> Checkpoint {
        let checkpoint = try await latestCheckpoint()
        let (entries, _) = try await snapshot()
        let covered = entries.prefix(checkpoint.size)
        let leaves = covered.map { MerkleTree.leafHash($0.event) }
        let proofs = MerkleTree.allInclusionProofs(leaves[...])
        for (index, entry) in covered.enumerated() {
            var line = "{\"event\":" + String(decoding: entry.event, as: UTF8.self)
            line += ",\"leaf\":\"\(Hex.encode(leaves[index]))\",\"tree_size\":\(checkpoint.size),\"inclusion\":["
            line += proofs[index].map { "\"\(Hex.encode($0))\"" }.joined(separator: ",")
            line += "]}"
            try write(line)
        }
        var text = ""
        JSONText.appendString(checkpoint.text, to: &text)
        try write("{\"checkpoint\":\(text)}")
        return checkpoint
    }
}

import Crypto
import Foundation
import TutelaCore

/// A signed statement of the log's size and root at one moment.
///
/// Text form, one item per line, then a blank line and the signature:
///
/// ```
/// tutela-audit-checkpoint/v1
/// <log id>
/// <tree size>
/// <root hash, base64>
/// <time, milliseconds since the epoch>
///
/// — <Ed25519 signature, base64, over the five lines above, each ending in "\n">
/// ```
public struct Checkpoint: Sendable, Hashable {
    /// The log's id (the keyring id of the installation).
    public let logID: String
    /// The number of entries it covers.
    public let size: Int
    /// The Merkle root of those entries.
    public let root: [UInt8]
    /// When it was made, milliseconds since the epoch.
    public let time: Int64
    /// The Ed25519 signature over `body`.
    public let signature: [UInt8]

    static let header = "tutela-audit-checkpoint/v1"

    /// The signed text.
    public var body: String {
        "\(Self.header)\n\(logID)\n\(size)\n\(Data(root).base64EncodedString())\n\(time)\n"
    }

    /// The full text form.
    public var text: String {
        body + "\n\u{2014} " + Data(signature).base64EncodedString() + "\n"
    }

    /// Makes and signs a checkpoint.
    public static func sign(
        logID: String,
        size: Int,
        root: [UInt8],
        time: Int64,
        key: Curve25519.Signing.PrivateKey
    ) throws -> Checkpoint {
        let unsigned = Checkpoint(logID: logID, size: size, root: root, time: time, signature: [])
        let signature = try key.signature(for: Data(unsigned.body.utf8))
        return Checkpoint(logID: logID, size: size, root: root, time: time, signature: Array(signature))
    }

    /// Whether the signature holds under a public key.
    public func isValid(under key: Curve25519.Signing.PublicKey) -> Bool {
        key.isValidSignature(signature, for: Data(body.utf8))
    }

    /// Parses the text form.
    /// - Throws: `TutelaError` with `.invalidInput` when it is not a checkpoint.
    public init(text: String) throws {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 7, lines[0] == Self.header, let size = Int(lines[2]), size >= 0,
            let root = Data(base64Encoded: lines[3]), root.count == 32, let time = Int64(lines[4]), lines[5].isEmpty,
            lines[6].hasPrefix("\u{2014} "), let signature = Data(base64Encoded: String(lines[6].dropFirst(2)))
        else {
            throw TutelaError(.invalidInput, "not a Tutela audit checkpoint")
        }
        self.init(logID: lines[1], size: size, root: Array(root), time: time, signature: Array(signature))
    }

    init(logID: String, size: Int, root: [UInt8], time: Int64, signature: [UInt8]) {
        self.logID = logID
        self.size = size
        self.root = root
        self.time = time
        self.signature = signature
    }
}

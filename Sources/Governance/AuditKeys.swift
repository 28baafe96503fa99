import Crypto
import Foundation
import KeyManagement
import TutelaCore

/// The audit log's keys, derived from the keyring's audit secret: the Ed25519 key that signs
/// checkpoints and the HMAC key under which customer identifiers enter the log.
struct AuditKeys: Sendable {
    let signingKey: Curve25519.Signing.PrivateKey
    private let subjectKey: KeyedHMAC

    init(keyring: Keyring) throws {
        let root = keyring.secret(.audit)
        let seed = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: root,
            info: Data("tutela.audit.signing.v1".utf8),
            outputByteCount: 32
        )
        signingKey = try seed.withUnsafeBytes { try Curve25519.Signing.PrivateKey(rawRepresentation: $0) }
        let hmacKey = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: root,
            info: Data("tutela.audit.subject.v1".utf8),
            outputByteCount: 32
        )
        subjectKey = KeyedHMAC(key: hmacKey)
    }

    /// The searchable, non-revealing form of a customer id: HMAC-SHA256, first 16 bytes, hex.
    func subjectHMAC(_ subject: String) -> String {
        subjectKey.authenticationCode(subject).withUnsafeBytes { Hex.encode($0.prefix(16)) }
    }

    /// The public key's file form: `ed25519:` and the 32 raw bytes in base64.
    var publicKeyText: String {
        "ed25519:" + signingKey.publicKey.rawRepresentation.base64EncodedString() + "\n"
    }

    /// Reads a public key file's form.
    static func publicKey(fromText text: String) throws -> Curve25519.Signing.PublicKey {
        let trimmed = text.trimmingWhitespace
        guard trimmed.hasPrefix("ed25519:"), let raw = Data(base64Encoded: String(trimmed.dropFirst(8))) else {
            throw TutelaError(.invalidInput, "not an audit verification key (ed25519:BASE64)")
        }
        return try Curve25519.Signing.PublicKey(rawRepresentation: raw)
    }
}

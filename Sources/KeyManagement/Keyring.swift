import Crypto
import TutelaCore

/// Secrets other than key-encryption keys that the keyring holds, each for one use.
public enum KeyPurpose: String, Sendable, Codable, CaseIterable {
    /// Root of the AES-SIV keys for deterministic tokens.
    case tokens
    /// Root of the HMAC keys for blind indexes.
    case blindIndex = "blind-index"
    /// Root of the audit log's HMAC key for identifiers.
    case audit
    /// Root of the per-purpose keyed pseudonyms.
    case pseudonyms

    /// The secret's length in bytes.
    var byteCount: Int { self == .tokens ? 64 : 32 }
}

/// One version of the key-encryption key.
public struct KeyVersion: Sendable {
    /// The version number, from 1 up.
    public let version: Int
    /// The lifecycle state.
    public internal(set) var state: KeyVersionState
    /// Creation time, milliseconds since the epoch.
    public let createdAt: Int64
    /// The key; nil once destroyed.
    let material: SymmetricKey?
}

/// The versioned key-encryption keys and the purpose secrets, in memory.
///
/// A keyring is a value: load it with `KeyringFile`, change it, save it back. The master key
/// protects it at rest; nothing in it is ever printed.
public struct Keyring: Sendable {
    /// A random identifier, bound into every wrapped data key's context by the data directory.
    public let id: String
    /// The key-encryption-key versions, oldest first.
    public internal(set) var versions: [KeyVersion]
    var secrets: [KeyPurpose: SymmetricKey]

    init(id: String, versions: [KeyVersion], secrets: [KeyPurpose: SymmetricKey]) {
        self.id = id
        self.versions = versions
        self.secrets = secrets
    }

    /// A new keyring with one active key-encryption key and fresh purpose secrets.
    public static func generate(now: Int64) -> Keyring {
        var secrets: [KeyPurpose: SymmetricKey] = [:]
        for purpose in KeyPurpose.allCases {
            secrets[purpose] = SymmetricKey(size: SymmetricKeySize(bitCount: purpose.byteCount * 8))
        }
        let first = KeyVersion(version: 1, state: .active, createdAt: now, material: SymmetricKey(size: .bits256))
        return Keyring(id: randomIdentifier(), versions: [first], secrets: secrets)
    }

    /// The version that wraps new data keys.
    public var activeVersion: Int {
        versions.last { $0.state == .active }?.version ?? 0
    }

    /// The key of a version, for unwrapping.
    /// - Throws: `TutelaError` with `.keyDisabled`, `.keyDestroyed` or `.notFound`.
    public func key(version: Int) throws -> SymmetricKey {
        guard let entry = versions.first(where: { $0.version == version }) else {
            throw TutelaError(.notFound, "key version \(version) is not in the keyring")
        }
        switch entry.state {
        case .disabled:
            throw TutelaError(.keyDisabled, "key version \(version) is disabled; run 'tutela keys enable \(version)'")
        case .destroyed:
            throw TutelaError(.keyDestroyed, "key version \(version) was destroyed")
        case .active, .decryptOnly:
            guard let material = entry.material else {
                throw TutelaError(.keyringCorrupted, "key version \(version) has no key material")
            }
            return material
        }
    }

    /// The root secret for one purpose.
    public func secret(_ purpose: KeyPurpose) -> SymmetricKey {
        // Every keyring is generated with all purposes, and the loader refuses one without them.
        secrets[purpose] ?? SymmetricKey(data: [UInt8]())
    }

    /// Adds a new active version; the previous active one becomes decrypt-only.
    /// - Returns: the new version number.
    @discardableResult
    public mutating func rotate(now: Int64) throws -> Int {
        let next = (versions.map(\.version).max() ?? 0) + 1
        if let index = versions.firstIndex(where: { $0.state == .active }) {
            try versions[index].state.apply(.supersede, version: versions[index].version)
        }
        versions.append(
            KeyVersion(version: next, state: .active, createdAt: now, material: SymmetricKey(size: .bits256))
        )
        return next
    }

    /// Applies an administrative event to a version.
    ///
    /// `destroy` drops the key material for good;
    /// the caller must first make sure that nothing is wrapped under that version.
    public mutating func apply(_ event: KeyVersionState.Event, toVersion version: Int) throws {
        guard let index = versions.firstIndex(where: { $0.version == version }) else {
            throw TutelaError(.notFound, "key version \(version) is not in the keyring")
        }
        var entry = versions[index]
        try entry.state.apply(event, version: version)
        if entry.state == .destroyed {
            entry = KeyVersion(version: entry.version, state: .destroyed, createdAt: entry.createdAt, material: nil)
        }
        versions[index] = entry
    }
}

/// A random 128-bit identifier in lowercase hex.
func randomIdentifier() -> String {
    SymmetricKey(size: .bits128).withUnsafeBytes { Hex.encode($0) }
}

import Crypto
import Foundation
import TutelaCore

/// A data subject's data key, in the clear, in memory only.
public struct DataKey: Sendable {
    /// A random 16-byte identifier, written into every ciphertext it makes.
    public let id: [UInt8]
    /// The AES-256 key.
    let key: SymmetricKey
    /// The key set up for AES-256-GCM.
    let cipher: AES256GCM

    init(id: [UInt8], key: SymmetricKey, nonceBase: [UInt8]? = nil) throws {
        self.id = id
        self.key = key
        self.cipher = try key.withUnsafeBytes { try AES256GCM(key: $0, nonceBase: nonceBase) }
    }
}

/// A data key as it is stored: sealed under one key-encryption-key version.
public struct WrappedDataKey: Sendable, Hashable {
    /// The data key's identifier.
    public let id: [UInt8]
    /// The key-encryption-key version it is wrapped under.
    public let kekVersion: Int
    /// Nonce, ciphertext and tag of AES-256-GCM.
    public let sealed: [UInt8]

    /// Creates a stored form.
    public init(id: [UInt8], kekVersion: Int, sealed: [UInt8]) {
        self.id = id
        self.kekVersion = kekVersion
        self.sealed = sealed
    }
}

/// Where a field value lives; bound into its ciphertext as authenticated data.
public struct FieldContext: Sendable {
    /// The tenant.
    public let tenant: String
    /// The collection.
    public let collection: String
    /// The record id.
    public let recordID: String
    /// The field name.
    public var field: String
    // The encoding of everything but the field, computed once per record.
    private let prefix: [UInt8]

    /// Creates a context.
    public init(tenant: String, collection: String, recordID: String, field: String) {
        self.tenant = tenant
        self.collection = collection
        self.recordID = recordID
        self.field = field
        var prefix: [UInt8] = []
        prefix.reserveCapacity(48 + tenant.utf8.count + collection.utf8.count + recordID.utf8.count)
        for part in ["tutela.field.v1", tenant, collection, recordID] { Self.append(part, to: &prefix) }
        self.prefix = prefix
    }

    /// The same place in another tenant, collection or record (for tests and diagnostics).
    public func moved(tenant: String? = nil, collection: String? = nil, recordID: String? = nil) -> FieldContext {
        FieldContext(
            tenant: tenant ?? self.tenant,
            collection: collection ?? self.collection,
            recordID: recordID ?? self.recordID,
            field: field
        )
    }

    /// The length-prefixed encoding authenticated with the ciphertext.
    var encoded: [UInt8] {
        var bytes = prefix
        Self.append(field, to: &bytes)
        return bytes
    }

    private static func append(_ part: String, to bytes: inout [UInt8]) {
        FieldValue.append(UInt32(part.utf8.count), to: &bytes)
        bytes.append(contentsOf: part.utf8)
    }
}

/// Envelope encryption: data keys wrapped by the keyring, field values sealed by data keys.
///
/// A field ciphertext is self-describing:
///
/// | bytes | content |
/// |---|---|
/// | 1 | format version (1) |
/// | 1 | algorithm (1 = AES-256-GCM) |
/// | 16 | data key id |
/// | 4 | data key version, big-endian |
/// | 8 | context fingerprint: FNV-1a 64 of the field context, big-endian |
/// | 12 | nonce |
/// | n | ciphertext |
/// | 16 | tag |
///
/// The first 30 bytes (the header) and the field context are the authenticated data, so a
/// ciphertext moved to another tenant, collection, record or field fails to open; the
/// fingerprint lets the error say that it was moved rather than altered.
public struct EnvelopeCipher: Sendable {
    /// The current ciphertext format version.
    public static let formatVersion: UInt8 = 1
    /// The algorithm id of AES-256-GCM.
    public static let aes256GCM: UInt8 = 1
    static let headerLength = 30
    static let overhead = headerLength + 12 + 16

    /// The keyring that wraps data keys.
    public let keyring: Keyring
    /// The tenant bound into every context.
    public let tenant: String
    // The key-encryption keys that can unwrap, set up once.
    private let keyEncryptionKeys: [Int: AES256GCM]

    /// Creates a cipher over a keyring for one tenant.
    public init(keyring: Keyring, tenant: String) {
        self.keyring = keyring
        self.tenant = tenant
        var ciphers: [Int: AES256GCM] = [:]
        for entry in keyring.versions where entry.state.canUnwrap {
            ciphers[entry.version] = try? keyring.key(version: entry.version).withUnsafeBytes { try AES256GCM(key: $0) }
        }
        self.keyEncryptionKeys = ciphers
    }

    private func keyEncryptionKey(version: Int) throws -> AES256GCM {
        // Ask the keyring first so that a disabled or destroyed version gives its own error.
        _ = try keyring.key(version: version)
        guard let cipher = keyEncryptionKeys[version] else {
            throw TutelaError(.crypto, "key version \(version) could not be set up")
        }
        return cipher
    }

    // MARK: Data keys

    /// Creates a fresh data key for a subject and wraps it under the active version.
    public func makeDataKey(forSubject subject: String) throws -> (DataKey, WrappedDataKey) {
        // One draw for id, key and nonce base: each draw from the DRBG has a fixed cost.
        var random = try AES256GCM.randomBytes(16 + 32 + AES256GCM.nonceLength)
        defer { Self.zero(&random) }
        let dataKey = try DataKey(
            id: Array(random[0..<16]),
            key: SymmetricKey(data: random[16..<48]),
            nonceBase: Array(random[48...])
        )
        return (dataKey, try wrap(dataKey, subject: subject, version: keyring.activeVersion))
    }

    /// Opens a wrapped data key.
    /// - Throws: `.keyDisabled`, `.keyDestroyed`, or `.authenticationFailed` when it was altered or
    ///   belongs to another subject.
    public func unwrap(_ wrapped: WrappedDataKey, subject: String) throws -> DataKey {
        let kek = try keyEncryptionKey(version: wrapped.kekVersion)
        do {
            var bytes = try kek.open(
                wrapped.sealed[...],
                authenticating: wrapContext(subject, wrapped.id, wrapped.kekVersion)
            )
            defer { Self.zero(&bytes) }
            return try DataKey(id: wrapped.id, key: SymmetricKey(data: bytes))
        } catch {
            throw TutelaError(.authenticationFailed, "a data key failed authentication: its stored form was altered")
        }
    }

    /// Re-wraps a data key under the active version; the data key itself does not change, so no
    /// field has to be re-encrypted.
    public func rewrap(_ wrapped: WrappedDataKey, subject: String) throws -> WrappedDataKey {
        try wrap(try unwrap(wrapped, subject: subject), subject: subject, version: keyring.activeVersion)
    }

    private func wrap(_ dataKey: DataKey, subject: String, version: Int) throws -> WrappedDataKey {
        let kek = try keyEncryptionKey(version: version)
        var sealed: [UInt8] = []
        sealed.reserveCapacity(AES256GCM.nonceLength + 32 + AES256GCM.tagLength)
        var bytes = dataKey.key.withUnsafeBytes { Array($0) }
        defer { Self.zero(&bytes) }
        try kek.seal(bytes, authenticating: wrapContext(subject, dataKey.id, version), appendingTo: &sealed)
        return WrappedDataKey(id: dataKey.id, kekVersion: version, sealed: sealed)
    }

    private func wrapContext(_ subject: String, _ id: [UInt8], _ version: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        for part in ["tutela.datakey.v1", keyring.id, tenant, subject] {
            FieldValue.append(UInt32(part.utf8.count), to: &bytes)
            bytes.append(contentsOf: part.utf8)
        }
        bytes.append(contentsOf: id)
        FieldValue.append(UInt32(version), to: &bytes)
        return bytes
    }

    // MARK: Field values

    /// Encrypts one field value under a data key.
    public func seal(_ value: FieldValue, with dataKey: DataKey, context: FieldContext) throws -> [UInt8] {
        var plaintext: [UInt8] = []
        plaintext.reserveCapacity(32)
        value.encode(into: &plaintext)
        defer { Self.zero(&plaintext) }
        let contextBytes = context.encoded
        var output: [UInt8] = [Self.formatVersion, Self.aes256GCM]
        output.reserveCapacity(Self.overhead + plaintext.count)
        output.append(contentsOf: dataKey.id)
        FieldValue.append(UInt32(1), to: &output)
        FieldValue.append(Self.fingerprint(contextBytes), to: &output)
        try dataKey.cipher.seal(plaintext, authenticating: output + contextBytes, appendingTo: &output)
        return output
    }

    /// Reads the data key id from a ciphertext header without decrypting.
    public static func dataKeyID(of ciphertext: [UInt8]) -> [UInt8]? {
        guard ciphertext.count >= overhead, ciphertext[0] == formatVersion, ciphertext[1] == aes256GCM else {
            return nil
        }
        return Array(ciphertext[2..<18])
    }

    /// Decrypts one field value.
    /// - Throws: `TutelaError` naming the record and field: `.ciphertextMisplaced` when the
    ///   ciphertext was made for another place or another subject's key, `.ciphertextTampered`
    ///   when it was altered.
    public func open(_ ciphertext: [UInt8], with dataKey: DataKey, context: FieldContext) throws -> FieldValue {
        // Built only for an error message: most opens succeed.
        var place: String { "\(context.collection)/\(context.recordID) field '\(context.field)'" }
        guard ciphertext.count >= Self.overhead else {
            throw TutelaError(.ciphertextTampered, "the ciphertext of \(place) is truncated")
        }
        guard ciphertext[0] == Self.formatVersion, ciphertext[1] == Self.aes256GCM else {
            throw TutelaError(.ciphertextTampered, "the ciphertext of \(place) has an unknown format or algorithm")
        }
        let header = ciphertext[0..<Self.headerLength]
        let contextBytes = context.encoded
        guard header[18..<22].elementsEqual([0, 0, 0, 1]) else {
            throw TutelaError(.ciphertextTampered, "the ciphertext of \(place) names an unknown data key version")
        }
        guard header[2..<18].elementsEqual(dataKey.id) else {
            throw TutelaError(
                .ciphertextMisplaced,
                "the ciphertext of \(place) was made under another subject's data key"
            )
        }
        var expected: [UInt8] = []
        FieldValue.append(Self.fingerprint(contextBytes), to: &expected)
        guard header[22..<30].elementsEqual(expected) else {
            throw TutelaError(.ciphertextMisplaced, "the ciphertext of \(place) belongs to another record or field")
        }
        do {
            var plaintext = try dataKey.cipher.open(
                ciphertext[Self.headerLength...],
                authenticating: Array(header) + contextBytes
            )
            defer { Self.zero(&plaintext) }
            var offset = 0
            let value = try FieldValue.decode(from: plaintext, at: &offset)
            guard offset == plaintext.count else { throw TutelaError(.invalidInput, "trailing bytes") }
            return value
        } catch {
            throw TutelaError(.ciphertextTampered, "the ciphertext of \(place) failed authentication: it was altered")
        }
    }

    /// FNV-1a 64 of the context.
    ///
    /// It only tells "moved" from "altered" in error messages; the
    /// context itself is authenticated by AES-GCM, so a forged fingerprint gains nothing.
    static func fingerprint(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    static func zero(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            memset(base, 0, buffer.count)
        }
    }
}

import COpenSSL
import Crypto
import Foundation
import TutelaCore

/// A data subject's data key, in memory only.
///
/// The clear key lives only in its OpenSSL context, which is cleansed when freed: it is set up
/// from the bytes it was made or unwrapped from, and those are zeroed at once.
public struct DataKey: Sendable {
    /// A random 16-byte identifier, written into every ciphertext it makes.
    public let id: [UInt8]
    /// The key set up for AES-256-GCM.
    let cipher: AES256GCM

    init(id: [UInt8], key: UnsafeRawBufferPointer, nonceBase: [UInt8]? = nil) throws {
        self.id = id
        self.cipher = try AES256GCM(key: key, nonceBase: nonceBase)
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
    /// The field name; empty for a sealed group.
    public var field: String
    // The fields of a sealed group; nil for a single field.
    private var group: FieldGroup?
    // The encoding of everything but the field, and its FNV-1a state, computed once per record.
    private let prefix: [UInt8]
    private let prefixHash: UInt64

    // The encoding of the context's label, the start of every prefix, and its FNV-1a state.
    private static let label: [UInt8] = {
        var bytes: [UInt8] = []
        append("tutela.field.v1", to: &bytes)
        return bytes
    }()
    private static let labelHash = EnvelopeCipher.fingerprint(label)

    /// Creates a context.
    public init(tenant: String, collection: String, recordID: String, field: String) {
        self.tenant = tenant
        self.collection = collection
        self.recordID = recordID
        self.field = field
        var prefix = Self.label
        prefix.reserveCapacity(Self.label.count + 12 + tenant.utf8.count + collection.utf8.count + recordID.utf8.count)
        Self.append(tenant, to: &prefix)
        Self.append(collection, to: &prefix)
        Self.append(recordID, to: &prefix)
        self.prefixHash = EnvelopeCipher.fingerprint(prefix[Self.label.count...], continuing: Self.labelHash)
        self.prefix = prefix
    }

    /// Creates the context of a sealed group: several fields of one record in one ciphertext,
    /// bound to the record and to the names and order of its fields.
    public init(tenant: String, collection: String, recordID: String, group: FieldGroup) {
        self.init(tenant: tenant, collection: collection, recordID: recordID, field: "")
        self.group = group
    }

    /// The same place in another tenant, collection or record (for tests and diagnostics).
    public func moved(tenant: String? = nil, collection: String? = nil, recordID: String? = nil) -> FieldContext {
        var moved = FieldContext(
            tenant: tenant ?? self.tenant,
            collection: collection ?? self.collection,
            recordID: recordID ?? self.recordID,
            field: field
        )
        moved.group = group
        return moved
    }

    /// The record and field, as error messages name them.
    ///
    /// A field name comes from the stored bytes, which may have been altered: its control
    /// characters are escaped.
    var place: String {
        guard let group else { return "\(collection)/\(recordID) field '\(field.escapingControlCharacters)'" }
        let names = group.names.map { "'\($0.escapingControlCharacters)'" }
        return "\(collection)/\(recordID) fields \(names.joined(separator: ", "))"
    }

    /// Replaces `bytes` with the length-prefixed encoding authenticated with the ciphertext,
    /// reusing its storage.
    /// - Returns: the encoding's fingerprint (see `EnvelopeCipher.fingerprint`).
    func encode(into bytes: inout [UInt8]) -> UInt64 {
        bytes.removeAll(keepingCapacity: true)
        bytes.append(contentsOf: prefix)
        let start = bytes.count
        if let group {
            bytes.append(contentsOf: group.encoding)
        } else {
            Self.append(field, to: &bytes)
        }
        return EnvelopeCipher.fingerprint(bytes[start...], continuing: prefixHash)
    }

    static func append(_ part: String, to bytes: inout [UInt8]) {
        FieldValue.append(UInt32(part.utf8.count), to: &bytes)
        bytes.append(contentsOf: part.utf8)
    }
}

/// The names of the fields sealed together in a group, in order, with their encoding in a
/// group's context: made once and shared by every record that seals the same fields.
public struct FieldGroup: Sendable {
    /// The field names, in order.
    public let names: [String]
    let encoding: [UInt8]

    /// Encodes the names.
    public init(_ names: [String]) {
        self.names = names
        var encoding: [UInt8] = []
        encoding.reserveCapacity(14 + names.reduce(0) { $0 + 4 + $1.utf8.count })
        // A marker no field name can be (names are identifiers), then every name.
        FieldContext.append("*group", to: &encoding)
        FieldValue.append(UInt32(names.count), to: &encoding)
        for name in names { FieldContext.append(name, to: &encoding) }
        self.encoding = encoding
    }
}

/// Working memory for sealing or opening the fields of one record, reused from field to field
/// so that each field costs no allocation of its own.
///
/// The clear bytes it holds are zeroed after every field.
public struct FieldBuffers {
    var context: [UInt8] = []
    var associatedData: [UInt8] = []
    var plaintext: [UInt8] = []

    /// Creates empty buffers.
    public init() {
        // The others are sized by their first use: opening needs no associated-data buffer.
        context.reserveCapacity(128)
    }
}

/// Envelope encryption: data keys wrapped by the keyring, field values sealed by data keys
/// (a record's sealed fields together, as one group, or a single value such as an audit detail).
///
/// A ciphertext is self-describing:
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
public final class EnvelopeCipher: Sendable {
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
    // The start of every data key's associated data: its label, the keyring id and the tenant.
    private let wrapContextPrefix: [UInt8]
    // Data keys unwrapped recently; a new keyring state comes with a new cipher and an empty cache.
    private let dataKeys: DataKeyCache

    /// How many unwrapped data keys a cipher keeps by default: about 3 KB each with their
    /// OpenSSL contexts, 47 MB when full (measured with an export that kept every key).
    public static let defaultCachedDataKeys = 16_384
    /// How long an unwrapped data key is kept after its unwrap.
    public static let cachedDataKeyMaxAge = Duration.seconds(300)

    /// Creates a cipher over a keyring for one tenant.
    /// - Parameter cachedDataKeys: how many unwrapped data keys to keep for later reads of the
    ///   same subjects (see `unwrap`); 0 unwraps every time.
    public init(keyring: Keyring, tenant: String, cachedDataKeys: Int = EnvelopeCipher.defaultCachedDataKeys) {
        self.keyring = keyring
        self.tenant = tenant
        self.dataKeys = DataKeyCache(capacity: cachedDataKeys, maxAge: Self.cachedDataKeyMaxAge)
        var ciphers: [Int: AES256GCM] = [:]
        for entry in keyring.versions where entry.state.canUnwrap {
            ciphers[entry.version] = try? keyring.key(version: entry.version).withUnsafeBytes { try AES256GCM(key: $0) }
        }
        self.keyEncryptionKeys = ciphers
        var prefix: [UInt8] = []
        for part in ["tutela.datakey.v1", keyring.id, tenant] { FieldContext.append(part, to: &prefix) }
        self.wrapContextPrefix = prefix
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

    /// The random bytes one data key is made of: its id, its key and its nonce base.
    public static let dataKeyRandomLength = 16 + 32 + AES256GCM.nonceLength

    /// Creates a fresh data key for a subject and wraps it under the active version.
    public func makeDataKey(forSubject subject: String) throws -> (DataKey, WrappedDataKey) {
        // One draw for id, key and nonce base: each draw from the kernel has a fixed cost.
        var random = try AES256GCM.randomBytes(Self.dataKeyRandomLength)
        defer { Self.zero(&random) }
        return try random.withUnsafeBytes { try makeDataKey(forSubject: subject, random: $0) }
    }

    /// Creates a data key for a subject from `dataKeyRandomLength` fresh random bytes, which the
    /// caller draws (several keys' worth at once) and zeroes; wraps it under the active version.
    public func makeDataKey(
        forSubject subject: String,
        random: UnsafeRawBufferPointer
    ) throws -> (DataKey, WrappedDataKey) {
        guard random.count == Self.dataKeyRandomLength else {
            throw TutelaError(.invalidInput, "a data key is made of \(Self.dataKeyRandomLength) random bytes")
        }
        let id = Array(random[0..<16])
        let key = UnsafeRawBufferPointer(rebasing: random[16..<48])
        let dataKey = try DataKey(id: id, key: key, nonceBase: Array(random[48...]))
        var bytes = Array(key)
        defer { Self.zero(&bytes) }
        return (dataKey, try wrap(bytes, id: id, subject: subject, version: keyring.activeVersion))
    }

    /// Opens a wrapped data key.
    ///
    /// A key unwrapped from the same stored form for the same subject in the last
    /// `cachedDataKeyMaxAge` is taken from memory. The caller passes the wrapped key it just
    /// read from the store, so a subject erased or re-wrapped since (by any process) is never
    /// opened with a kept key.
    /// - Throws: `.keyDisabled`, `.keyDestroyed`, or `.authenticationFailed` when it was altered or
    ///   belongs to another subject.
    /// - Parameter keep: false for a scan over many subjects: a kept key is still used, but one
    ///   unwrapped here is not kept, so that the scan neither pushes out the keys of the
    ///   subjects read often nor fills memory with keys read once.
    public func unwrap(_ wrapped: WrappedDataKey, subject: String, keep: Bool = true) throws -> DataKey {
        if let key = dataKeys.key(subject: subject, wrapped: wrapped) { return key }
        let key = try unwrapUncached(wrapped, subject: subject)
        if keep { dataKeys.insert(subject: subject, wrapped: wrapped, key: key) }
        return key
    }

    /// The data key kept unwrapped for `subject`, if any: only for a reader that has found one
    /// of the subject's records, which exist only while the subject's data key does.
    public func keptDataKey(subject: String) -> DataKey? {
        dataKeys.key(subject: subject)
    }

    /// Drops the unwrapped data key kept for `subject`, once the subject is erased.
    public func forgetDataKey(subject: String) {
        dataKeys.remove(subject: subject)
    }

    /// The number of unwrapped data keys kept.
    public var cachedDataKeyCount: Int { dataKeys.count }

    private func unwrapUncached(_ wrapped: WrappedDataKey, subject: String) throws -> DataKey {
        var bytes = try unwrapBytes(wrapped, subject: subject)
        defer { Self.zero(&bytes) }
        return try bytes.withUnsafeBytes { try DataKey(id: wrapped.id, key: $0) }
    }

    /// The clear bytes of a wrapped data key; the caller zeroes them.
    private func unwrapBytes(_ wrapped: WrappedDataKey, subject: String) throws -> [UInt8] {
        // Made only for an error: unwrapping is on the path of every read that finds no kept key.
        func owner() -> String { "the data key of subject '\(subject.escapingControlCharacters)'" }
        let kek: AES256GCM
        do {
            kek = try keyEncryptionKey(version: wrapped.kekVersion)
        } catch let error as TutelaError where error.code == .notFound {
            // Not a missing record: the stored key and this keyring do not belong together.
            throw TutelaError(
                .authenticationFailed,
                "\(owner()) names key version \(wrapped.kekVersion), which this keyring does not have: the "
                    + "keyring is older than the data or not the one it was written with, or the stored key "
                    + "was altered"
            )
        } catch let error as TutelaError {
            throw TutelaError(error.code, "\(owner()) cannot be unwrapped: \(error.message)")
        }
        do {
            return try kek.open(
                wrapped.sealed[...],
                authenticating: wrapContext(subject, wrapped.id, wrapped.kekVersion)
            )
        } catch {
            throw TutelaError(.authenticationFailed, "\(owner()) failed authentication: its stored form was altered")
        }
    }

    /// Re-wraps a data key under the active version; the data key itself does not change, so no
    /// field has to be re-encrypted.
    public func rewrap(_ wrapped: WrappedDataKey, subject: String) throws -> WrappedDataKey {
        // Straight from one wrapping to the next: no cipher is set up, and nothing is kept.
        var bytes = try unwrapBytes(wrapped, subject: subject)
        defer { Self.zero(&bytes) }
        return try wrap(bytes, id: wrapped.id, subject: subject, version: keyring.activeVersion)
    }

    private func wrap(_ key: [UInt8], id: [UInt8], subject: String, version: Int) throws -> WrappedDataKey {
        let kek = try keyEncryptionKey(version: version)
        var sealed: [UInt8] = []
        sealed.reserveCapacity(AES256GCM.nonceLength + 32 + AES256GCM.tagLength)
        try kek.seal(key, authenticating: wrapContext(subject, id, version), appendingTo: &sealed)
        return WrappedDataKey(id: id, kekVersion: version, sealed: sealed)
    }

    private func wrapContext(_ subject: String, _ id: [UInt8], _ version: Int) -> [UInt8] {
        var bytes = wrapContextPrefix
        bytes.reserveCapacity(bytes.count + 4 + subject.utf8.count + id.count + 4)
        FieldContext.append(subject, to: &bytes)
        bytes.append(contentsOf: id)
        FieldValue.append(UInt32(version), to: &bytes)
        return bytes
    }

    // MARK: Field values

    /// Encrypts one field value under a data key.
    public func seal(_ value: FieldValue, with dataKey: DataKey, context: FieldContext) throws -> [UInt8] {
        var buffers = FieldBuffers()
        var output: [UInt8] = []
        try seal(value, with: dataKey, context: context, buffers: &buffers, appendingTo: &output)
        return output
    }

    /// Encrypts one field value under a data key, appending the ciphertext to `output`.
    public func seal(
        _ value: FieldValue,
        with dataKey: DataKey,
        context: FieldContext,
        buffers: inout FieldBuffers,
        appendingTo output: inout [UInt8]
    ) throws {
        buffers.plaintext.removeAll(keepingCapacity: true)
        value.encode(into: &buffers.plaintext)
        defer { Self.zero(&buffers.plaintext) }
        try seal(
            buffers.plaintext,
            with: dataKey,
            context: context,
            contextBytes: &buffers.context,
            associatedData: &buffers.associatedData,
            appendingTo: &output
        )
    }

    /// Encrypts values already in their binary form (a sealed group's, one after the other)
    /// under a data key, appending the ciphertext to `output`; the caller zeroes `encoded`.
    public func seal(
        encoded: [UInt8],
        with dataKey: DataKey,
        context: FieldContext,
        buffers: inout FieldBuffers,
        appendingTo output: inout [UInt8]
    ) throws {
        try seal(
            encoded,
            with: dataKey,
            context: context,
            contextBytes: &buffers.context,
            associatedData: &buffers.associatedData,
            appendingTo: &output
        )
    }

    private func seal(
        _ plaintext: [UInt8],
        with dataKey: DataKey,
        context: FieldContext,
        contextBytes: inout [UInt8],
        associatedData: inout [UInt8],
        appendingTo output: inout [UInt8]
    ) throws {
        let fingerprint = context.encode(into: &contextBytes)
        let start = output.count
        // Grow geometrically: reserving the exact size per field would copy a record's payload
        // once per sealed field.
        let needed = start + Self.overhead + plaintext.count
        if output.capacity < needed { output.reserveCapacity(max(needed, 2 * output.capacity)) }
        output.append(Self.formatVersion)
        output.append(Self.aes256GCM)
        output.append(contentsOf: dataKey.id)
        FieldValue.append(UInt32(1), to: &output)
        FieldValue.append(fingerprint, to: &output)
        associatedData.removeAll(keepingCapacity: true)
        associatedData.append(contentsOf: output[start...])
        associatedData.append(contentsOf: contextBytes)
        do {
            try dataKey.cipher.seal(plaintext, authenticating: associatedData, appendingTo: &output)
        } catch {
            output.removeSubrange(start...)
            throw error
        }
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
        var buffers = FieldBuffers()
        return try open(ciphertext[...], with: dataKey, context: context, buffers: &buffers)
    }

    /// Decrypts one field value, using `buffers` as working memory.
    /// - Throws: as `open(_:with:context:)`.
    public func open(
        _ ciphertext: ArraySlice<UInt8>,
        with dataKey: DataKey,
        context: FieldContext,
        buffers: inout FieldBuffers
    ) throws -> FieldValue {
        try openEncoded(ciphertext, with: dataKey, context: context, buffers: &buffers)
        defer { Self.zero(&buffers.plaintext) }
        do {
            var offset = 0
            let value = try FieldValue.decode(from: buffers.plaintext, at: &offset)
            guard offset == buffers.plaintext.count else { throw TutelaError(.invalidInput, "trailing bytes") }
            return value
        } catch {
            throw TutelaError(.ciphertextTampered, "the ciphertext of \(context.place) holds no valid value")
        }
    }

    /// Decrypts a ciphertext of values in their binary form (a sealed group) and lets `body`
    /// read them; the clear bytes are zeroed when it returns or throws.
    /// - Throws: as `open(_:with:context:)`, or what `body` throws.
    public func open<Result>(
        encoded ciphertext: ArraySlice<UInt8>,
        with dataKey: DataKey,
        context: FieldContext,
        buffers: inout FieldBuffers,
        reading body: (inout ByteReader) throws -> Result
    ) throws -> Result {
        try openEncoded(ciphertext, with: dataKey, context: context, buffers: &buffers)
        defer { Self.zero(&buffers.plaintext) }
        // The reader shares the buffer; it must be gone before the buffer is zeroed in place.
        func read(_ plaintext: [UInt8]) throws -> Result {
            var reader = ByteReader(bytes: plaintext)
            return try body(&reader)
        }
        return try read(buffers.plaintext)
    }

    private func openEncoded(
        _ ciphertext: ArraySlice<UInt8>,
        with dataKey: DataKey,
        context: FieldContext,
        buffers: inout FieldBuffers
    ) throws {
        let base = ciphertext.startIndex
        guard ciphertext.count >= Self.overhead else {
            throw TutelaError(.ciphertextTampered, "the ciphertext of \(context.place) is truncated")
        }
        guard ciphertext[base] == Self.formatVersion, ciphertext[base + 1] == Self.aes256GCM else {
            throw TutelaError(
                .ciphertextTampered,
                "the ciphertext of \(context.place) has an unknown format or algorithm"
            )
        }
        guard Self.readUInt32(ciphertext, at: base + 18) == 1 else {
            throw TutelaError(
                .ciphertextTampered,
                "the ciphertext of \(context.place) names an unknown data key version"
            )
        }
        guard dataKey.id.count == 16, Self.bytesEqual(ciphertext, at: base + 2, dataKey.id) else {
            throw TutelaError(
                .ciphertextMisplaced,
                "the ciphertext of \(context.place) was made under another subject's data key"
            )
        }
        let fingerprint = context.encode(into: &buffers.context)
        guard Self.readUInt32(ciphertext, at: base + 22) == UInt32(truncatingIfNeeded: fingerprint >> 32),
            Self.readUInt32(ciphertext, at: base + 26) == UInt32(truncatingIfNeeded: fingerprint)
        else {
            throw TutelaError(
                .ciphertextMisplaced,
                "the ciphertext of \(context.place) belongs to another record or field"
            )
        }
        do {
            try dataKey.cipher.open(
                ciphertext[(base + Self.headerLength)...],
                authenticating: ciphertext[base..<(base + Self.headerLength)],
                buffers.context,
                into: &buffers.plaintext
            )
        } catch {
            throw TutelaError(
                .ciphertextTampered,
                "the ciphertext of \(context.place) failed authentication: it was altered"
            )
        }
    }

    private static func readUInt32(_ bytes: ArraySlice<UInt8>, at index: Int) -> UInt32 {
        var value: UInt32 = 0
        for offset in 0..<4 { value = value << 8 | UInt32(bytes[index + offset]) }
        return value
    }

    private static func bytesEqual(_ bytes: ArraySlice<UInt8>, at index: Int, _ other: [UInt8]) -> Bool {
        var difference: UInt8 = 0
        for offset in 0..<other.count { difference |= bytes[index + offset] ^ other[offset] }
        return difference == 0
    }

    /// FNV-1a 64 of the context.
    ///
    /// It only tells "moved" from "altered" in error messages; the
    /// context itself is authenticated by AES-GCM, so a forged fingerprint gains nothing.
    static func fingerprint(_ bytes: [UInt8]) -> UInt64 {
        fingerprint(bytes[...], continuing: 0xcbf2_9ce4_8422_2325)
    }

    /// FNV-1a 64 continued over more bytes from an earlier state.
    static func fingerprint(_ bytes: ArraySlice<UInt8>, continuing state: UInt64) -> UInt64 {
        var hash = state
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    /// Overwrites every byte of `bytes` with zero, with OpenSSL's cleanse, which the compiler
    /// cannot drop as a store to memory about to be freed.
    public static func zero(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            OPENSSL_cleanse(base, buffer.count)
        }
    }
}

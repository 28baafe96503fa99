import Crypto
import Foundation
import Synchronization
import TutelaCore

/// Blind indexes: HMAC-SHA256 of a normalized value under a per-field key derived with HKDF, so
/// a customer can be found by email or phone without decrypting the table and without the index
/// of one field matching the index of another.
public final class BlindIndexer: Sendable {
    private let root: SymmetricKey
    private let tenant: String
    private let fieldKeys = Mutex<[String: SymmetricKey]>([:])

    /// Creates an indexer from the keyring's blind-index secret.
    public init(keyring: Keyring, tenant: String) {
        self.root = keyring.secret(.blindIndex)
        self.tenant = tenant
    }

    /// The index digest of a value of a field.
    /// - Parameters:
    ///   - value: the normalized value.
    ///   - collection: the collection name.
    ///   - field: the field name.
    public func digest(of value: String, collection: String, field: String) -> [UInt8] {
        let key = fieldKey(collection: collection, field: field)
        return Array(HMAC<SHA256>.authenticationCode(for: Data(value.utf8), using: key))
    }

    private func fieldKey(collection: String, field: String) -> SymmetricKey {
        let name = collection + "\u{0}" + field
        if let key = fieldKeys.withLock({ $0[name] }) { return key }
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: root,
            info: Data("tutela.blind-index.v1|\(tenant)|\(collection)|\(field)".utf8),
            outputByteCount: 32
        )
        fieldKeys.withLock { $0[name] = key }
        return key
    }
}

/// Deterministic tokens.
///
/// AES-256-SIV under a key derived per domain, for values that must join or be looked up while
/// staying encrypted. The same value in the same domain always gives the
/// same token; different domains give unrelated tokens.
public final class DeterministicTokenizer: Sendable {
    /// The prefix that marks a token.
    public static let prefix = "tok1_"
    private let root: SymmetricKey
    private let tenant: String
    private let ciphers = Mutex<[String: AESSIV]>([:])

    /// Creates a tokenizer from the keyring's token secret.
    public init(keyring: Keyring, tenant: String) {
        self.root = keyring.secret(.tokens)
        self.tenant = tenant
    }

    /// The token of a value in a domain (for example `customers.email`).
    public func token(for value: String, domain: String) throws -> String {
        // A leading format byte keeps the plaintext non-empty for the empty string.
        let sealed = try cipher(for: domain).seal([1] + Array(value.utf8), authenticating: [Array(domain.utf8)])
        return Self.prefix + Base64URL.encode(sealed)
    }

    /// Turns a token back into its value.
    ///
    /// This is re-identification: callers must be authorized
    /// for it and must audit it.
    /// - Throws: `TutelaError` with `.invalidInput` for a malformed token and
    ///   `.authenticationFailed` for a token of another domain or key.
    public func reidentify(_ token: String, domain: String) throws -> String {
        guard token.hasPrefix(Self.prefix), let sealed = Base64URL.decode(token.dropFirst(Self.prefix.count)) else {
            throw TutelaError(.invalidInput, "not a Tutela token")
        }
        let plaintext = try cipher(for: domain).open(sealed, authenticating: [Array(domain.utf8)])
        guard plaintext.first == 1 else { throw TutelaError(.invalidInput, "unknown token format") }
        return String(decoding: plaintext.dropFirst(), as: UTF8.self)
    }

    private func cipher(for domain: String) throws -> AESSIV {
        if let cipher = ciphers.withLock({ $0[domain] }) { return cipher }
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: root,
            info: Data("tutela.token.v1|\(tenant)|\(domain)".utf8),
            outputByteCount: 64
        )
        let cipher = try key.withUnsafeBytes { try AESSIV(key: $0) }
        ciphers.withLock { $0[domain] = cipher }
        return cipher
    }
}

/// URL-safe base64 without padding.
public enum Base64URL {
    /// Encodes bytes.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Decodes text; nil when it is not URL-safe base64.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while standard.count % 4 != 0 { standard += "=" }
        return Data(base64Encoded: standard).map(Array.init)
    }
}

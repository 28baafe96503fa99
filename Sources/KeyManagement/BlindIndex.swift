import Crypto
import Foundation
import Synchronization
import TutelaCore

/// Blind indexes: HMAC-SHA256 of a normalized value under a per-field key derived with HKDF, so
/// a customer can be found by email or phone without decrypting the table and without the index
/// of one field matching the index of another.
public final class BlindIndexer: Sendable {
    private let keys: DerivedHMACKeys

    /// Creates an indexer from the keyring's blind-index secret.
    public init(keyring: Keyring, tenant: String) {
        self.keys = DerivedHMACKeys(root: keyring.secret(.blindIndex), label: "tutela.blind-index.v1|\(tenant)")
    }

    /// Bytes of a digest: the first 16 of the HMAC-SHA256 code (128 bits).
    ///
    /// An index entry is a digest and a record id; the shorter the digest, the smaller the
    /// index that every insert writes into at a random place. Two values of a field share a
    /// digest with a chance of one in 2^128 per pair, and each field has its own key, so a
    /// digest of one field never stands for another's.
    public static let digestLength = 16

    /// The index digest of a value of a field.
    /// - Parameters:
    ///   - value: the normalized value.
    ///   - collection: the collection name.
    ///   - field: the field name.
    public func digest(of value: String, collection: String, field: String) -> [UInt8] {
        Self.digest(of: value, key: key(collection: collection, field: field))
    }

    /// The key of a field's blind index, for `digest(of:key:)`.
    public func key(collection: String, field: String) -> KeyedHMAC {
        keys.key(named: "\(collection)|\(field)")
    }

    /// The index digest of a normalized value under a field's key.
    public static func digest(of value: String, key: KeyedHMAC) -> [UInt8] {
        Array(key.authenticationCode(value).prefix(digestLength))
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

/// URL-safe base64 without padding (RFC 4648 section 5).
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, character) in alphabet.enumerated() { table[Int(character)] = UInt8(index) }
        return table
    }()

    /// Encodes bytes.
    public static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count * 4 + 2) / 3)
        var index = 0
        while index + 3 <= bytes.count {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            for shift in [18, 12, 6, 0] { output.append(alphabet[Int(chunk >> UInt32(shift) & 0x3F)]) }
            index += 3
        }
        let rest = bytes.count - index
        if rest > 0 {
            var chunk = UInt32(bytes[index]) << 16
            if rest == 2 { chunk |= UInt32(bytes[index + 1]) << 8 }
            for shift in [18, 12, 6].prefix(rest + 1) { output.append(alphabet[Int(chunk >> UInt32(shift) & 0x3F)]) }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes text; nil when it is not unpadded URL-safe base64.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 != 1 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(input.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for character in input {
            let value = values[Int(character)]
            guard value != 0xFF else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        // Leftover bits must be zero, so that every byte string has exactly one encoding.
        guard accumulator & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return output
    }
}

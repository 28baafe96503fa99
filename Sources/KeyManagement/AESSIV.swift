import COpenSSL
import TutelaCore

/// AES-SIV (RFC 5297) deterministic authenticated encryption through OpenSSL's libcrypto.
///
/// The same plaintext under the same key and associated data always gives the same output, which
/// is what tokens that must join or be looked up need. The output is the 16-byte synthetic IV
/// followed by the ciphertext, as in RFC 5297.
public final class AESSIV: Sendable {
    /// The length of the synthetic IV that precedes the ciphertext.
    public static let tagLength = 16

    // The cipher handle is immutable after init and OpenSSL allows concurrent use of a fetched
    // EVP_CIPHER; the key bytes are never mutated until deinit zeroes them.
    private nonisolated(unsafe) let cipher: OpaquePointer
    private nonisolated(unsafe) let key: UnsafeMutableBufferPointer<UInt8>

    /// Creates a cipher for a 32-, 48- or 64-byte key (AES-128-, 192- or 256-SIV).
    /// - Throws: `TutelaError` with code `.invalidInput` for another key size, `.crypto` when
    ///   OpenSSL does not provide the algorithm.
    public init(key: some Collection<UInt8>) throws {
        let name: String
        switch key.count {
        case 32: name = "AES-128-SIV"
        case 48: name = "AES-192-SIV"
        case 64: name = "AES-256-SIV"
        default: throw TutelaError(.invalidInput, "an AES-SIV key has 32, 48 or 64 bytes, not \(key.count)")
        }
        guard let cipher = EVP_CIPHER_fetch(nil, name, nil) else {
            throw TutelaError(.crypto, "OpenSSL does not provide \(name)")
        }
        self.cipher = cipher
        self.key = .allocate(capacity: key.count)
        _ = self.key.initialize(from: key)
    }

    deinit {
        OPENSSL_cleanse(key.baseAddress, key.count)
        key.deallocate()
        EVP_CIPHER_free(cipher)
    }

    /// Encrypts deterministically.
    /// - Parameters:
    ///   - plaintext: the bytes to protect.
    ///   - associatedData: the associated data components, each authenticated separately.
    /// - Returns: the synthetic IV followed by the ciphertext.
    /// - Throws: `TutelaError` with `.invalidInput` for an empty plaintext, which OpenSSL's SIV
    ///   cannot process (callers such as the tokenizer prefix a type byte).
    public func seal(_ plaintext: [UInt8], authenticating associatedData: [[UInt8]] = []) throws -> [UInt8] {
        guard !plaintext.isEmpty else { throw TutelaError(.invalidInput, "AES-SIV needs a non-empty plaintext") }
        guard let context = EVP_CIPHER_CTX_new() else { throw TutelaError(.crypto, "out of memory") }
        defer { EVP_CIPHER_CTX_free(context) }
        guard EVP_EncryptInit_ex(context, cipher, nil, key.baseAddress, nil) == 1 else {
            throw TutelaError(.crypto, "AES-SIV initialization failed")
        }
        var outLength: Int32 = 0
        for component in associatedData {
            let status = component.withUnsafeBufferPointer {
                EVP_EncryptUpdate(context, nil, &outLength, $0.baseAddress, Int32($0.count))
            }
            guard status == 1 else { throw TutelaError(.crypto, "AES-SIV associated data was refused") }
        }
        var output = [UInt8](repeating: 0, count: Self.tagLength + plaintext.count)
        let status = output.withUnsafeMutableBufferPointer { out in
            plaintext.withUnsafeBufferPointer { input in
                EVP_EncryptUpdate(
                    context,
                    out.baseAddress.map { $0 + Self.tagLength },
                    &outLength,
                    input.baseAddress,
                    Int32(input.count)
                )
            }
        }
        guard status == 1 else { throw TutelaError(.crypto, "AES-SIV encryption failed") }
        var finalLength: Int32 = 0
        guard EVP_EncryptFinal_ex(context, nil, &finalLength) == 1 else {
            throw TutelaError(.crypto, "AES-SIV encryption failed")
        }
        let tagStatus = output.withUnsafeMutableBufferPointer {
            EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, Int32(Self.tagLength), $0.baseAddress)
        }
        guard tagStatus == 1 else { throw TutelaError(.crypto, "AES-SIV tag retrieval failed") }
        return output
    }

    /// Decrypts and verifies.
    /// - Throws: `TutelaError` with code `.authenticationFailed` when the input was altered or the
    ///   key or associated data differ.
    public func open(_ sealed: [UInt8], authenticating associatedData: [[UInt8]] = []) throws -> [UInt8] {
        guard sealed.count > Self.tagLength else {
            throw TutelaError(.authenticationFailed, "an AES-SIV ciphertext is shorter than its tag")
        }
        guard let context = EVP_CIPHER_CTX_new() else { throw TutelaError(.crypto, "out of memory") }
        defer { EVP_CIPHER_CTX_free(context) }
        guard EVP_DecryptInit_ex(context, cipher, nil, key.baseAddress, nil) == 1 else {
            throw TutelaError(.crypto, "AES-SIV initialization failed")
        }
        var tag = Array(sealed.prefix(Self.tagLength))
        let setTag = tag.withUnsafeMutableBufferPointer {
            EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, Int32(Self.tagLength), $0.baseAddress)
        }
        guard setTag == 1 else { throw TutelaError(.crypto, "AES-SIV tag was refused") }
        var outLength: Int32 = 0
        for component in associatedData {
            let status = component.withUnsafeBufferPointer {
                EVP_DecryptUpdate(context, nil, &outLength, $0.baseAddress, Int32($0.count))
            }
            guard status == 1 else { throw TutelaError(.crypto, "AES-SIV associated data was refused") }
        }
        let ciphertextLength = sealed.count - Self.tagLength
        var output = [UInt8](repeating: 0, count: ciphertextLength)
        let status = output.withUnsafeMutableBufferPointer { out in
            sealed.withUnsafeBufferPointer { input in
                EVP_DecryptUpdate(
                    context,
                    out.baseAddress,
                    &outLength,
                    input.baseAddress.map { $0 + Self.tagLength },
                    Int32(ciphertextLength)
                )
            }
        }
        var finalLength: Int32 = 0
        guard status == 1, EVP_DecryptFinal_ex(context, nil, &finalLength) == 1 else {
            output.withUnsafeMutableBufferPointer { OPENSSL_cleanse($0.baseAddress, $0.count) }
            throw TutelaError(.authenticationFailed, "AES-SIV authentication failed")
        }
        return output
    }
}

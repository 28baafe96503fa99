import COpenSSL
import Crypto

/// HMAC-SHA256 (RFC 2104) under one key, through OpenSSL's SHA-256, with the hash states after
/// the key's inner and outer blocks computed once.
///
/// Blind indexes, pseudonyms and audit subject ids each compute an HMAC of a short message
/// under a long-lived key, on the write and lookup paths. A keyed `HMAC<SHA256>` of swift-crypto
/// copies its state into new storage on every use and reads messages byte by byte through a
/// generic collection; here a use copies two plain C structs and hashes two blocks. The test
/// suite checks the output against RFC 4231's vectors and against swift-crypto.
public struct KeyedHMAC: @unchecked Sendable {
    // Hash states after absorbing key ⊕ ipad and key ⊕ opad. Plain values, read-only after init:
    // every use works on a copy.
    private let inner: SHA256_CTX
    private let outer: SHA256_CTX

    /// The length of a code in bytes.
    public static let length = 32

    /// Sets up a key.
    public init(key: SymmetricKey) {
        self = key.withUnsafeBytes { KeyedHMAC(keyBytes: $0) }
    }

    private init(keyBytes: UnsafeRawBufferPointer) {
        var block = [UInt8](repeating: 0, count: 64)
        if keyBytes.count > 64 {
            // A key longer than a block is replaced by its hash.
            var context = SHA256_CTX()
            SHA256_Init(&context)
            SHA256_Update(&context, keyBytes.baseAddress, keyBytes.count)
            block.withUnsafeMutableBufferPointer { _ = SHA256_Final($0.baseAddress, &context) }
            OPENSSL_cleanse(&context, MemoryLayout<SHA256_CTX>.size)
        } else {
            for (index, byte) in keyBytes.enumerated() { block[index] = byte }
        }
        var inner = SHA256_CTX()
        var outer = SHA256_CTX()
        SHA256_Init(&inner)
        SHA256_Init(&outer)
        var padded = block.map { $0 ^ 0x36 }
        SHA256_Update(&inner, padded, 64)
        padded = block.map { $0 ^ 0x5c }
        SHA256_Update(&outer, padded, 64)
        EnvelopeCipher.zero(&padded)
        EnvelopeCipher.zero(&block)
        self.inner = inner
        self.outer = outer
    }

    /// The code of a message, written to the 32 bytes at `output`.
    public func authenticationCode(_ message: UnsafeRawBufferPointer, into output: UnsafeMutablePointer<UInt8>) {
        var context = inner
        SHA256_Update(&context, message.baseAddress, message.count)
        SHA256_Final(output, &context)
        context = outer
        SHA256_Update(&context, output, Self.length)
        SHA256_Final(output, &context)
        OPENSSL_cleanse(&context, MemoryLayout<SHA256_CTX>.size)
    }

    /// The code of a message.
    public func authenticationCode(_ message: UnsafeRawBufferPointer) -> [UInt8] {
        var code = [UInt8](repeating: 0, count: Self.length)
        code.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            authenticationCode(message, into: base)
        }
        return code
    }

    /// The code of a string's UTF-8 bytes.
    public func authenticationCode(_ message: String) -> [UInt8] {
        var message = message
        return message.withUTF8 { authenticationCode(UnsafeRawBufferPointer($0)) }
    }
}

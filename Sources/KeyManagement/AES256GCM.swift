import COpenSSL
import Glibc
import Synchronization
import TutelaCore

/// AES-256-GCM through OpenSSL's libcrypto, with keyed contexts kept for reuse.
///
/// The store seals many short field values under the same data key. swift-crypto's `AES.GCM`
/// sets up a fresh AEAD context (key schedule, allocations) on every call, about 3.8 µs for a
/// 32-byte value on this machine; reusing a keyed OpenSSL context and setting a new nonce costs a
/// fraction of that (`tutela bench` reports both). The output is standard AES-GCM: the test suite
/// checks it against the GCM specification's vectors and against swift-crypto in both directions.
public final class AES256GCM: Sendable {
    /// Nonce length in bytes.
    public static let nonceLength = 12
    /// Tag length in bytes.
    public static let tagLength = 16

    // Fetched once for the process and never freed or changed: a read-only handle.
    private nonisolated(unsafe) static let cipher: OpaquePointer? = EVP_CIPHER_fetch(nil, "AES-256-GCM", nil)

    // Nonces are a random 96-bit base XOR a per-key counter: distinct within this key object by
    // construction, and across objects for the same key as unlikely to collide as independent
    // random nonces (n1 * n2 / 2^96). Drawing each nonce from OpenSSL's DRBG cost 1.5 µs here.
    // Drawn on the first seal: a key object that only opens (most data keys unwrapped for a
    // read) never pays for the random draw, a system call.
    private let nonceBase: Mutex<[UInt8]?>
    private let nonceCounter = Atomic<UInt64>(0)

    // The key, for keying contexts when none is idle; written once in init, zeroed in deinit.
    // Most data keys are used once or by one caller at a time (a new customer's record sealed,
    // a record read after an unwrap): keying the first context from these bytes costs one key
    // schedule, where keying a template and copying it cost that and a context's copy and free.
    private nonisolated(unsafe) let key: UnsafeMutableBufferPointer<UInt8>
    // Keyed contexts ready for reuse; each is used by one caller at a time, between a take and
    // a give back, and a new nonce resets it.
    private let idle = Mutex<[ContextHandle]>([])
    private static let idleLimit = 4

    /// Creates a cipher for a 32-byte key.
    /// - Parameters:
    ///   - key: the key bytes.
    ///   - nonceBase: 12 random bytes for the nonce sequence; nil draws them.
    public init(key: UnsafeRawBufferPointer, nonceBase: [UInt8]? = nil) throws {
        guard nonceBase.map({ $0.count == Self.nonceLength }) ?? true else {
            throw TutelaError(.invalidInput, "a nonce base has 12 bytes")
        }
        guard key.count == 32 else { throw TutelaError(.invalidInput, "an AES-256 key has 32 bytes") }
        guard Self.cipher != nil else { throw TutelaError(.crypto, "OpenSSL does not provide AES-256-GCM") }
        let copy = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 32)
        _ = copy.initialize(from: key)
        self.key = copy
        self.nonceBase = Mutex(nonceBase)
    }

    deinit {
        OPENSSL_cleanse(key.baseAddress, key.count)
        key.deallocate()
        // Freeing a context cleanses its key schedule.
        idle.withLock { contexts in
            for context in contexts { EVP_CIPHER_CTX_free(context.pointer) }
            contexts.removeAll()
        }
    }

    /// Random bytes from the kernel's CSPRNG (`getrandom(2)`), which costs a fraction of a call
    /// into OpenSSL's shared DRBG here (0.3 µs against 1.5 µs for a key's worth).
    public static func randomBytes(_ count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let result = bytes.withUnsafeMutableBytes { buffer in
                getrandom(buffer.baseAddress.map { $0 + filled }, count - filled, 0)
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw TutelaError(.crypto, "the random generator failed")
            }
            filled += result
        }
        return bytes
    }

    /// Encrypts, appending `nonce ‖ ciphertext ‖ tag` to `output`.
    /// - Parameters:
    ///   - plaintext: the bytes to encrypt.
    ///   - associatedData: authenticated, not encrypted.
    ///   - nonce: 12 bytes; nil takes the next nonce of this key object (see `nextNonce`).
    ///   - output: the buffer to append to.
    public func seal(
        _ plaintext: [UInt8],
        authenticating associatedData: [UInt8],
        nonce: [UInt8]? = nil,
        appendingTo output: inout [UInt8]
    ) throws {
        let iv = try nonce ?? nextNonce()
        guard iv.count == Self.nonceLength else { throw TutelaError(.invalidInput, "an AES-GCM nonce has 12 bytes") }
        let context = try takeContext()
        var succeeded = false
        defer { giveBack(context, reusable: succeeded) }
        guard EVP_EncryptInit_ex(context, nil, nil, nil, iv) == 1,
            Self.update(context, authenticating: associatedData[...], encrypting: true)
        else {
            throw TutelaError(.crypto, "AES-GCM nonce or associated data was refused")
        }
        let start = output.count
        output.append(contentsOf: iv)
        output.append(contentsOf: repeatElement(0, count: plaintext.count + Self.tagLength))
        let status = output.withUnsafeMutableBufferPointer { buffer -> Bool in
            guard let base = buffer.baseAddress else { return false }
            let body = base + start + Self.nonceLength
            var length: Int32 = 0
            if !plaintext.isEmpty {
                guard EVP_EncryptUpdate(context, body, &length, plaintext, Int32(plaintext.count)) == 1 else {
                    return false
                }
            }
            var finalLength: Int32 = 0
            guard EVP_EncryptFinal_ex(context, body + plaintext.count, &finalLength) == 1 else { return false }
            return EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, Int32(Self.tagLength), body + plaintext.count)
                == 1
        }
        guard status else {
            output.removeSubrange(start...)
            throw TutelaError(.crypto, "AES-GCM encryption failed")
        }
        succeeded = true
    }

    /// Decrypts `nonce ‖ ciphertext ‖ tag`.
    /// - Throws: `TutelaError` with `.authenticationFailed` when anything was altered.
    public func open(_ sealed: ArraySlice<UInt8>, authenticating associatedData: [UInt8]) throws -> [UInt8] {
        var plaintext: [UInt8] = []
        try open(sealed, authenticating: associatedData[...], [], into: &plaintext)
        return plaintext
    }

    /// Decrypts `nonce ‖ ciphertext ‖ tag` into `plaintext`, replacing its contents and reusing
    /// its storage; the associated data is `first ‖ second`, fed in two parts so that callers
    /// need not join them.
    /// - Throws: `TutelaError` with `.authenticationFailed` when anything was altered; the buffer
    ///   is then zeroed and empty.
    public func open(
        _ sealed: ArraySlice<UInt8>,
        authenticating first: ArraySlice<UInt8>,
        _ second: [UInt8],
        into plaintext: inout [UInt8]
    ) throws {
        guard sealed.count >= Self.nonceLength + Self.tagLength else {
            throw TutelaError(.authenticationFailed, "an AES-GCM ciphertext is shorter than nonce and tag")
        }
        let context = try takeContext()
        var succeeded = false
        defer { giveBack(context, reusable: succeeded) }
        let bodyLength = sealed.count - Self.nonceLength - Self.tagLength
        plaintext.removeAll(keepingCapacity: true)
        plaintext.append(contentsOf: repeatElement(0, count: bodyLength))
        let status = sealed.withUnsafeBufferPointer { input -> Bool in
            guard let base = input.baseAddress,
                EVP_DecryptInit_ex(context, nil, nil, nil, base) == 1,
                Self.update(context, authenticating: first, encrypting: false),
                Self.update(context, authenticating: second[...], encrypting: false)
            else { return false }
            let body = base + Self.nonceLength
            return plaintext.withUnsafeMutableBufferPointer { output -> Bool in
                var length: Int32 = 0
                if bodyLength > 0 {
                    guard EVP_DecryptUpdate(context, output.baseAddress, &length, body, Int32(bodyLength)) == 1 else {
                        return false
                    }
                }
                let tag = UnsafeMutableRawPointer(mutating: body + bodyLength)
                guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, Int32(Self.tagLength), tag) == 1 else {
                    return false
                }
                var finalLength: Int32 = 0
                return EVP_DecryptFinal_ex(context, output.baseAddress.map { $0 + bodyLength }, &finalLength) == 1
            }
        }
        guard status else {
            plaintext.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) }
            plaintext.removeAll(keepingCapacity: true)
            throw TutelaError(.authenticationFailed, "AES-GCM authentication failed")
        }
        succeeded = true
    }

    /// Feeds associated data; an empty part is skipped.
    private static func update(
        _ context: OpaquePointer,
        authenticating part: ArraySlice<UInt8>,
        encrypting: Bool
    ) -> Bool {
        guard !part.isEmpty else { return true }
        return part.withUnsafeBufferPointer { bytes in
            var length: Int32 = 0
            return encrypting
                ? EVP_EncryptUpdate(context, nil, &length, bytes.baseAddress, Int32(bytes.count)) == 1
                : EVP_DecryptUpdate(context, nil, &length, bytes.baseAddress, Int32(bytes.count)) == 1
        }
    }

    /// The next nonce: the random base with the counter XORed into its last eight bytes.
    func nextNonce() throws -> [UInt8] {
        let counter = nonceCounter.wrappingAdd(1, ordering: .relaxed).oldValue
        var nonce = try nonceBase.withLock { base -> [UInt8] in
            if let base { return base }
            let drawn = try Self.randomBytes(Self.nonceLength)
            base = drawn
            return drawn
        }
        for index in 0..<8 {
            nonce[Self.nonceLength - 1 - index] ^= UInt8(truncatingIfNeeded: counter >> (8 * UInt64(index)))
        }
        return nonce
    }

    private func takeContext() throws -> OpaquePointer {
        if let context = idle.withLock({ $0.popLast() }) { return context.pointer }
        return try keyedContext()
    }

    private func giveBack(_ context: OpaquePointer, reusable: Bool) {
        let kept =
            reusable
            && idle.withLock { contexts in
                guard contexts.count < Self.idleLimit else { return false }
                contexts.append(ContextHandle(pointer: context))
                return true
            }
        if !kept { EVP_CIPHER_CTX_free(context) }
    }

    /// A new context keyed for encryption; a decryption switches it with `EVP_DecryptInit_ex`.
    private func keyedContext() throws -> OpaquePointer {
        guard let context = EVP_CIPHER_CTX_new() else { throw TutelaError(.crypto, "out of memory") }
        guard EVP_EncryptInit_ex(context, Self.cipher, nil, key.baseAddress, nil) == 1 else {
            EVP_CIPHER_CTX_free(context)
            throw TutelaError(.crypto, "AES-256-GCM key setup failed")
        }
        return context
    }
}

/// An OpenSSL cipher context kept for reuse.
// The pointer moves between threads only through the pool's lock, and one caller at a time
// uses the context between taking it and giving it back.
private struct ContextHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

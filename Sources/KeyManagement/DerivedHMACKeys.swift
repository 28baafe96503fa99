import Crypto
import Foundation
import Synchronization

/// HMAC-SHA256 keys derived from one root secret with HKDF, one per name, each set up once and
/// kept as a keyed state: copying a keyed state skips the key setup on every use.
public final class DerivedHMACKeys: Sendable {
    private let root: SymmetricKey
    private let label: String
    private let states = Mutex<[String: HMAC<SHA256>]>([:])

    /// Creates the family.
    /// - Parameters:
    ///   - root: the root secret.
    ///   - label: the HKDF info prefix, such as `tutela.blind-index.v1|TENANT`.
    public init(root: SymmetricKey, label: String) {
        self.root = root
        self.label = label
    }

    /// HMAC-SHA256 of a message under the key named `name`.
    public func authenticationCode(for message: String, keyName name: String) -> [UInt8] {
        var state = keyedState(name)
        var text = message
        text.withUTF8 { state.update(data: UnsafeRawBufferPointer($0)) }
        return Array(state.finalize())
    }

    private func keyedState(_ name: String) -> HMAC<SHA256> {
        if let state = states.withLock({ $0[name] }) { return state }
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: root,
            info: Data("\(label)|\(name)".utf8),
            outputByteCount: 32
        )
        let state = HMAC<SHA256>(key: key)
        states.withLock { $0[name] = state }
        return state
    }
}

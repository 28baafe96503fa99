import Crypto
import Foundation
import Synchronization

/// HMAC-SHA256 keys derived from one root secret with HKDF, one per name, each set up once and
/// kept as a keyed state: copying a keyed state skips the key setup on every use.
public final class DerivedHMACKeys: Sendable {
    private let root: SymmetricKey
    private let label: String
    private let states = Mutex<[String: KeyedHMAC]>([:])

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
        keyedState(name).authenticationCode(message)
    }

    /// The key named `name`, for a caller that computes many codes under it.
    public func key(named name: String) -> KeyedHMAC { keyedState(name) }

    private func keyedState(_ name: String) -> KeyedHMAC {
        if let state = states.withLock({ $0[name] }) { return state }
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: root,
            info: Data("\(label)|\(name)".utf8),
            outputByteCount: 32
        )
        let state = KeyedHMAC(key: key)
        states.withLock { $0[name] = state }
        return state
    }
}

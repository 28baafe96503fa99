import Crypto
import Foundation
import TutelaCore

#if canImport(Glibc)
import Glibc
#endif

/// Reads and writes the keyring file (`keyring.json` in the keys directory).
///
/// Every key in the file is sealed with AES-256-GCM under a key derived from the master key, and
/// the whole file carries an HMAC, so a wrong master key and a damaged file give different,
/// clear errors. The layout is described in `Keys/README.md`.
public struct KeyringFile: Sendable {
    /// The keyring file's path.
    public let path: String
    /// Where the master key comes from.
    public let masterKeyProvider: any MasterKeyProvider

    static let format = 1

    /// Creates a handle on a keyring file.
    public init(path: String, masterKeyProvider: any MasterKeyProvider) {
        self.path = path
        self.masterKeyProvider = masterKeyProvider
    }

    /// Whether the file exists.
    public var exists: Bool { FileManager.default.fileExists(atPath: path) }

    /// Loads and verifies the keyring.
    /// - Throws: `TutelaError` with `.masterKeyMissing`, `.masterKeyWrong`, `.keyringCorrupted` or
    ///   `.notFound`.
    public func load() throws -> Keyring {
        let master = try masterKeyProvider.masterKey()
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TutelaError(.notFound, "no keyring at \(path): run 'tutela init'")
        }
        let stored: StoredKeyring
        do {
            stored = try JSONDecoder().decode(StoredKeyring.self, from: data)
        } catch {
            throw TutelaError(.keyringCorrupted, "the keyring \(path) is not valid keyring JSON")
        }
        guard stored.format == Self.format else {
            throw TutelaError(
                .keyringCorrupted,
                "the keyring \(path) has format \(stored.format), expected \(Self.format)"
            )
        }
        let keys = DerivedKeys(master: master, keyringID: stored.id)
        guard let check = Data(base64Encoded: stored.check),
            HMAC<SHA256>.isValidAuthenticationCode(
                check,
                authenticating: Data("tutela.master-check".utf8),
                using: keys.check
            )
        else {
            throw TutelaError(
                .masterKeyWrong,
                "the master key from \(masterKeyProvider.origin) does not open the keyring \(path)"
            )
        }
        guard let mac = Data(base64Encoded: stored.mac),
            HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: stored.canonicalBytes, using: keys.mac)
        else {
            throw TutelaError(.keyringCorrupted, "the keyring \(path) was altered or damaged: its MAC does not match")
        }
        do {
            return try stored.open(with: keys)
        } catch let error as TutelaError {
            throw error
        } catch {
            throw TutelaError(.keyringCorrupted, "the keyring \(path) holds a key that does not decrypt")
        }
    }

    /// Writes a new keyring; fails if the file exists.
    public func create(_ keyring: Keyring) throws {
        try SecureFile.create(at: path, contents: try encode(keyring))
    }

    /// Loads the keyring, lets `change` modify it, and writes it back atomically, holding an
    /// exclusive lock so that two administrators cannot lose each other's change.
    /// - Returns: the changed keyring.
    @discardableResult
    public func update(_ change: (inout Keyring) throws -> Void) throws -> Keyring {
        let lockPath = path + ".lock"
        let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw TutelaError(.io, "cannot open the keyring lock \(lockPath): \(FileReading.reason(errno))")
        }
        defer { close(descriptor) }
        guard flock(descriptor, LOCK_EX) == 0 else {
            throw TutelaError(.io, "cannot lock the keyring: \(FileReading.reason(errno))")
        }
        defer { flock(descriptor, LOCK_UN) }
        var keyring = try load()
        try change(&keyring)
        try SecureFile.replace(at: path, contents: try encode(keyring))
        return keyring
    }

    private func encode(_ keyring: Keyring) throws -> Data {
        let master = try masterKeyProvider.masterKey()
        let keys = DerivedKeys(master: master, keyringID: keyring.id)
        var stored = try StoredKeyring(keyring, keys: keys)
        stored.mac = Data(HMAC<SHA256>.authenticationCode(for: stored.canonicalBytes, using: keys.mac))
            .base64EncodedString()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(stored)
    }
}

/// The keys derived from the master key for one keyring.
private struct DerivedKeys {
    let wrap: SymmetricKey
    let mac: SymmetricKey
    let check: SymmetricKey

    init(master: SymmetricKey, keyringID: String) {
        let salt = Data(keyringID.utf8)
        func derive(_ label: String) -> SymmetricKey {
            HKDF<SHA256>.deriveKey(inputKeyMaterial: master, salt: salt, info: Data(label.utf8), outputByteCount: 32)
        }
        wrap = derive("tutela.keyring.wrap.v1")
        mac = derive("tutela.keyring.mac.v1")
        check = derive("tutela.keyring.check.v1")
    }
}

/// The JSON form of the keyring.
private struct StoredKeyring: Codable {
    struct Version: Codable {
        var version: Int
        var state: KeyVersionState
        var createdAt: Int64
        var material: String?

        enum CodingKeys: String, CodingKey {
            case version, state, material
            case createdAt = "created_at_ms"
        }
    }

    struct Secret: Codable {
        var purpose: KeyPurpose
        var material: String
    }

    var format: Int
    var id: String
    var check: String
    var versions: [Version]
    var secrets: [Secret]
    var mac: String

    init(_ keyring: Keyring, keys: DerivedKeys) throws {
        format = KeyringFile.format
        id = keyring.id
        check = Data(HMAC<SHA256>.authenticationCode(for: Data("tutela.master-check".utf8), using: keys.check))
            .base64EncodedString()
        versions = try keyring.versions.map { entry in
            let material = try entry.material.map {
                try Self.seal($0, label: "kek.\(entry.version)", keyringID: keyring.id, keys: keys)
            }
            return Version(version: entry.version, state: entry.state, createdAt: entry.createdAt, material: material)
        }
        secrets = try KeyPurpose.allCases.map { purpose in
            Secret(
                purpose: purpose,
                material: try Self.seal(
                    keyring.secret(purpose),
                    label: purpose.rawValue,
                    keyringID: keyring.id,
                    keys: keys
                )
            )
        }
        mac = ""
    }

    /// Every field except the MAC, in a fixed order with length prefixes.
    var canonicalBytes: Data {
        var bytes = Data()
        func append(_ text: String) {
            let utf8 = Data(text.utf8)
            withUnsafeBytes(of: UInt32(utf8.count).bigEndian) { bytes.append(contentsOf: $0) }
            bytes.append(utf8)
        }
        append("tutela.keyring.v\(format)")
        append(id)
        append(check)
        for entry in versions {
            append(String(entry.version))
            append(entry.state.rawValue)
            append(String(entry.createdAt))
            append(entry.material ?? "-")
        }
        for secret in secrets {
            append(secret.purpose.rawValue)
            append(secret.material)
        }
        return bytes
    }

    func open(with keys: DerivedKeys) throws -> Keyring {
        var opened: [KeyVersion] = []
        for entry in versions.sorted(by: { $0.version < $1.version }) {
            var material: SymmetricKey?
            if entry.state != .destroyed {
                guard let sealed = entry.material else {
                    throw TutelaError(.keyringCorrupted, "key version \(entry.version) has no key material")
                }
                material = try Self.open(sealed, label: "kek.\(entry.version)", keyringID: id, keys: keys)
            }
            opened.append(
                KeyVersion(version: entry.version, state: entry.state, createdAt: entry.createdAt, material: material)
            )
        }
        guard opened.filter({ $0.state == .active }).count == 1 else {
            throw TutelaError(.keyringCorrupted, "the keyring must have exactly one active key version")
        }
        var openedSecrets: [KeyPurpose: SymmetricKey] = [:]
        for secret in secrets {
            openedSecrets[secret.purpose] = try Self.open(
                secret.material,
                label: secret.purpose.rawValue,
                keyringID: id,
                keys: keys
            )
        }
        for purpose in KeyPurpose.allCases where openedSecrets[purpose]?.bitCount != purpose.byteCount * 8 {
            throw TutelaError(.keyringCorrupted, "the keyring lacks its \(purpose.rawValue) secret")
        }
        return Keyring(id: id, versions: opened, secrets: openedSecrets)
    }

    private static func seal(_ key: SymmetricKey, label: String, keyringID: String, keys: DerivedKeys) throws -> String
    {
        let box = try key.withUnsafeBytes {
            try AES.GCM.seal(Data($0), using: keys.wrap, authenticating: Data("\(keyringID)|\(label)".utf8))
        }
        guard let combined = box.combined else { throw TutelaError(.crypto, "AES-GCM produced no output") }
        return combined.base64EncodedString()
    }

    private static func open(_ text: String, label: String, keyringID: String, keys: DerivedKeys) throws -> SymmetricKey
    {
        guard let combined = Data(base64Encoded: text) else {
            throw TutelaError(.keyringCorrupted, "the keyring entry \(label) is not base64")
        }
        let box = try AES.GCM.SealedBox(combined: combined)
        let bytes = try AES.GCM.open(box, using: keys.wrap, authenticating: Data("\(keyringID)|\(label)".utf8))
        return SymmetricKey(data: bytes)
    }
}

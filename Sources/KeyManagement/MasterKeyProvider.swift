import Crypto
import Foundation
import TutelaCore

/// A source of the master key, which protects the keyring.
///
/// The file and environment providers ship with Tutela; an external KMS or HSM conforms to the same
/// protocol by returning the unwrapped master key (or by wrapping the keyring itself later).
public protocol MasterKeyProvider: Sendable {
    /// Where the key comes from, for messages; never the key itself.
    var origin: String { get }
    /// Returns the 256-bit master key.
    /// - Throws: `TutelaError` with code `.masterKeyMissing` when it cannot be had.
    func masterKey() throws -> SymmetricKey
}

/// The textual form of a master key: `tutela-mk1:` followed by 32 bytes in base64.
enum MasterKeyEncoding {
    static let prefix = "tutela-mk1:"

    static func encode(_ key: SymmetricKey) -> String {
        prefix + key.withUnsafeBytes { Data($0).base64EncodedString() }
    }

    static func decode(_ text: some StringProtocol, origin: String) throws -> SymmetricKey {
        let trimmed = text.trimmingWhitespace
        guard trimmed.hasPrefix(prefix), let bytes = Data(base64Encoded: String(trimmed.dropFirst(prefix.count))),
            bytes.count == 32
        else {
            throw TutelaError(
                .masterKeyMissing,
                "the master key from \(origin) is malformed: expected '\(prefix)' and 32 bytes in base64"
            )
        }
        return SymmetricKey(data: bytes)
    }
}

/// Reads the master key from a file that only its owner may read.
public struct FileMasterKeyProvider: MasterKeyProvider {
    /// The key file's path.
    public let path: String

    /// Creates a provider for a key file.
    public init(path: String) {
        self.path = path
    }

    public var origin: String { "file \(path)" }

    public func masterKey() throws -> SymmetricKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TutelaError(
                .masterKeyMissing,
                "no master key at \(path): run 'tutela init' or set TUTELA_MASTER_KEY"
            )
        }
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        if let permissions = attributes?[.posixPermissions] as? NSNumber, permissions.intValue & 0o077 != 0 {
            throw TutelaError(
                .masterKeyMissing,
                "the master key file \(path) is readable by others (mode \(String(permissions.intValue, radix: 8))); run 'chmod 600 \(path)'"
            )
        }
        return try MasterKeyEncoding.decode(String(decoding: data, as: UTF8.self), origin: origin)
    }

    /// Writes a new random master key to the file, readable by its owner only.
    /// - Throws: `TutelaError` with code `.alreadyExists` when the file exists.
    public func create() throws -> SymmetricKey {
        let key = SymmetricKey(size: .bits256)
        try SecureFile.create(at: path, contents: Data((MasterKeyEncoding.encode(key) + "\n").utf8))
        return key
    }
}

/// Reads the master key from an environment variable, for deployments that inject secrets.
public struct EnvironmentMasterKeyProvider: MasterKeyProvider {
    /// The variable's name.
    public let variable: String
    private let value: String?

    /// Creates a provider that reads `variable` from the given environment.
    public init(variable: String = "TUTELA_MASTER_KEY", environment: [String: String]) {
        self.variable = variable
        self.value = environment[variable]
    }

    public var origin: String { "environment variable \(variable)" }

    public func masterKey() throws -> SymmetricKey {
        guard let value, !value.isEmpty else {
            throw TutelaError(.masterKeyMissing, "\(variable) is not set")
        }
        return try MasterKeyEncoding.decode(value, origin: origin)
    }

    /// Whether the variable is set at all.
    public var isSet: Bool { !(value ?? "").isEmpty }
}

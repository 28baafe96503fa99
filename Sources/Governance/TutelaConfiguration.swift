import Foundation
import KeyManagement

/// Where Tutela keeps its files and whom it serves; one value wired at the composition root.
public struct TutelaConfiguration: Sendable {
    /// The data directory (`--data-dir`, `TUTELA_DATA_DIR`).
    public var dataDirectory: String
    /// The keys directory (`--keys-dir`, `TUTELA_KEYS_DIR`).
    public var keysDirectory: String
    /// The policies directory with `schema.yaml` (`--policies-dir`, `TUTELA_POLICIES_DIR`).
    public var policiesDirectory: String
    /// The tenant bound into every ciphertext.
    public var tenant: String
    /// The process environment, for `TUTELA_MASTER_KEY`.
    public var environment: [String: String]
    /// Who runs local administration, as audit events name it.
    public var operatorName: String
    /// How long an audit append may take before the operation fails.
    public var auditTimeout: Duration
    /// How many unwrapped data keys the store keeps for later reads of the same customers
    /// (see `EnvelopeCipher.unwrap`): none for a command, which reads once and exits;
    /// `tutela serve` keeps `EnvelopeCipher.defaultCachedDataKeys`.
    public var cachedDataKeys = 0

    /// The default data directory.
    public static let defaultDataDirectory = "./tutela-data"
    /// The default keys directory.
    public static let defaultKeysDirectory = "./Keys"
    /// The default policies directory.
    public static let defaultPoliciesDirectory = "./Policies"

    /// Creates a configuration.
    public init(
        dataDirectory: String = defaultDataDirectory,
        keysDirectory: String = defaultKeysDirectory,
        policiesDirectory: String = defaultPoliciesDirectory,
        tenant: String = "default",
        environment: [String: String] = [:]
    ) {
        self.dataDirectory = dataDirectory
        self.keysDirectory = keysDirectory
        self.policiesDirectory = policiesDirectory
        self.tenant = tenant
        self.environment = environment
        self.operatorName = "local:" + (environment["USER"] ?? environment["LOGNAME"] ?? "operator")
        self.auditTimeout = .seconds(2)
    }

    /// The SQLite database file.
    public var databasePath: String { dataDirectory + "/tutela.sqlite" }
    /// The keyring file.
    public var keyringPath: String { keysDirectory + "/keyring.json" }
    /// The master key file (unused when `TUTELA_MASTER_KEY` is set).
    public var masterKeyPath: String { keysDirectory + "/master.key" }
    /// The file whose replacement tells every process that principals or API keys changed.
    public var credentialsStampPath: String { dataDirectory + "/credentials.stamp" }
    /// The audit log database.
    public var auditPath: String { dataDirectory + "/audit.sqlite" }
    /// The audit checkpoint verification key (public).
    public var auditPublicKeyPath: String { keysDirectory + "/audit-checkpoint.pub" }

    /// The master key provider: the environment variable when set, else the key file.
    public var masterKeyProvider: any MasterKeyProvider {
        let environmentProvider = EnvironmentMasterKeyProvider(environment: environment)
        if environmentProvider.isSet { return environmentProvider }
        return FileMasterKeyProvider(path: masterKeyPath)
    }

    /// The keyring file handle.
    public var keyringFile: KeyringFile {
        KeyringFile(path: keyringPath, masterKeyProvider: masterKeyProvider)
    }
}

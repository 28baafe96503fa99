import Audit
import Foundation
import KeyManagement
import Masking
import Policy
import Store
import Synchronization
import TutelaCore

/// Tutela's use cases over one data directory.
///
/// This is the single place where the keyring, the schema and the store come together. The command line and the gateway are thin shells over it.
public final class Tutela: Sendable {
    /// This release's version, as `tutela --version` prints it and the OpenAPI document states.
    public static let version = "0.1.0"

    /// The configuration it was opened with.
    public let configuration: TutelaConfiguration
    /// The encrypted store.
    public let store: EncryptedStore
    /// The policy set in force, reloadable.
    public let policyHolder: PolicyHolder
    /// The compiled policies in force now.
    public var policies: PolicySet { policyHolder.policies }
    /// Principals and their roles.
    let principalStore: any PrincipalStore
    /// API keys, stored as hashes.
    let apiKeyStore: any APIKeyStore
    /// Applies decisions' masks.
    let masker: Masker
    /// The tamper-evident audit log.
    public let audit: AuditLog
    /// The audit log's keys.
    let auditKeys: AuditKeys
    /// The schema.
    public var schema: Schema { store.schema }
    /// The keyring file's stamp when it was last loaded.
    let keyringStamp: Mutex<FileStamp?>
    /// The keyring file's stamp now, looked up through the change monitor.
    let keyringFileStamp: WatchedFileStamp
    /// Watches the keyring and the credentials stamp; nil where it cannot (they are then stat'ed).
    let fileChanges: FileChangeMonitor?

    static let keyringMetadataKey = "keyring_id"
    static let tenantMetadataKey = "tenant"

    init(
        configuration: TutelaConfiguration,
        store: EncryptedStore,
        policyHolder: PolicyHolder,
        principalStore: any PrincipalStore,
        apiKeyStore: any APIKeyStore,
        masker: Masker,
        audit: AuditLog,
        auditKeys: AuditKeys,
        fileChanges: FileChangeMonitor?
    ) {
        self.configuration = configuration
        self.store = store
        self.policyHolder = policyHolder
        self.principalStore = principalStore
        self.apiKeyStore = apiKeyStore
        self.masker = masker
        self.audit = audit
        self.auditKeys = auditKeys
        self.keyringStamp = Mutex(FileStamp.of(configuration.keyringPath))
        self.keyringFileStamp = WatchedFileStamp(path: configuration.keyringPath, monitor: fileChanges)
        self.fileChanges = fileChanges
    }

    /// Runs a request with the files that announce changes from other processes (the keyring,
    /// the credentials stamp) looked at once, as they were at its start: its keyring reload
    /// check, its API key and its principal then cost one read of the change monitor's queue.
    public func withFileChangesPinned<T>(_ body: () async throws -> T) async rethrows -> T {
        guard let fileChanges else { return try await body() }
        return try await fileChanges.withGenerationPinned(body)
    }

    /// Opens an initialized data directory.
    /// - Throws: `TutelaError` when the directory was not initialized, the keys do not open, the
    ///   schema does not validate, or the data directory belongs to another keyring.
    public static func open(_ configuration: TutelaConfiguration) async throws -> Tutela {
        guard FileManager.default.fileExists(atPath: configuration.databasePath) else {
            throw TutelaError(
                .notFound,
                "no Tutela data directory at \(configuration.dataDirectory): run 'tutela init' (or pass --data-dir)"
            )
        }
        let keyring = try configuration.keyringFile.load()
        let policyHolder = try PolicyHolder(directory: configuration.policiesDirectory)
        let policies = policyHolder.policies
        let backend = try SQLiteRecordStore(path: configuration.databasePath)
        let boundKeyring = try await backend.metadata(keyringMetadataKey)
        guard boundKeyring == keyring.id else {
            throw TutelaError(
                .invalidState,
                "the data directory \(configuration.dataDirectory) was initialized with another keyring than the one in \(configuration.keysDirectory)"
            )
        }
        let tenant = try await backend.metadata(tenantMetadataKey) ?? configuration.tenant
        let auditKeys = try AuditKeys(keyring: keyring)
        let audit = try AuditLog(
            path: configuration.auditPath,
            logID: keyring.id,
            signingKey: auditKeys.signingKey,
            timeout: configuration.auditTimeout
        )
        // The files other processes replace to announce a change, watched together: a request
        // looks at both with one read of the monitor's queue.
        let fileChanges = FileChangeMonitor(files: [configuration.keyringPath, configuration.credentialsStampPath])
        let credentials = CachedCredentialStore(
            principals: backend,
            keys: backend,
            stampFile: WatchedFileStamp(path: configuration.credentialsStampPath, monitor: fileChanges)
        )
        return Tutela(
            configuration: configuration,
            store: EncryptedStore(
                backend: backend,
                schema: policies.schema,
                keyring: keyring,
                tenant: tenant,
                cachedDataKeys: configuration.cachedDataKeys
            ),
            policyHolder: policyHolder,
            principalStore: credentials,
            apiKeyStore: credentials,
            masker: Masker(keyring: keyring, tenant: tenant),
            audit: audit,
            auditKeys: auditKeys,
            fileChanges: fileChanges
        )
    }

    /// What `initialize` created.
    public struct InitReport: Sendable, Codable {
        /// The data directory.
        public var dataDirectory: String
        /// The keyring file.
        public var keyringPath: String
        /// The master key file, or nil when the key comes from the environment.
        public var masterKeyPath: String?
        /// The keyring id.
        public var keyringID: String
        /// The audit checkpoint verification key.
        public var auditPublicKeyPath: String
    }

    /// Creates the data directory, the master key (unless it comes from the environment), the
    /// keyring and the database.
    ///
    /// Refuses to overwrite anything.
    public static func initialize(_ configuration: TutelaConfiguration, now: Int64) async throws -> InitReport {
        _ = try PolicyLoader.load(directory: configuration.policiesDirectory)
        let files = FileManager.default
        if files.fileExists(atPath: configuration.databasePath) {
            throw TutelaError(.alreadyExists, "\(configuration.dataDirectory) is already initialized")
        }
        if files.fileExists(atPath: configuration.keyringPath) {
            throw TutelaError(
                .alreadyExists,
                "\(configuration.keyringPath) already exists; use another --keys-dir or remove it on purpose"
            )
        }
        do {
            try files.createDirectory(
                atPath: configuration.keysDirectory,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
            try files.createDirectory(
                atPath: configuration.dataDirectory,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
        } catch {
            throw TutelaError(.io, "cannot create the data or keys directory: \(error.localizedDescription)")
        }
        var masterKeyPath: String?
        if let provider = configuration.masterKeyProvider as? FileMasterKeyProvider {
            _ = try provider.create()
            masterKeyPath = provider.path
        } else {
            _ = try configuration.masterKeyProvider.masterKey()
        }
        let keyring = Keyring.generate(now: now)
        try configuration.keyringFile.create(keyring)
        let backend = try SQLiteRecordStore(path: configuration.databasePath)
        try await backend.setMetadata(tenantMetadataKey, configuration.tenant)
        try await backend.setMetadata(keyringMetadataKey, keyring.id)
        let auditKeys = try AuditKeys(keyring: keyring)
        let audit = try AuditLog(path: configuration.auditPath, logID: keyring.id, signingKey: auditKeys.signingKey)
        try await audit.append(
            AuditEvent(
                time: now,
                requestID: newRequestID(),
                kind: "log.init",
                principal: configuration.operatorName,
                outcome: "ok"
            )
        )
        try DurableFileWriter.write(auditKeys.publicKeyText, to: configuration.auditPublicKeyPath)
        return InitReport(
            dataDirectory: configuration.dataDirectory,
            keyringPath: configuration.keyringPath,
            masterKeyPath: masterKeyPath,
            keyringID: keyring.id,
            auditPublicKeyPath: configuration.auditPublicKeyPath
        )
    }
}

/// A fresh request id: 16 hex characters.
func newRequestID() -> String { Tutela.makeRequestID() }

/// The request id sequence of this process, from a random start.
private let requestIDSequence = Atomic<UInt64>(UInt64.random(in: .min ... .max))

extension Tutela {
    /// A fresh request id: 16 hex characters, random-looking and never repeated by this process.
    ///
    /// The server makes one per call, so not one system call per id: the ids are a sequence
    /// from a random start, stepping by an odd constant, passed through SplitMix64's finalizer.
    /// Both steps are one-to-one on 64 bits, so a process never repeats an id, and ids of
    /// different processes collide no more often than random ones.
    public static func makeRequestID() -> String {
        var value = requestIDSequence.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return Hex.encode(value ^ (value >> 31))
    }
}

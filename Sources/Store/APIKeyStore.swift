import Foundation
import GRDB
import SQLiteSupport
import TutelaCore

/// One stored API key: only a hash of its secret is kept.
public struct StoredAPIKey: Sendable, Hashable {
    /// The public key id (the token's middle part).
    public var id: String
    /// The principal the key authenticates.
    public var principal: String
    /// SHA-256 of the secret.
    public var secretHash: [UInt8]
    /// Creation time, milliseconds since the epoch.
    public var createdAt: Int64
    /// Expiry, if any.
    public var expiresAt: Int64?
    /// Revocation time, if revoked.
    public var revokedAt: Int64?

    /// Creates a stored key.
    public init(
        id: String,
        principal: String,
        secretHash: [UInt8],
        createdAt: Int64,
        expiresAt: Int64?,
        revokedAt: Int64?
    ) {
        self.id = id
        self.principal = principal
        self.secretHash = secretHash
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
    }
}

/// Where API keys live.
public protocol APIKeyStore: Sendable {
    /// Stores a new key.
    func insert(_ key: StoredAPIKey) async throws
    /// A key by id.
    func apiKey(id: String) async throws -> StoredAPIKey?
    /// Every key.
    func apiKeys() async throws -> [StoredAPIKey]
    /// Marks a key revoked; false when there is no such key.
    func revokeAPIKey(id: String, at time: Int64) async throws -> Bool
}

extension SQLiteRecordStore: APIKeyStore {
    public func insert(_ key: StoredAPIKey) async throws {
        try await writeDatabase { db in
            try db.execute(
                sql:
                    "INSERT INTO api_keys (id, principal, secret_hash, created_ms, expires_ms, revoked_ms) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [key.id, key.principal, Data(key.secretHash), key.createdAt, key.expiresAt, key.revokedAt]
            )
        }
    }

    public func apiKey(id: String) async throws -> StoredAPIKey? {
        try await readDatabase { db in
            try Row.fetchOne(db.cachedStatement(sql: Self.selectKeys + " WHERE id = ?"), arguments: [id]).map(
                Self.decodeKey
            )
        }
    }

    public func apiKeys() async throws -> [StoredAPIKey] {
        try await readDatabase { db in
            try Row.fetchAll(db, sql: Self.selectKeys + " ORDER BY created_ms").map(Self.decodeKey)
        }
    }

    public func revokeAPIKey(id: String, at time: Int64) async throws -> Bool {
        try await writeDatabase { db in
            try db.execute(
                sql: "UPDATE api_keys SET revoked_ms = coalesce(revoked_ms, ?) WHERE id = ?",
                arguments: [time, id]
            )
            return db.changesCount > 0
        }
    }

    private static let selectKeys =
        "SELECT id, principal, secret_hash, created_ms, expires_ms, revoked_ms FROM api_keys"

    private static func decodeKey(_ row: Row) throws -> StoredAPIKey {
        let what = "a stored API key row"
        return StoredAPIKey(
            id: try row.stored(0, of: what),
            principal: try row.stored(1, of: what),
            secretHash: Array(try row.stored(2, of: what) as Data),
            createdAt: try row.stored(3, of: what),
            expiresAt: try row.stored(4, of: what),
            revokedAt: try row.stored(5, of: what)
        )
    }
}

import Audit
import Crypto
import Foundation
import KeyManagement
import Store
import TutelaCore

/// What `apikeys list` shows of a key: never its secret.
public struct APIKeyInfo: Sendable, Codable, Hashable {
    /// The key id.
    public var id: String
    /// The principal it authenticates.
    public var principal: String
    /// Creation time, RFC 3339.
    public var createdAt: String
    /// Expiry, RFC 3339, if any.
    public var expiresAt: String?
    /// `active`, `expired` or `revoked`.
    public var state: String

    enum CodingKeys: String, CodingKey {
        case id, principal, state
        case createdAt = "created_at"
        case expiresAt = "expires_at"
    }
}

extension TutelaError.Code {
    /// No credentials were given.
    public static let missingCredentials = Self("missing_credentials")
    /// The credentials are unknown, malformed, revoked or expired.
    public static let invalidCredentials = Self("invalid_credentials")
}

/// API keys: `tut_<id>_<secret>`, shown once, stored as SHA-256 of the secret, checked in
/// constant time; revocation and expiry take effect on the next request.
extension Tutela {
    /// The latest expiry a key may have, 9999-12-31T23:59:59.999Z: its time is listed in
    /// RFC 3339, whose years have four digits.
    public static let latestExpiry: Int64 = 253_402_300_799_999

    /// Creates a key for a principal.
    /// - Returns: the key's id and the token, which is never shown again.
    public func createAPIKey(principal name: String, expiresAt: Int64?) async throws -> (id: String, token: String) {
        _ = try await principal(named: name)
        if let expiresAt, expiresAt <= Self.now { throw TutelaError(.invalidInput, "the expiry is in the past") }
        if let expiresAt, expiresAt > Self.latestExpiry {
            throw TutelaError(.invalidInput, "the expiry is later than the year 9999")
        }
        let id = Hex.encode(try AES256GCM.randomBytes(8))
        let secret = try AES256GCM.randomBytes(32)
        let key = StoredAPIKey(
            id: id,
            principal: name,
            secretHash: Array(SHA256.hash(data: secret)),
            createdAt: Self.now,
            expiresAt: expiresAt,
            revokedAt: nil
        )
        let started = event(
            kind: "apikeys.create",
            principal: configuration.operatorName,
            requestID: newRequestID(),
            outcome: "started"
        )
        .with(record: "\(id) for \(name)")
        try await audited(started) { try await apiKeyStore.insert(key) }
        return (id, "tut_\(id)_\(Base64URL.encode(secret))")
    }

    /// Every key, without secrets.
    public func listAPIKeys() async throws -> [APIKeyInfo] {
        let now = Self.now
        return try await apiKeyStore.apiKeys().map { key in
            let state =
                key.revokedAt != nil ? "revoked" : (key.expiresAt.map { $0 <= now } ?? false) ? "expired" : "active"
            return APIKeyInfo(
                id: key.id,
                principal: key.principal,
                createdAt: CalendarDate.formatTimestamp(milliseconds: key.createdAt),
                expiresAt: key.expiresAt.map(CalendarDate.formatTimestamp(milliseconds:)),
                state: state
            )
        }
    }

    /// Revokes a key at once.
    public func revokeAPIKey(id: String) async throws {
        let started = event(
            kind: "apikeys.revoke",
            principal: configuration.operatorName,
            requestID: newRequestID(),
            outcome: "started"
        )
        .with(record: id)
        let found = try await audited(started) { try await apiKeyStore.revokeAPIKey(id: id, at: Self.now) }
        guard found else { throw TutelaError(.notFound, "no API key \(id)") }
    }

    /// The principal of a valid API key.
    ///
    /// A missing, malformed, unknown, wrong, revoked or expired key is audited (`auth.failed`,
    /// naming the key id and the reason, never the secret) and refused.
    /// - Throws: `.missingCredentials`, `.invalidCredentials`.
    public func authenticate(token: String?, requestID: String) async throws -> String {
        let check = try await checkCredentials(token: token)
        if case .valid(let principal) = check { return principal }
        throw try await auditCredentialFailure(check, requestID: requestID)
    }

    /// What checking an API key found, before anything is audited.
    public enum CredentialCheck: Sendable, Equatable {
        /// A valid key of this principal.
        case valid(principal: String)
        /// No key was given.
        case missing
        /// A key that is malformed, unknown, wrong, revoked or expired ("-" for no key id).
        case invalid(keyID: String, reason: String)
    }

    /// Checks an API key without auditing: a caller that refuses it audits the refusal with
    /// `auditCredentialFailure`, or counts it (a flood of refusals from one address).
    public func checkCredentials(token: String?) async throws -> CredentialCheck {
        guard let token, !token.isEmpty else { return .missing }
        var reason = "malformed"
        var keyID = "-"
        if let (id, encodedSecret) = Self.tokenParts(token), let secret = Base64URL.decode(encodedSecret) {
            keyID = id
            if let key = try await apiKeyStore.apiKey(id: keyID) {
                let matches = Self.constantTimeEqual(Array(SHA256.hash(data: secret)), key.secretHash)
                if !matches {
                    reason = "wrong_secret"
                } else if key.revokedAt != nil {
                    reason = "revoked"
                } else if let expiresAt = key.expiresAt, expiresAt <= Self.now {
                    reason = "expired"
                } else {
                    return .valid(principal: key.principal)
                }
            } else {
                reason = "unknown_key"
            }
        }
        return .invalid(keyID: keyID, reason: reason)
    }

    /// Audits a failed credential check (`auth.failed`).
    /// - Returns: the error to refuse the request with.
    /// - Throws: `.auditUnavailable` when the event cannot be made durable.
    public func auditCredentialFailure(_ check: CredentialCheck, requestID: String) async throws -> TutelaError {
        switch check {
        case .valid:
            return TutelaError(.invalidState, "a valid key is not a failure")
        case .missing:
            try await audit.append(
                event(kind: "auth.failed", principal: "-", requestID: requestID, outcome: "error:missing_credentials")
            )
            return TutelaError(.missingCredentials, "an API key is required (Authorization: Bearer tut_...)")
        case .invalid(let keyID, let reason):
            try await audit.append(
                event(kind: "auth.failed", principal: "-", requestID: requestID, outcome: "error:invalid_credentials")
                    .with(record: "key \(keyID): \(reason)")
            )
            return TutelaError(.invalidCredentials, "the API key is not valid (unknown, revoked or expired)")
        }
    }

    /// Audits, as one event, the refused requests from one client address that were answered
    /// 429 without an event each (`http.refusals_limited`, the address and their number).
    public func auditLimitedRefusals(address: String, count: Int) async throws {
        try await audit.append(
            event(
                kind: "http.refusals_limited",
                principal: "-",
                requestID: "-",
                resource: "refused requests",
                outcome: "error:too_many_refusals",
                count: count,
                record: "address \(address)"
            )
        )
    }

    /// The key id and the encoded secret of `tut_<16 ASCII characters>_<secret>`, found by
    /// position in the UTF-8 bytes; nil for anything else.
    static func tokenParts(_ token: String) -> (id: String, secret: Substring)? {
        let bytes = token.utf8
        guard bytes.count > 21, bytes.starts(with: "tut_".utf8) else { return nil }
        let idStart = bytes.index(bytes.startIndex, offsetBy: 4)
        let idEnd = bytes.index(idStart, offsetBy: 16)
        // Key ids are ASCII: both ends of the id then fall on character boundaries.
        guard bytes[idEnd] == UInt8(ascii: "_"),
            bytes[idStart..<idEnd].allSatisfy({ $0 < 0x80 && $0 != UInt8(ascii: "_") })
        else { return nil }
        return (String(token[idStart..<idEnd]), token[bytes.index(after: idEnd)...])
    }

    static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }
}

import Foundation
import GRDB
import SQLiteSupport
import TutelaCore

/// Where principals and their role bindings live.
public protocol PrincipalStore: Sendable {
    /// A principal by name.
    func principal(named name: String) async throws -> Principal?
    /// Every principal, by name.
    func principals() async throws -> [Principal]
    /// Inserts or replaces a principal.
    func save(_ principal: Principal, createOnly: Bool) async throws
}

extension SQLiteRecordStore: PrincipalStore {
    public func principal(named name: String) async throws -> Principal? {
        try await readDatabase { db in
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT name, roles, attributes, disabled FROM principals WHERE name = ?"),
                arguments: [name]
            ).map(Self.decodePrincipal)
        }
    }

    public func principals() async throws -> [Principal] {
        try await readDatabase { db in
            try Row.fetchAll(db, sql: "SELECT name, roles, attributes, disabled FROM principals ORDER BY name")
                .map(Self.decodePrincipal)
        }
    }

    public func save(_ principal: Principal, createOnly: Bool) async throws {
        let roles = principal.roles.sorted().joined(separator: ",")
        let attributes = String(decoding: try JSONEncoder().encode(principal.attributes), as: UTF8.self)
        try await writeDatabase { db in
            if createOnly {
                try db.execute(
                    sql: "INSERT OR IGNORE INTO principals (name, roles, attributes, disabled) VALUES (?, ?, ?, ?)",
                    arguments: [principal.name, roles, attributes, principal.disabled]
                )
                guard db.changesCount == 1 else {
                    throw TutelaError(.alreadyExists, "principal '\(principal.name)' already exists")
                }
            } else {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO principals (name, roles, attributes, disabled) VALUES (?, ?, ?, ?)",
                    arguments: [principal.name, roles, attributes, principal.disabled]
                )
            }
        }
    }

    /// A stored principal.
    ///
    /// Attributes that do not parse are an error, not an empty set: a policy that forbids by an
    /// attribute must not stop matching because its value was damaged.
    private static func decodePrincipal(_ row: Row) throws -> Principal {
        let what = "a stored principal row"
        let name: String = try row.stored(0, of: what)
        let roles: String = try row.stored(1, of: what)
        let attributesText: String = try row.stored(2, of: what)
        let attributes: [String: AttributeValue]
        do {
            attributes = try JSONDecoder().decode([String: AttributeValue].self, from: Data(attributesText.utf8))
        } catch {
            throw TutelaError(
                .storage,
                "the stored attributes of principal '\(name.escapingControlCharacters)' are damaged or were "
                    + "altered (not a JSON object of attribute values): its requests are refused until the "
                    + "database is restored"
            )
        }
        return Principal(
            name: name,
            roles: Set(roles.split(separator: ",").map(String.init)),
            attributes: attributes,
            disabled: try row.stored(3, of: what)
        )
    }
}

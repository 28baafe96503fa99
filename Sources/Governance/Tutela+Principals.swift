import Audit
import Policy
import Store
import TutelaCore

extension Tutela {
    /// The longest principal name, in bytes.
    public static let maximumPrincipalNameLength = 128

    /// Creates a principal with roles and attributes.
    /// - Throws: `.invalidInput` for an unknown role or attribute, a mistyped attribute or a
    ///   separation-of-duty conflict; `.alreadyExists` for a taken name.
    public func createPrincipal(
        name: String,
        roles: Set<String>,
        attributes: [String: String]
    ) async throws -> Principal {
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.@".contains($0) }) else {
            throw TutelaError(.invalidInput, "a principal name uses letters, digits and - _ . @ only")
        }
        // Every audit event of the principal's requests names it.
        guard name.utf8.count <= Self.maximumPrincipalNameLength else {
            throw TutelaError(
                .invalidInput,
                "a principal name has at most \(Self.maximumPrincipalNameLength) bytes, not \(name.utf8.count)"
            )
        }
        try checkRoles(roles)
        let principal = Principal(
            name: name,
            roles: roles,
            attributes: try policies.typedAttributes(attributes, .principal)
        )
        try await audited(principalEvent("principals.create", name, detail: roles.sorted().joined(separator: ","))) {
            try await principalStore.save(principal, createOnly: true)
        }
        return principal
    }

    private func principalEvent(_ kind: String, _ name: String, detail: String) -> AuditEvent {
        // Principals are staff and service accounts, not customers: their names and roles are
        // recorded in the clear.
        event(
            kind: kind,
            principal: configuration.operatorName,
            requestID: newRequestID(),
            resource: "principals",
            outcome: "started"
        )
        .with(record: "\(name) \(detail)")
    }

    /// Every principal.
    public func listPrincipals() async throws -> [Principal] {
        try await principalStore.principals()
    }

    /// A principal by name.
    public func principal(named name: String) async throws -> Principal {
        guard let principal = try await principalStore.principal(named: name) else {
            throw TutelaError(.notFound, "no principal '\(name)'")
        }
        return principal
    }

    /// Grants a role, refusing one that breaks separation of duties.
    public func grant(role: String, to name: String) async throws -> Principal {
        var principal = try await principal(named: name)
        principal.roles.insert(role)
        try checkRoles(principal.roles)
        try await audited(principalEvent("principals.grant", name, detail: role)) {
            try await principalStore.save(principal, createOnly: false)
        }
        return principal
    }

    /// Revokes a role.
    public func revoke(role: String, from name: String) async throws -> Principal {
        var principal = try await principal(named: name)
        guard principal.roles.remove(role) != nil else {
            throw TutelaError(.invalidInput, "principal '\(name)' does not hold role '\(role)'")
        }
        try await audited(principalEvent("principals.revoke", name, detail: role)) {
            try await principalStore.save(principal, createOnly: false)
        }
        return principal
    }

    /// Disables or enables a principal; a disabled principal is denied everything at once.
    public func setDisabled(_ disabled: Bool, principal name: String) async throws -> Principal {
        var principal = try await principal(named: name)
        principal.disabled = disabled
        try await audited(principalEvent(disabled ? "principals.disable" : "principals.enable", name, detail: "")) {
            try await principalStore.save(principal, createOnly: false)
        }
        return principal
    }

    private func checkRoles(_ roles: Set<String>) throws {
        for role in roles where policies.roles[role] == nil {
            let known = policies.roles.keys.sorted().joined(separator: ", ")
            throw TutelaError(.invalidInput, "unknown role '\(role)' (known: \(known))")
        }
        if let conflict = policies.violations(ofRoles: roles).first {
            throw TutelaError(
                .invalidInput,
                "roles \(conflict.roles.sorted().joined(separator: " and ")) may not be held together: \(conflict.reason)"
            )
        }
    }
}

extension Tutela {
    /// Reloads the policy directory; a set that does not validate leaves the last good one in
    /// force.
    ///
    /// Either way the attempt is audited with the digests.
    @discardableResult
    public func reloadPolicies() async throws -> PolicySet {
        let before = policies.digest
        return try await audited(
            event(
                kind: "policy.reload",
                principal: configuration.operatorName,
                requestID: newRequestID(),
                outcome: "started"
            )
            .with(record: "from \(before)")
        ) {
            try policyHolder.reload()
        }
    }
}

import Policy
import Store
import TutelaCore

extension Tutela {
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
        try checkRoles(roles)
        let principal = Principal(name: name, roles: roles, attributes: try typedAttributes(attributes))
        try await principalStore.save(principal, createOnly: true)
        return principal
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
        try await principalStore.save(principal, createOnly: false)
        return principal
    }

    /// Revokes a role.
    public func revoke(role: String, from name: String) async throws -> Principal {
        var principal = try await principal(named: name)
        guard principal.roles.remove(role) != nil else {
            throw TutelaError(.invalidInput, "principal '\(name)' does not hold role '\(role)'")
        }
        try await principalStore.save(principal, createOnly: false)
        return principal
    }

    /// Disables or enables a principal; a disabled principal is denied everything at once.
    public func setDisabled(_ disabled: Bool, principal name: String) async throws -> Principal {
        var principal = try await principal(named: name)
        principal.disabled = disabled
        try await principalStore.save(principal, createOnly: false)
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

    /// Attribute text converted to the declared types.
    func typedAttributes(_ raw: [String: String]) throws -> [String: AttributeValue] {
        var typed: [String: AttributeValue] = [:]
        for (name, text) in raw {
            guard let type = policies.principalAttributes[name] else {
                throw TutelaError(.invalidInput, "attribute '\(name)' is not declared in attributes.yaml")
            }
            switch type {
            case .string:
                typed[name] = .string(text)
            case .int:
                guard let number = Int64(text) else {
                    throw TutelaError(.invalidInput, "attribute '\(name)' is an integer")
                }
                typed[name] = .int(number)
            case .bool:
                guard let flag = Bool(text) else {
                    throw TutelaError(.invalidInput, "attribute '\(name)' is true or false")
                }
                typed[name] = .bool(flag)
            }
        }
        return typed
    }
}

import TutelaCore

/// A role from `roles.yaml`.
public struct RoleDefinition: Sendable {
    /// The role name.
    public let name: String
    /// A sentence for administrators.
    public let summary: String
    /// Roles whose permissions this role also has.
    public let inherits: [String]
}

/// A separation-of-duty constraint: no principal may hold all of these roles at once.
public struct SeparationOfDuty: Sendable {
    /// The conflicting roles.
    public let roles: Set<String>
    /// Why they conflict.
    public let reason: String
}

/// A purpose of use from `purposes.yaml`.
public struct PurposeDefinition: Sendable {
    /// The purpose name.
    public let name: String
    /// A sentence for administrators.
    public let summary: String
    /// Whether only customers who consented to it may be processed for it.
    public let requiresConsent: Bool

    /// The longest purpose name, in bytes.
    ///
    /// Every request declares a purpose and its audit event keeps it: the bound keeps a caller
    /// from growing the log by long declarations.
    public static let maximumNameLength = 64
}

/// One compiled `permit` or `forbid` rule.
public struct PolicyRule: Sendable {
    /// Permit or forbid.
    public enum Effect: String, Sendable {
        case permit
        case forbid
    }

    /// The rule's id, unique across files.
    public let id: String
    /// Permit or forbid.
    public let effect: Effect
    /// The roles it applies to (a principal matches when one of its effective roles is here).
    public let roles: Set<String>
    /// The actions it covers.
    public let actions: Set<Action>
    /// The collections it covers.
    public let collections: Set<String>
    /// The purposes it covers.
    public let purposes: Set<String>
    /// Masks per field class (permits only); `*` stands for every other class.
    public let masks: [String: MaskOperator]
    /// The field classes a forbid withholds.
    ///
    /// Empty means the whole request is forbidden; otherwise the request may still be permitted,
    /// but fields of these classes are suppressed whatever any permit says.
    public let fieldClasses: Set<String>
    /// Whether it demands consent for the purpose (permits only).
    public let requiresConsent: Bool
    /// The source text of its condition, if any.
    public let conditionText: String?
    let condition: Expression?
    /// Where it was written: "file:line".
    public let location: String
}

/// A loaded, validated and compiled set of policies: immutable and safe to share (a class, so
/// that handing the set in force to a request retains one object, not each of its tables).
///
/// `evaluate(_:)` answers with a `Decision`: default deny, `forbid` beats `permit`, rule order
/// never matters, and an allowed decision carries the masks and row filter to apply.
public final class PolicySet: Sendable {
    /// The schema the policies refer to.
    public let schema: Schema
    /// Roles by name.
    public let roles: [String: RoleDefinition]
    /// Separation-of-duty constraints.
    public let separationOfDuties: [SeparationOfDuty]
    /// Purposes by name.
    public let purposes: [String: PurposeDefinition]
    /// All rules.
    public let rules: [PolicyRule]
    /// Declared principal attribute types.
    public let principalAttributes: [String: ValueType]
    /// Declared context attribute types.
    public let contextAttributes: [String: ValueType]
    /// SHA-256 of every policy file's content, hex: names the policy set in decisions and audit.
    public let digest: String
    /// Whether any rule's condition reads the request context: when none does, requests are
    /// decided without making one.
    public let readsContext: Bool

    /// Each role with every role it inherits, itself included.
    let effectiveRoles: [String: Set<String>]
    /// Rule indices by action and role.
    let index: [Action: [String: [Int]]]
    /// Each permit's masks with `*` expanded over the schema's classes, by rule index.
    let resolvedMasks: [[String: MaskOperator]]
    /// The same as audit events record them (`Obligations.summary`), by rule index.
    let resolvedMaskSummaries: [[String]]
    /// Collections and purposes interned as bits, so that matching a rule costs two bit tests
    /// instead of two string hashes.
    ///
    /// Bit 63 stands for every name past the 63rd, which then
    /// falls back to the rule's sets.
    let collectionBits: [String: UInt64]
    let purposeBits: [String: UInt64]
    let ruleCollectionBits: [UInt64]
    let rulePurposeBits: [UInt64]

    init(
        schema: Schema,
        roles: [String: RoleDefinition],
        separationOfDuties: [SeparationOfDuty],
        purposes: [String: PurposeDefinition],
        rules: [PolicyRule],
        principalAttributes: [String: ValueType],
        contextAttributes: [String: ValueType],
        digest: String,
        effectiveRoles: [String: Set<String>]
    ) {
        self.schema = schema
        self.roles = roles
        self.separationOfDuties = separationOfDuties
        self.purposes = purposes
        self.rules = rules
        self.principalAttributes = principalAttributes
        self.contextAttributes = contextAttributes
        self.digest = digest
        self.readsContext = rules.contains { $0.condition?.readsContext ?? false }
        self.effectiveRoles = effectiveRoles
        var index: [Action: [String: [Int]]] = [:]
        for (position, rule) in rules.enumerated() {
            for action in rule.actions {
                for role in rule.roles { index[action, default: [:]][role, default: []].append(position) }
            }
        }
        self.index = index
        func intern(_ names: Set<String>) -> [String: UInt64] {
            var bits: [String: UInt64] = [:]
            for (position, name) in names.sorted().enumerated() { bits[name] = 1 << UInt64(min(position, 63)) }
            return bits
        }
        let collectionBits = intern(Set(rules.flatMap(\.collections)))
        let purposeBits = intern(Set(rules.flatMap(\.purposes)))
        self.collectionBits = collectionBits
        self.purposeBits = purposeBits
        self.ruleCollectionBits = rules.map { $0.collections.reduce(0) { $0 | (collectionBits[$1] ?? 0) } }
        self.rulePurposeBits = rules.map { $0.purposes.reduce(0) { $0 | (purposeBits[$1] ?? 0) } }
        let resolvedMasks = rules.map { rule in
            var masks = rule.masks
            if let wildcard = masks.removeValue(forKey: "*") {
                for name in schema.classes.keys where masks[name] == nil { masks[name] = wildcard }
            }
            return masks
        }
        self.resolvedMasks = resolvedMasks
        self.resolvedMaskSummaries = resolvedMasks.map { Obligations(masks: $0).summary }
    }

    /// A principal's roles with everything they inherit.
    public func effectiveRoles(of principal: Principal) -> Set<String> {
        var result: Set<String> = []
        for role in principal.roles { result.formUnion(effectiveRoles[role] ?? []) }
        return result
    }

    /// The separation-of-duty constraints a set of directly granted roles would break.
    public func violations(ofRoles granted: Set<String>) -> [SeparationOfDuty] {
        var effective: Set<String> = []
        for role in granted { effective.formUnion(effectiveRoles[role] ?? [role]) }
        return separationOfDuties.filter { $0.roles.isSubset(of: effective) }
    }

    /// Decides a request.
    public func evaluate(_ request: AccessRequest) -> Decision {
        guard let principal = request.principal else {
            return deny(.unknownPrincipal, [], "principal '\(request.principalName)' is unknown")
        }
        guard !principal.disabled else {
            return deny(.principalDisabled, [], "principal '\(principal.name)' is disabled")
        }
        guard let purpose = purposes[request.purpose] else {
            return deny(.unknownPurpose, [], "purpose '\(request.purpose)' is not declared in purposes.yaml")
        }
        if request.action != .infer, request.action != .train, schema.collections[request.collection] == nil {
            return deny(.unknownCollection, [], "collection '\(request.collection)' is not in the schema")
        }
        var candidates: [Int] = []
        if let byRole = index[request.action] {
            for granted in principal.roles {
                for role in effectiveRoles[granted] ?? [] {
                    if let positions = byRole[role] { candidates.append(contentsOf: positions) }
                }
            }
        }
        candidates.sort()
        let collectionBit = collectionBits[request.collection] ?? 0
        let purposeBit = purposeBits[request.purpose] ?? 0
        let overflow: UInt64 = 1 << 63
        var permits: [Int] = []
        var forbids: [Int] = []
        var withheld: [Int] = []
        var previous = -1
        for position in candidates where position != previous {
            previous = position
            guard ruleCollectionBits[position] & collectionBit != 0, rulePurposeBits[position] & purposeBit != 0 else {
                continue
            }
            // The rule's parts are read in place: a copy of the rule would retain each of its
            // sets and strings, on every request, from both cores.
            if collectionBit == overflow, !rules[position].collections.contains(request.collection) { continue }
            if purposeBit == overflow, !rules[position].purposes.contains(request.purpose) { continue }
            switch rules[position].effect {
            case .forbid:
                // Fail closed: a forbid whose condition cannot be decided (a missing attribute) applies.
                if let condition = rules[position].condition, case .bool(false)? = condition.evaluate(request) {
                    continue
                }
                if rules[position].fieldClasses.isEmpty {
                    forbids.append(position)
                } else {
                    withheld.append(position)
                }
            case .permit:
                if let condition = rules[position].condition, condition.evaluate(request) != .bool(true) { continue }
                permits.append(position)
            }
        }
        if !forbids.isEmpty {
            let ids = forbids.map { rules[$0].id }
            return deny(.forbidden, ids, "forbidden by \(ids.joined(separator: ", "))")
        }
        guard let first = permits.first else {
            let roleList = effectiveRoles(of: principal).sorted().joined(separator: ", ")
            return deny(
                .notPermitted,
                [],
                "no permit lets roles [\(roleList)] \(request.action.rawValue) \(request.collection) for \(request.purpose)"
            )
        }
        // One permit, the common case, hands over its resolved masks as they are; several merge,
        // the most revealing operator per class winning.
        var obligations = Obligations(masks: resolvedMasks[first], requiresConsent: purpose.requiresConsent)
        for position in permits {
            obligations.requiresConsent = obligations.requiresConsent || rules[position].requiresConsent
            guard position != first else { continue }
            for (fieldClass, mask) in resolvedMasks[position] {
                if let current = obligations.masks[fieldClass], current.revealingRank >= mask.revealingRank { continue }
                obligations.masks[fieldClass] = mask
            }
        }
        var explanation = "permitted by \(permits.map { rules[$0].id }.joined(separator: ", "))"
        if !withheld.isEmpty {
            var classes: Set<String> = []
            for position in withheld { classes.formUnion(rules[position].fieldClasses) }
            for fieldClass in classes { obligations.masks[fieldClass] = .suppress }
            explanation +=
                "; \(classes.sorted().joined(separator: ", ")) withheld by "
                + withheld.map { rules[$0].id }.joined(separator: ", ")
        }
        return Decision(
            denial: nil,
            policyIDs: (permits + withheld).map { rules[$0].id },
            obligations: obligations,
            policySetDigest: digest,
            explanation: explanation,
            maskSummary: permits.count == 1 && withheld.isEmpty ? resolvedMaskSummaries[first] : nil
        )
    }

    private func deny(_ denial: Decision.Denial, _ ids: [String], _ explanation: String) -> Decision {
        Decision(
            denial: denial,
            policyIDs: ids,
            obligations: Obligations(),
            policySetDigest: digest,
            explanation: explanation
        )
    }
}

extension PolicySet {
    /// How a request reached Tutela, as `context.channel` tells conditions.
    public enum Channel: String, Sendable {
        /// The HTTP gateway.
        case api
        /// A command of the command line.
        case cli
    }

    /// The context a request is decided with: the caller's attributes, typed, with the two that
    /// Tutela supplies itself when `attributes.yaml` declares them and the caller did not give
    /// them: `channel` (a string: `api` or `cli`) and `hour` (an integer: the hour of `now`,
    /// 0 to 23, UTC).
    /// - Parameter now: milliseconds since the epoch.
    /// - Throws: as `typedAttributes`.
    public func requestContext(
        _ raw: [String: String],
        channel: Channel,
        now: Int64
    ) throws -> [String: AttributeValue] {
        var context = try typedAttributes(raw, .context)
        if contextAttributes["channel"] == .string, context["channel"] == nil {
            context["channel"] = .string(channel.rawValue)
        }
        if contextAttributes["hour"] == .int, context["hour"] == nil {
            // Floor division: the hour of a time before 1970 is still 0 to 23.
            let hours = now >= 0 ? now / 3_600_000 : (now - 3_599_999) / 3_600_000
            context["hour"] = .int(((hours % 24) + 24) % 24)
        }
        return context
    }

    /// Which attributes `typedAttributes` converts: a principal's or a request context's.
    public enum AttributeKind: Sendable {
        case principal
        case context
    }

    /// Attribute text converted to the types `attributes.yaml` declares.
    ///
    /// A name it does not declare, or a value not of the declared type, is refused: a condition
    /// would otherwise read the attribute as missing, and decide as if it had not been given.
    /// - Throws: `.invalidInput` naming the attribute (never its value).
    public func typedAttributes(_ raw: [String: String], _ kind: AttributeKind) throws -> [String: AttributeValue] {
        let (declared, what) =
            switch kind {
            case .principal: (principalAttributes, "attribute")
            case .context: (contextAttributes, "context attribute")
            }
        var typed: [String: AttributeValue] = [:]
        for (name, text) in raw {
            guard let type = declared[name] else {
                throw TutelaError(.invalidInput, "\(what) '\(name)' is not declared in attributes.yaml")
            }
            switch type {
            case .string:
                typed[name] = .string(text)
            case .int:
                guard let number = Int64(text) else {
                    throw TutelaError(.invalidInput, "\(what) '\(name)' is an integer")
                }
                typed[name] = .int(number)
            case .bool:
                guard let flag = Bool(text) else {
                    throw TutelaError(.invalidInput, "\(what) '\(name)' is true or false")
                }
                typed[name] = .bool(flag)
            }
        }
        return typed
    }
}

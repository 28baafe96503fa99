import Crypto
import Foundation
import TutelaCore

/// Loads `Policies/`: `schema.yaml`, `attributes.yaml`, `roles.yaml`, `purposes.yaml` and every
/// `policies/*.yaml`; validates them together and compiles a `PolicySet`.
///
/// Every problem names file and line. A set that does not validate is never returned, so a
/// caller that keeps its last good set on error reloads atomically.
public enum PolicyLoader {
    /// Loads and compiles the policy directory.
    /// - Throws: `TutelaError` with `.configurationInvalid` naming file, line and the problem.
    public static func load(directory: String) throws -> PolicySet {
        let schemaFile = directory + "/schema.yaml"
        let schema = try SchemaLoader.load(file: schemaFile)
        var digestInput = Data()
        func read(_ name: String) throws -> YAMLNode {
            let path = directory + "/" + name
            guard let data = FileManager.default.contents(atPath: path) else {
                throw TutelaError(.configurationInvalid, "\(path): cannot be read")
            }
            digestInput.append(Data(name.utf8))
            digestInput.append(data)
            return try YAMLNode.parse(try FileReading.text(data, of: path, code: .configurationInvalid), file: path)
        }
        digestInput.append(Data(schema.digest.utf8))
        let (principalAttributes, contextAttributes) = try attributes(try read("attributes.yaml"))
        let (roles, separation) = try roles(try read("roles.yaml"))
        let purposes = try purposes(try read("purposes.yaml"))
        let effective = try effectiveRoles(roles, file: directory + "/roles.yaml")
        let policyDirectory = directory + "/policies"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: policyDirectory)) ?? [])
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        guard !names.isEmpty else {
            throw TutelaError(.configurationInvalid, "\(policyDirectory): holds no policy file (*.yaml)")
        }
        var context = RuleContext(
            schema: schema,
            roles: roles,
            purposes: purposes,
            parser: ExpressionParser(principalAttributes: principalAttributes, contextAttributes: contextAttributes)
        )
        var rules: [PolicyRule] = []
        var ids: [String: String] = [:]
        for name in names {
            let root = try read("policies/" + name)
            let top = try root.fields("a policy file", allowed: ["policies"])
            guard let list = top["policies"] else { throw root.error("a policy file holds a 'policies' list") }
            for item in try list.sequence("policies") {
                let rule = try context.rule(item)
                if let earlier = ids.updateValue(rule.location, forKey: rule.id) {
                    throw item.error("policy id '\(rule.id)' is used twice (also at \(earlier))")
                }
                rules.append(rule)
            }
        }
        try checkReachability(rules, effectiveRoles: effective)
        let digest = Hex.encode(SHA256.hash(data: digestInput))
        return PolicySet(
            schema: schema,
            roles: roles,
            separationOfDuties: separation,
            purposes: purposes,
            rules: rules,
            principalAttributes: principalAttributes,
            contextAttributes: contextAttributes,
            digest: digest,
            effectiveRoles: effective
        )
    }

    private static func attributes(_ root: YAMLNode) throws -> ([String: ValueType], [String: ValueType]) {
        let top = try root.fields("attributes.yaml", allowed: ["principal", "context"])
        func declared(_ node: YAMLNode?) throws -> [String: ValueType] {
            guard let node else { return [:] }
            var result: [String: ValueType] = [:]
            for (name, typeNode) in try node.mapping("attributes") {
                let typeName = try typeNode.string("attribute type")
                guard let type = ValueType(rawValue: typeName) else {
                    throw typeNode.error("attribute '\(name)' has unknown type '\(typeName)' (string, int or bool)")
                }
                result[name] = type
            }
            return result
        }
        return (try declared(top["principal"]), try declared(top["context"]))
    }

    private static func roles(_ root: YAMLNode) throws -> ([String: RoleDefinition], [SeparationOfDuty]) {
        let top = try root.fields("roles.yaml", allowed: ["roles", "separation_of_duties"])
        guard let rolesNode = top["roles"] else { throw root.error("roles.yaml needs a 'roles' mapping") }
        var roles: [String: RoleDefinition] = [:]
        var inheritNodes: [(String, YAMLNode)] = []
        for (name, node) in try rolesNode.mapping("roles") {
            let entry = try node.fields("role '\(name)'", allowed: ["summary", "inherits"])
            let inherits = try entry["inherits"].map { try $0.sequence("inherits").map { try $0.string("role") } } ?? []
            if let inheritsNode = entry["inherits"] { inheritNodes.append((name, inheritsNode)) }
            roles[name] = RoleDefinition(
                name: name,
                summary: try entry["summary"]?.string("summary") ?? "",
                inherits: inherits
            )
        }
        for (name, node) in inheritNodes {
            for parent in roles[name]?.inherits ?? [] where roles[parent] == nil {
                throw node.error("role '\(name)' inherits unknown role '\(parent)'")
            }
        }
        var separation: [SeparationOfDuty] = []
        for item in try top["separation_of_duties"]?.sequence("separation_of_duties") ?? [] {
            let entry = try item.fields("a separation-of-duty rule", allowed: ["roles", "reason"])
            guard let list = entry["roles"] else { throw item.error("a separation-of-duty rule lists 'roles'") }
            let names = try list.sequence("roles").map { try $0.string("role") }
            for name in names where roles[name] == nil {
                throw list.error("separation of duty names unknown role '\(name)'")
            }
            guard Set(names).count >= 2 else { throw list.error("separation of duty needs at least two roles") }
            separation.append(SeparationOfDuty(roles: Set(names), reason: try entry["reason"]?.string("reason") ?? ""))
        }
        return (roles, separation)
    }

    private static func purposes(_ root: YAMLNode) throws -> [String: PurposeDefinition] {
        let top = try root.fields("purposes.yaml", allowed: ["purposes"])
        guard let node = top["purposes"] else { throw root.error("purposes.yaml needs a 'purposes' mapping") }
        var purposes: [String: PurposeDefinition] = [:]
        for (name, entryNode) in try node.mapping("purposes") {
            guard name.utf8.count <= PurposeDefinition.maximumNameLength else {
                throw entryNode.error(
                    "a purpose name has at most \(PurposeDefinition.maximumNameLength) bytes: '\(name.prefix(20))…'"
                )
            }
            let entry = try entryNode.fields("purpose '\(name)'", allowed: ["summary", "requires_consent"])
            guard let consent = entry["requires_consent"] else {
                throw entryNode.error("purpose '\(name)' must say 'requires_consent: true' or 'false'")
            }
            purposes[name] = PurposeDefinition(
                name: name,
                summary: try entry["summary"]?.string("summary") ?? "",
                requiresConsent: try consent.bool("requires_consent")
            )
        }
        return purposes
    }

    /// Each role's closure under inheritance; a cycle is an error.
    private static func effectiveRoles(_ roles: [String: RoleDefinition], file: String) throws -> [String: Set<String>]
    {
        var result: [String: Set<String>] = [:]
        func visit(_ name: String, _ path: [String]) throws -> Set<String> {
            if let done = result[name] { return done }
            if path.contains(name) {
                let cycle = (path.drop { $0 != name } + [name]).joined(separator: " -> ")
                throw TutelaError(.configurationInvalid, "\(file): roles inherit in a cycle: \(cycle)")
            }
            var closure: Set<String> = [name]
            for parent in roles[name]?.inherits ?? [] { closure.formUnion(try visit(parent, path + [name])) }
            result[name] = closure
            return closure
        }
        for name in roles.keys.sorted() { _ = try visit(name, []) }
        return result
    }

    /// Refuses permits that can never take effect because an unconditional forbid covers every
    /// principal, action, collection and purpose they cover.
    private static func checkReachability(_ rules: [PolicyRule], effectiveRoles: [String: Set<String>]) throws {
        let forbids = rules.filter { $0.effect == .forbid && $0.condition == nil && $0.fieldClasses.isEmpty }
        for permit in rules where permit.effect == .permit {
            let shadowed = permit.roles.allSatisfy { role in
                let holders = effectiveRoles[role] ?? [role]
                return forbids.contains { forbid in
                    !forbid.roles.isDisjoint(with: holders) && permit.actions.isSubset(of: forbid.actions)
                        && permit.collections.isSubset(of: forbid.collections)
                        && permit.purposes.isSubset(of: forbid.purposes)
                }
            }
            if shadowed {
                throw TutelaError(
                    .configurationInvalid,
                    "\(permit.location): permit '\(permit.id)' can never take effect: an unconditional forbid covers all it permits"
                )
            }
        }
    }
}

/// What a rule is checked against while it is read.
private struct RuleContext {
    let schema: Schema
    let roles: [String: RoleDefinition]
    let purposes: [String: PurposeDefinition]
    var parser: ExpressionParser

    mutating func rule(_ node: YAMLNode) throws -> PolicyRule {
        let entry = try node.fields(
            "a policy",
            allowed: [
                "id", "description", "effect", "roles", "actions", "collections", "purposes", "when", "masks",
                "require_consent", "field_classes",
            ]
        )
        guard let idNode = entry["id"], let effectNode = entry["effect"] else {
            throw node.error("a policy needs 'id' and 'effect'")
        }
        let id = try idNode.string("id")
        let effectName = try effectNode.string("effect")
        guard let effect = PolicyRule.Effect(rawValue: effectName) else {
            throw effectNode.error("policy '\(id)': effect must be permit or forbid, not '\(effectName)'")
        }
        func names(_ key: String) throws -> (Set<String>, YAMLNode) {
            guard let list = entry[key] else { throw node.error("policy '\(id)' needs '\(key)'") }
            let values = try list.sequence(key).map { try $0.string(key) }
            guard !values.isEmpty else { throw list.error("policy '\(id)': '\(key)' is empty, so it can never fire") }
            return (Set(values), list)
        }
        let (roleNames, rolesNode) = try names("roles")
        for role in roleNames where roles[role] == nil {
            throw rolesNode.error("policy '\(id)' names unknown role '\(role)'")
        }
        let (actionNames, actionsNode) = try names("actions")
        var actions: Set<Action> = []
        for name in actionNames {
            guard let action = Action(rawValue: name) else {
                let known = Action.allCases.map(\.rawValue).joined(separator: ", ")
                throw actionsNode.error("policy '\(id)' names unknown action '\(name)' (known: \(known))")
            }
            actions.insert(action)
        }
        let (collections, collectionsNode) = try names("collections")
        let dataActions = actions.subtracting([.infer, .train])
        if !dataActions.isEmpty {
            for collection in collections where schema.collections[collection] == nil {
                throw collectionsNode.error("policy '\(id)' names unknown collection '\(collection)'")
            }
        }
        let (purposeNames, purposesNode) = try names("purposes")
        for purpose in purposeNames where purposes[purpose] == nil {
            throw purposesNode.error("policy '\(id)' names unknown purpose '\(purpose)'")
        }
        var condition: Expression?
        var conditionText: String?
        if let whenNode = entry["when"] {
            let text = try whenNode.string("when")
            do {
                condition = try parser.parseCondition(text)
            } catch {
                throw whenNode.error("policy '\(id)': condition: \(error.message)")
            }
            conditionText = text
        }
        var masks: [String: MaskOperator] = [:]
        if let masksNode = entry["masks"] {
            guard effect == .permit else { throw masksNode.error("policy '\(id)': only a permit carries masks") }
            for (fieldClass, maskNode) in try masksNode.mapping("masks") {
                guard fieldClass == "*" || schema.classes[fieldClass] != nil else {
                    throw maskNode.error("policy '\(id)' masks unknown field class '\(fieldClass)'")
                }
                let maskText = try maskNode.string("mask")
                do {
                    masks[fieldClass] = try MaskSyntax.parse(maskText)
                } catch {
                    throw maskNode.error("policy '\(id)': \(error.message)")
                }
            }
        }
        var fieldClasses: Set<String> = []
        if let classesNode = entry["field_classes"] {
            guard effect == .forbid else {
                throw classesNode.error(
                    "policy '\(id)': field_classes belongs to a forbid; a permit names classes in masks"
                )
            }
            for item in try classesNode.sequence("field_classes") {
                let name = try item.string("field class")
                guard schema.classes[name] != nil else {
                    throw item.error("policy '\(id)' withholds unknown field class '\(name)'")
                }
                fieldClasses.insert(name)
            }
            guard !fieldClasses.isEmpty else { throw classesNode.error("policy '\(id)': field_classes is empty") }
        }
        let requiresConsent = try entry["require_consent"]?.bool("require_consent") ?? false
        return PolicyRule(
            id: id,
            effect: effect,
            roles: roleNames,
            actions: actions,
            collections: collections,
            purposes: purposeNames,
            masks: masks,
            fieldClasses: fieldClasses,
            requiresConsent: requiresConsent,
            conditionText: conditionText,
            condition: condition,
            location: node.location
        )
    }
}

/// The textual form of masks in policy files.
public enum MaskSyntax {
    /// The largest number a mask takes: far past any useful band, length or shift, and small
    /// enough that no sum or product masking makes of it overflows.
    public static let maximumArgument = 1_000_000_000

    /// Parses `clear`, `scrub_pii`, `redact`, `class_token`, `suppress`, `pseudonym`, `reversible_token`,
    /// `partial(first: 1, last: 4)`, `generalize(band: 10)`, `generalize(prefix: 3)`,
    /// `generalize(month)`, `generalize(year)` or `date_shift(days: 30)`.
    static func parse(_ text: String) throws(ConditionError) -> MaskOperator {
        let trimmed = text.filter { !$0.isWhitespace }
        let name = String(trimmed.prefix { $0 != "(" })
        var arguments: [String: Int] = [:]
        var flags: [String] = []
        if trimmed.count > name.count {
            guard trimmed.hasSuffix(")") else { throw ConditionError("mask '\(text)' has an unclosed '('") }
            let inside = trimmed.dropFirst(name.count + 1).dropLast()
            for part in inside.split(separator: ",") {
                let pair = part.split(separator: ":")
                if pair.count == 2, let value = Int(pair[1]), value >= 0 {
                    guard value <= maximumArgument else {
                        throw ConditionError("mask '\(text)': '\(pair[0])' may be at most \(maximumArgument)")
                    }
                    // Given twice, one of the two would be dropped without a word.
                    guard arguments.updateValue(value, forKey: String(pair[0])) == nil else {
                        throw ConditionError("mask '\(text)' gives '\(pair[0])' more than once")
                    }
                } else if pair.count == 1 {
                    flags.append(String(pair[0]))
                } else {
                    throw ConditionError("mask '\(text)' has a malformed argument '\(part)'")
                }
            }
        }
        // Only generalize takes a bare word: elsewhere one is a malformed argument, such as the
        // typo 'last 4' (read as 'last4', white space being dropped).
        func only(_ allowed: Set<String>) throws(ConditionError) {
            for key in arguments.keys where !allowed.contains(key) {
                throw ConditionError("mask '\(name)' takes no argument '\(key)'")
            }
            if let flag = flags.first {
                throw ConditionError("mask '\(text)' has a malformed argument '\(flag)' (NAME: NUMBER)")
            }
        }
        switch name {
        case "clear", "redact", "class_token", "suppress", "pseudonym", "reversible_token", "scrub_pii":
            guard arguments.isEmpty, flags.isEmpty else { throw ConditionError("mask '\(name)' takes no arguments") }
            switch name {
            case "clear": return .clear
            case "redact": return .redact
            case "class_token": return .classToken
            case "suppress": return .suppress
            case "pseudonym": return .pseudonym
            case "scrub_pii": return .scrubPII
            default: return .reversibleToken
            }
        case "partial":
            try only(["first", "last"])
            let first = arguments["first"] ?? 0
            let last = arguments["last"] ?? 0
            guard first + last > 0 else { throw ConditionError("partial keeps nothing: give first or last") }
            return .partial(keepFirst: first, keepLast: last)
        case "generalize":
            if let width = arguments["band"], arguments.count == 1, flags.isEmpty, width > 0 {
                return .generalize(.band(width: width))
            }
            if let length = arguments["prefix"], arguments.count == 1, flags.isEmpty {
                return .generalize(.prefix(length: length))
            }
            if arguments.isEmpty, flags == ["month"] { return .generalize(.month) }
            if arguments.isEmpty, flags == ["year"] { return .generalize(.year) }
            throw ConditionError("generalize takes one of band: N, prefix: N, month, year")
        case "date_shift":
            try only(["days"])
            guard let days = arguments["days"], days > 0 else { throw ConditionError("date_shift needs days: N") }
            return .dateShift(maxDays: days)
        default:
            throw ConditionError(
                "unknown mask '\(name)' (clear, scrub_pii, redact, class_token, suppress, pseudonym, reversible_token, partial, generalize, date_shift)"
            )
        }
    }
}

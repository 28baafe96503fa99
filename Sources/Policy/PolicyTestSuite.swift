import Foundation
import TutelaCore

/// One case of `Policies/tests/*.yaml`: a request and the decision it must get.
public struct PolicyTestCase: Sendable, CustomStringConvertible {
    /// The case's name.
    public let name: String
    /// Where it was written: "file:line".
    public let location: String
    /// The request.
    public let request: AccessRequest
    /// The expected outcome: nil for allow, else the denial.
    public let expectedDenial: Decision.Denial?
    /// The expected deciding policy ids, when given.
    public let expectedPolicies: Set<String>?
    /// The expected consent requirement, when given.
    public let expectedConsent: Bool?
    /// The expected masks for some classes.
    public let expectedMasks: [String: MaskOperator]

    public var description: String { name }

    /// Runs the case.
    /// - Returns: the problems found; empty when the case passes.
    public func check(against policies: PolicySet) -> [String] {
        let decision = policies.evaluate(request)
        var problems: [String] = []
        if decision.denial != expectedDenial {
            let expected = expectedDenial.map { "deny (\($0.rawValue))" } ?? "allow"
            let actual = decision.denial.map { "deny (\($0.rawValue))" } ?? "allow"
            problems.append("expected \(expected), got \(actual): \(decision.explanation)")
        }
        if let expectedPolicies, Set(decision.policyIDs) != expectedPolicies {
            problems.append(
                "expected policies [\(expectedPolicies.sorted().joined(separator: ", "))], got [\(decision.policyIDs.joined(separator: ", "))]"
            )
        }
        if let expectedConsent, decision.isAllowed, decision.obligations.requiresConsent != expectedConsent {
            problems.append("expected consent_required \(expectedConsent), got \(decision.obligations.requiresConsent)")
        }
        if decision.isAllowed {
            for (fieldClass, mask) in expectedMasks.sorted(by: { $0.key < $1.key }) {
                let actual = decision.obligations.mask(forClass: fieldClass)
                if actual != mask { problems.append("class \(fieldClass): expected \(mask), got \(actual)") }
            }
        }
        return problems
    }
}

/// Loads the policy tests of a policy directory.
public enum PolicyTestSuite {
    /// Every case of `tests/*.yaml` under `directory`, in file order.
    /// - Throws: `TutelaError` with `.configurationInvalid` naming file and line.
    public static func load(directory: String, policies: PolicySet) throws -> [PolicyTestCase] {
        let testDirectory = directory + "/tests"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: testDirectory)) ?? [])
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        var cases: [PolicyTestCase] = []
        for name in names {
            let root = try YAMLNode.load(file: testDirectory + "/" + name)
            let top = try root.fields("a policy test file", allowed: ["tests"])
            guard let list = top["tests"] else { throw root.error("a policy test file holds a 'tests' list") }
            for item in try list.sequence("tests") { cases.append(try testCase(item, policies: policies)) }
        }
        return cases
    }

    private static func testCase(_ node: YAMLNode, policies: PolicySet) throws -> PolicyTestCase {
        let entry = try node.fields(
            "a policy test",
            allowed: ["name", "principal", "action", "collection", "purpose", "context", "expect"]
        )
        guard let nameNode = entry["name"], let principalNode = entry["principal"], let actionNode = entry["action"],
            let collectionNode = entry["collection"], let purposeNode = entry["purpose"],
            let expectNode = entry["expect"]
        else {
            throw node.error("a policy test needs name, principal, action, collection, purpose and expect")
        }
        let name = try nameNode.string("name")
        let principalEntry = try principalNode.fields(
            "the test principal",
            allowed: ["name", "roles", "attributes", "disabled"]
        )
        let roles = try principalEntry["roles"]?.sequence("roles").map { try $0.string("role") } ?? []
        for role in roles where policies.roles[role] == nil {
            throw principalNode.error("test '\(name)' names unknown role '\(role)'")
        }
        let principal = Principal(
            name: try principalEntry["name"]?.string("name") ?? "test-principal",
            roles: Set(roles),
            attributes: try attributes(principalEntry["attributes"], declared: policies.principalAttributes),
            disabled: try principalEntry["disabled"]?.bool("disabled") ?? false
        )
        let actionName = try actionNode.string("action")
        guard let action = Action(rawValue: actionName) else {
            throw actionNode.error("unknown action '\(actionName)'")
        }
        let request = AccessRequest(
            principal: principal,
            action: action,
            collection: try collectionNode.string("collection"),
            purpose: try purposeNode.string("purpose"),
            context: try attributes(entry["context"], declared: policies.contextAttributes)
        )
        let expect = try expectNode.fields(
            "expect",
            allowed: ["decision", "reason", "policies", "masks", "consent_required"]
        )
        guard let decisionNode = expect["decision"] else {
            throw expectNode.error("expect needs 'decision: allow|deny'")
        }
        let decision = try decisionNode.string("decision")
        var denial: Decision.Denial?
        switch decision {
        case "allow":
            denial = nil
        case "deny":
            let reason = try expect["reason"]?.string("reason") ?? Decision.Denial.notPermitted.rawValue
            guard let parsed = Decision.Denial(rawValue: reason) else {
                throw expectNode.error("unknown denial reason '\(reason)'")
            }
            denial = parsed
        default:
            throw decisionNode.error("decision must be allow or deny")
        }
        var masks: [String: MaskOperator] = [:]
        for (fieldClass, maskNode) in try expect["masks"]?.mapping("masks") ?? [] {
            let text = try maskNode.string("mask")
            do {
                masks[fieldClass] = try MaskSyntax.parse(text)
            } catch {
                throw maskNode.error(error.message)
            }
        }
        return PolicyTestCase(
            name: name,
            location: node.location,
            request: request,
            expectedDenial: denial,
            expectedPolicies: try expect["policies"].map {
                Set(try $0.sequence("policies").map { try $0.string("policy") })
            },
            expectedConsent: try expect["consent_required"]?.bool("consent_required"),
            expectedMasks: masks
        )
    }

    private static func attributes(_ node: YAMLNode?, declared: [String: ValueType]) throws -> [String: AttributeValue]
    {
        guard let node else { return [:] }
        var result: [String: AttributeValue] = [:]
        for (name, valueNode) in try node.mapping("attributes") {
            guard let type = declared[name] else {
                throw valueNode.error("attribute '\(name)' is not declared in attributes.yaml")
            }
            switch type {
            case .string: result[name] = .string(try valueNode.string(name))
            case .int: result[name] = .int(Int64(try valueNode.int(name)))
            case .bool: result[name] = .bool(try valueNode.bool(name))
            }
        }
        return result
    }
}

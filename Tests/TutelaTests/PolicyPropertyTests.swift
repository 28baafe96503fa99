import Governance
import Testing
import TutelaCore
import TutelaTestSupport

@testable import Policy

/// Properties of the decision procedure over many random policy sets and requests.
@Suite("Policy decision properties")
struct PolicyPropertyTests {
    static let roles = ["r0", "r1", "r2", "r3"]
    static let actions: [Action] = [.read, .export, .lookup]
    static let collections = ["customers", "interactions"]
    static let purposes = ["p0", "p1"]

    struct Generator {
        var random: SplitMix64

        mutating func subset<T>(_ items: [T]) -> [T] {
            let chosen = items.filter { _ in random.next(below: 2) == 0 }
            return chosen.isEmpty ? [items[random.next(below: items.count)]] : chosen
        }

        mutating func rule(_ number: Int, effect: PolicyRule.Effect) -> PolicyRule {
            PolicyRule(
                id: "\(effect.rawValue)-\(number)",
                effect: effect,
                roles: Set(subset(PolicyPropertyTests.roles)),
                actions: Set(subset(PolicyPropertyTests.actions)),
                collections: Set(subset(PolicyPropertyTests.collections)),
                purposes: Set(subset(PolicyPropertyTests.purposes)),
                masks: effect == .permit ? masks() : [:],
                fieldClasses: [],
                requiresConsent: false,
                conditionText: nil,
                condition: nil,
                location: "generated"
            )
        }

        /// A few classes (the wildcard among them) with operators from most to least revealing.
        mutating func masks() -> [String: MaskOperator] {
            let operators: [MaskOperator] = [.clear, .partial(keepFirst: 0, keepLast: 4), .redact, .suppress]
            var masks: [String: MaskOperator] = [:]
            for fieldClass in subset(["public", "pii.email", "quasi.age", "*"]) {
                masks[fieldClass] = operators[random.next(below: operators.count)]
            }
            return masks
        }

        mutating func request() -> AccessRequest {
            AccessRequest(
                principal: Principal(name: "p", roles: Set(subset(PolicyPropertyTests.roles))),
                action: PolicyPropertyTests.actions[random.next(below: 3)],
                collection: PolicyPropertyTests.collections[random.next(below: 2)],
                purpose: PolicyPropertyTests.purposes[random.next(below: 2)]
            )
        }
    }

    static func policySet(_ rules: [PolicyRule], schema: Schema) -> PolicySet {
        var roleDefinitions: [String: RoleDefinition] = [:]
        var effective: [String: Set<String>] = [:]
        for role in roles {
            // r1 inherits r0, so inheritance is exercised too.
            let inherits = role == "r1" ? ["r0"] : []
            roleDefinitions[role] = RoleDefinition(name: role, summary: "", inherits: inherits)
            effective[role] = Set([role] + inherits)
        }
        return PolicySet(
            schema: schema,
            roles: roleDefinitions,
            separationOfDuties: [],
            purposes: Dictionary(
                uniqueKeysWithValues: purposes.map {
                    ($0, PurposeDefinition(name: $0, summary: "", requiresConsent: false))
                }
            ),
            rules: rules,
            principalAttributes: [:],
            contextAttributes: [:],
            digest: "test",
            effectiveRoles: effective
        )
    }

    /// Whether a rule applies to a request, decided independently of the engine's index.
    static func matches(_ rule: PolicyRule, _ request: AccessRequest) -> Bool {
        var effective: Set<String> = []
        for role in request.principal?.roles ?? [] { effective.formUnion(role == "r1" ? ["r1", "r0"] : [role]) }
        return !rule.roles.isDisjoint(with: effective) && rule.actions.contains(request.action)
            && rule.collections.contains(request.collection) && rule.purposes.contains(request.purpose)
    }

    @Test(
        "forbid always wins, no permit means deny, the engine agrees with a brute-force oracle, and a decision's mask summary is its obligations'"
    )
    func forbidWinsAndDefaultDeny() throws {
        let schema = try TestEnvironment.schema()
        var generator = Generator(random: SplitMix64(seed: 2024))
        var checked = 0
        for _ in 0..<200 {
            let rules = (0..<generator.random.next(below: 8)).map { number in
                generator.rule(number, effect: generator.random.next(below: 4) == 0 ? .forbid : .permit)
            }
            let policies = Self.policySet(rules, schema: schema)
            for _ in 0..<40 {
                let request = generator.request()
                let decision = policies.evaluate(request)
                #expect(decision.maskSummary == decision.obligations.summary)
                let forbids = rules.filter { $0.effect == .forbid && Self.matches($0, request) }
                let permits = rules.filter { $0.effect == .permit && Self.matches($0, request) }
                if !forbids.isEmpty {
                    #expect(decision.denial == .forbidden)
                    #expect(Set(decision.policyIDs) == Set(forbids.map(\.id)))
                } else if permits.isEmpty {
                    #expect(decision.denial == .notPermitted)
                } else {
                    #expect(decision.isAllowed)
                    #expect(Set(decision.policyIDs) == Set(permits.map(\.id)))
                }
                checked += 1
            }
        }
        #expect(checked == 8000)
    }

    @Test("adding a permit never turns another request's allow into deny, nor reveals less")
    func permitsAreMonotonic() throws {
        let schema = try TestEnvironment.schema()
        var generator = Generator(random: SplitMix64(seed: 7))
        for _ in 0..<200 {
            let rules = (0..<generator.random.next(below: 8)).map { number in
                generator.rule(number, effect: generator.random.next(below: 4) == 0 ? .forbid : .permit)
            }
            let before = Self.policySet(rules, schema: schema)
            let after = Self.policySet(rules + [generator.rule(99, effect: .permit)], schema: schema)
            for _ in 0..<40 {
                let request = generator.request()
                let old = before.evaluate(request)
                let new = after.evaluate(request)
                if old.isAllowed {
                    #expect(new.isAllowed)
                    for (fieldClass, mask) in old.obligations.masks {
                        #expect(new.obligations.mask(forClass: fieldClass).revealingRank >= mask.revealingRank)
                    }
                }
            }
        }
    }
}

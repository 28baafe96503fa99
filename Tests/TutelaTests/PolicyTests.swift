import Foundation
import Testing
import TutelaCore
import TutelaTestSupport

@testable import Policy

@Suite("Policy set: the shipped policies and their tests")
struct ShippedPolicyTests {
    static let directory = TestEnvironment.policiesDirectory
    static let policies = Result { try PolicyLoader.load(directory: directory) }
    static let cases: [PolicyTestCase] = {
        guard case .success(let policies) = policies else { return [] }
        return (try? PolicyTestSuite.load(directory: directory, policies: policies)) ?? []
    }()

    @Test("the shipped policy set loads and has tests")
    func loads() throws {
        let policies = try Self.policies.get()
        #expect(policies.rules.count >= 10)
        #expect(Self.cases.count >= 15)
        #expect(policies.digest.count == 64)
    }

    @Test("each case of Policies/tests passes", arguments: cases)
    func policyCase(_ testCase: PolicyTestCase) throws {
        let problems = testCase.check(against: try Self.policies.get())
        #expect(problems.isEmpty, "\(testCase.location): \(problems.joined(separator: "; "))")
    }

    @Test("a case that expects the wrong answer fails")
    func failingCaseIsReported() throws {
        let policies = try Self.policies.get()
        let wrong = try #require(Self.cases.first { $0.expectedDenial == nil })
        let flipped = PolicyTestCase(
            name: wrong.name,
            location: wrong.location,
            request: wrong.request,
            expectedDenial: .forbidden,
            expectedPolicies: nil,
            expectedConsent: nil,
            expectedMasks: [:]
        )
        #expect(!flipped.check(against: policies).isEmpty)
    }

    @Test("granting conflicting roles breaks separation of duties, also through inheritance")
    func separationOfDuties() throws {
        let policies = try Self.policies.get()
        #expect(policies.violations(ofRoles: ["model_trainer", "data_protection_officer"]).count == 1)
        #expect(policies.violations(ofRoles: ["support_agent", "senior_support_agent"]).isEmpty)
        #expect(
            policies.effectiveRoles(of: Principal(name: "p", roles: ["senior_support_agent"])) == [
                "senior_support_agent", "support_agent",
            ]
        )
    }
}

@Suite("Policy validation names file, line and the problem")
struct PolicyValidationTests {
    struct Breakage: Sendable, CustomTestStringConvertible {
        var name: String
        var file: String
        var find: String
        var replace: String
        var expected: String
        var testDescription: String { name }
    }

    static let breakages = [
        Breakage(
            name: "unknown role",
            file: "policies/support.yaml",
            find: "roles: [support_agent]\n    actions: [read, lookup]",
            replace: "roles: [suport_agent]\n    actions: [read, lookup]",
            expected: "support.yaml:5: policy 'support-reads-customers' names unknown role 'suport_agent'"
        ),
        Breakage(
            name: "unknown action",
            file: "policies/support.yaml",
            find: "actions: [read, lookup]",
            replace: "actions: [read, peek]",
            expected: "names unknown action 'peek'"
        ),
        Breakage(
            name: "unknown purpose",
            file: "policies/support.yaml",
            find:
                "purposes: [support]\n    masks:\n      id.customer: clear\n      id.record: clear\n      pii.name: clear\n      pii.email: clear\n      pii.phone",
            replace:
                "purposes: [helping]\n    masks:\n      id.customer: clear\n      id.record: clear\n      pii.name: clear\n      pii.email: clear\n      pii.phone",
            expected: "names unknown purpose 'helping'"
        ),
        Breakage(
            name: "unknown collection",
            file: "policies/marketing.yaml",
            find: "collections: [customers, interactions]\n    purposes: [analytics",
            replace: "collections: [customer, interactions]\n    purposes: [analytics",
            expected: "names unknown collection 'customer'"
        ),
        Breakage(
            name: "unknown field class",
            file: "policies/marketing.yaml",
            find: "quasi.zip: \"generalize(prefix: 2)\"",
            replace: "quasi.postcode: \"generalize(prefix: 2)\"",
            expected: "masks unknown field class 'quasi.postcode'"
        ),
        Breakage(
            name: "unknown attribute",
            file: "policies/support.yaml",
            find: "principal.clearance < 2",
            replace: "principal.seniority < 2",
            expected:
                "support.yaml:56: policy 'support-export-needs-clearance': condition: unknown attribute 'principal.seniority'"
        ),
        Breakage(
            name: "type error in a condition",
            file: "policies/support.yaml",
            find: "principal.clearance < 2",
            replace: "principal.clearance < \\\"two\\\"",
            expected: "'<' compares a int with a string"
        ),
        // Parsing used to recurse once per parenthesis, and freeing or evaluating a chain of
        // '&&' once per term: either stopped the process at a few tens of thousands.
        Breakage(
            name: "parentheses nested 50,000 deep",
            file: "policies/support.yaml",
            find: "principal.clearance < 2",
            replace: String(repeating: "(", count: 50_000) + "principal.clearance < 2"
                + String(repeating: ")", count: 50_000),
            expected:
                "support.yaml:56: policy 'support-export-needs-clearance': condition: the condition nests too deeply"
        ),
        Breakage(
            name: "a chain of 50,000 comparisons",
            file: "policies/support.yaml",
            find: "principal.clearance < 2",
            replace: Array(repeating: "principal.clearance < 2", count: 50_000).joined(separator: " && "),
            expected: "condition: the condition is too long: it may hold at most 64 operators"
        ),
        // The two numbers' sum overflowed and stopped the process.
        Breakage(
            name: "a mask argument past the largest",
            file: "policies/support.yaml",
            find: "pii.phone: \"partial(last: 4)\"",
            replace: "pii.phone: \"partial(first: 9223372036854775807, last: 1)\"",
            expected: "mask 'partial(first: 9223372036854775807, last: 1)': 'first' may be at most 1000000000"
        ),
        // Each was loaded before: the first 'last' was dropped, and so was the bare '4'.
        Breakage(
            name: "a mask argument given twice",
            file: "policies/support.yaml",
            find: "pii.phone: \"partial(last: 4)\"",
            replace: "pii.phone: \"partial(last: 4, last: 2)\"",
            expected: "mask 'partial(last: 4, last: 2)' gives 'last' more than once"
        ),
        Breakage(
            name: "a mask argument without its colon",
            file: "policies/support.yaml",
            find: "pii.phone: \"partial(last: 4)\"",
            replace: "pii.phone: \"partial(first: 1, last 4)\"",
            expected: "mask 'partial(first: 1, last 4)' has a malformed argument 'last4' (NAME: NUMBER)"
        ),
        Breakage(
            name: "a purpose name longer than 64 bytes",
            file: "purposes.yaml",
            find: "  support:\n",
            replace:
                "  support:\n    summary: Helping\n    requires_consent: false\n  \(String(repeating: "s", count: 65)):\n",
            expected: "a purpose name has at most 64 bytes: 'ssssssssssssssssssss…'"
        ),
        Breakage(
            name: "unknown mask",
            file: "policies/support.yaml",
            find: "pii.dob: class_token",
            replace: "pii.dob: blur",
            expected: "unknown mask 'blur'"
        ),
        Breakage(
            name: "role cycle",
            file: "roles.yaml",
            find: "summary: Helps customers who contact support",
            replace: "summary: Helps customers who contact support\n    inherits: [senior_support_agent]",
            expected: "roles inherit in a cycle: senior_support_agent -> support_agent -> senior_support_agent"
        ),
        Breakage(
            name: "a permit that can never fire",
            file: "policies/compliance.yaml",
            find:
                "    purposes: [support, marketing_personalization, analytics, model_training, partner_exchange, compliance, data_management]",
            replace:
                "    purposes: [support, marketing_personalization, analytics, model_training, partner_exchange, compliance, data_management]\n  - id: shadow\n    effect: forbid\n    roles: [data_protection_officer]\n    actions: [erase, reidentify]\n    collections: [customers, interactions, conversations, consents]\n    purposes: [compliance]",
            expected: "permit 'dpo-erases-and-reidentifies' can never take effect"
        ),
        Breakage(
            name: "field classes on a permit",
            file: "policies/support.yaml",
            find: "    actions: [write]\n    collections: [conversations, consents]",
            replace: "    actions: [write]\n    field_classes: [pii.email]\n    collections: [conversations, consents]",
            expected: "field_classes belongs to a forbid"
        ),
        Breakage(
            name: "a duplicate policy id",
            file: "policies/support.yaml",
            find: "id: senior-support-exports",
            replace: "id: support-reads-customers",
            expected: "policy id 'support-reads-customers' is used twice"
        ),
        Breakage(
            name: "YAML that does not parse",
            file: "purposes.yaml",
            find: "  support:\n",
            replace: "  support: [\n",
            expected: "purposes.yaml: line"
        ),
        Breakage(
            name: "a role defined twice",
            file: "roles.yaml",
            find: "  support_agent:\n    summary: Helps customers who contact support\n",
            replace:
                "  support_agent:\n    summary: Helps customers who contact support\n  support_agent:\n    summary: Again\n",
            expected: "roles.yaml: line 12: 'support_agent' is given again later in the same mapping"
        ),
    ]

    @Test(
        "a policy or schema file that is not UTF-8 is refused, naming the file",
        arguments: ["schema.yaml", "roles.yaml"]
    )
    func notUTF8(_ file: String) throws {
        let directory = try PolicyFixture.copy()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/" + file
        // A Latin-1 "é" in a comment: the rest of the file still parses.
        var content = try #require(FileManager.default.contents(atPath: path))
        content.append(contentsOf: Array("\n# caf".utf8) + [0xE9] + Array("\n".utf8))
        try content.write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: TutelaError.self) { try PolicyLoader.load(directory: directory) }
        #expect(error?.code == .configurationInvalid)
        #expect(error?.message == "\(path): not valid UTF-8 text (save the file as UTF-8)")
    }

    @Test(arguments: breakages)
    func breakage(_ breakage: Breakage) throws {
        let directory = try PolicyFixture.copy()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/" + breakage.file
        let original = try String(contentsOfFile: path, encoding: .utf8)
        try #require(original.contains(breakage.find), "the fixture text to replace is missing")
        let replacement = breakage.replace.replacingOccurrences(of: "\\\"", with: "\\\"")
        try original.replacingOccurrences(of: breakage.find, with: replacement).write(
            toFile: path,
            atomically: true,
            encoding: .utf8
        )
        let error = #expect(throws: TutelaError.self) { try PolicyLoader.load(directory: directory) }
        #expect(error?.code == .configurationInvalid)
        #expect(error?.message.contains(breakage.expected) == true, "\(error?.message ?? "no error")")
    }
}

@Suite("Request context")
struct RequestContextAttributeTests {
    @Test("channel and hour are supplied when declared and not given; the hour is UTC, also before 1970")
    func suppliedAttributes() throws {
        let policies = try PolicyLoader.load(directory: TestEnvironment.policiesDirectory)
        // 2023-11-14T22:13:20Z, then a millisecond before 1970, then the first of 1970's hours.
        let late = try policies.requestContext([:], channel: .api, now: 1_700_000_000_000)
        #expect(late == ["channel": .string("api"), "hour": .int(22)])
        #expect(try policies.requestContext([:], channel: .cli, now: -1)["hour"] == .int(23))
        #expect(try policies.requestContext([:], channel: .cli, now: 3_599_999)["hour"] == .int(0))
        // Given values win, typed as declared.
        let given = try policies.requestContext(["hour": "5", "channel": "batch"], channel: .cli, now: 0)
        #expect(given == ["channel": .string("batch"), "hour": .int(5)])
    }
}

/// A private copy of the shipped `Policies/` folder to break on purpose.
enum PolicyFixture {
    static func copy() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tutela-policies-\(UUID().uuidString)"
        ).path
        try FileManager.default.copyItem(atPath: TestEnvironment.policiesDirectory, toPath: directory)
        return directory
    }
}

@Suite("Policy reload")
struct PolicyReloadTests {
    @Test("a reload that does not validate keeps the last good set; a good one replaces it")
    func reloadIsAtomic() throws {
        let directory = try PolicyFixture.copy()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let holder = try PolicyHolder(directory: directory)
        let original = holder.policies.digest
        let path = directory + "/policies/support.yaml"
        let good = try String(contentsOfFile: path, encoding: .utf8)

        try good.replacingOccurrences(of: "pii.dob: class_token", with: "pii.dob: blur").write(
            toFile: path,
            atomically: true,
            encoding: .utf8
        )
        #expect(throws: TutelaError.self) { try holder.reload() }
        #expect(holder.policies.digest == original)
        #expect(holder.policies.rules.count > 0)

        try good.replacingOccurrences(of: "pii.dob: class_token", with: "pii.dob: redact").write(
            toFile: path,
            atomically: true,
            encoding: .utf8
        )
        let fresh = try holder.reload()
        #expect(fresh.digest != original)
        #expect(holder.policies.digest == fresh.digest)
        let request = AccessRequest(
            principal: Principal(name: "a", roles: ["support_agent"]),
            action: .read,
            collection: "customers",
            purpose: "support"
        )
        #expect(holder.policies.evaluate(request).obligations.mask(forClass: "pii.dob") == .redact)
    }

    @Test("a reload with a changed schema is refused, asking for a restart, and the set in force stays")
    func reloadKeepsTheSchema() throws {
        let directory = try PolicyFixture.copy()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let holder = try PolicyHolder(directory: directory)
        let original = holder.policies.digest
        let path = directory + "/schema.yaml"
        let schema = try String(contentsOfFile: path, encoding: .utf8)
        // A schema that validates, with a field the store opened without.
        try schema.replacingOccurrences(
            of: "      signup_at: { type: timestamp, class: public }",
            with:
                "      signup_at: { type: timestamp, class: public }\n      loyalty_tier: { type: string, class: public }"
        )
        .write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try SchemaLoader.load(file: path).collection("customers").field("loyalty_tier") != nil)
        let error = #expect(throws: TutelaError.self) { try holder.reload() }
        #expect(error?.message.contains("schema.yaml changed since it was loaded") == true)
        #expect(error?.message.contains("restart") == true)
        #expect(holder.policies.digest == original)
        #expect(holder.policies.schema.collections["customers"]?.field("loyalty_tier") == nil)
    }
}

import ArgumentParser
import Foundation
import Governance
import Policy
import TutelaCore

/// Parses `key=value` pairs; a name given twice is refused rather than one value dropped.
func keyValuePairs(_ items: [String], what: String) throws -> [String: String] {
    var result: [String: String] = [:]
    for item in items {
        guard let equals = item.firstIndex(of: "="), equals != item.startIndex else {
            throw TutelaError(.invalidInput, "\(what) '\(item)' is not NAME=VALUE")
        }
        let name = String(item[..<equals])
        guard result.updateValue(String(item[item.index(after: equals)...]), forKey: name) == nil else {
            throw TutelaError(.invalidInput, "\(what) '\(name)' is given more than once")
        }
    }
    return result
}

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Validate, test and explain the policies in the policies directory.",
        subcommands: [Validate.self, Test.self, Explain.self]
    )

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load and check every policy file; errors name file and line."
        )
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await Console.run(json: options.json) {
                let policies = try PolicyLoader.load(directory: options.configuration.policiesDirectory)
                if options.json {
                    return try Console.printJSON([
                        "rules": String(policies.rules.count), "roles": String(policies.roles.count),
                        "purposes": String(policies.purposes.count), "digest": policies.digest,
                    ])
                }
                print(
                    "Valid: \(policies.rules.count) rules, \(policies.roles.count) roles, \(policies.purposes.count) purposes, \(policies.schema.collections.count) collections."
                )
                print("Policy set digest: \(policies.digest)")
            }
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the cases in tests/*.yaml.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await Console.run(json: options.json) {
                let directory = options.configuration.policiesDirectory
                let policies = try PolicyLoader.load(directory: directory)
                let cases = try PolicyTestSuite.load(directory: directory, policies: policies)
                var failures: [JSONReports.PolicyTestReport.Failure] = []
                for testCase in cases {
                    let problems = testCase.check(against: policies)
                    if problems.isEmpty {
                        if !options.json { print("ok    \(testCase.name)") }
                    } else {
                        failures.append(.init(name: testCase.name, location: testCase.location, problems: problems))
                        if !options.json {
                            print("FAIL  \(testCase.name) (\(testCase.location))")
                            for problem in problems { print("      \(problem)") }
                        }
                    }
                }
                let failed = failures.count
                if options.json {
                    try Console.printJSON(
                        JSONReports.PolicyTestReport(passed: cases.count - failed, failed: failed, failures: failures)
                    )
                } else {
                    print("\(cases.count - failed) passed, \(failed) failed")
                }
                if failed > 0 { throw ExitCode(1) }
            }
        }
    }

    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decide a request and say why: the deciding policies and the mask of every field class.",
            discussion: """
                Name a principal from the data directory with --as, or try roles without one with --roles.
                """
        )
        @OptionGroup var options: GlobalOptions
        @Option(name: .customLong("as"), help: "A principal of the data directory.") var principal: String?
        @Option(help: "Comma-separated roles of a hypothetical principal (no data directory needed).")
        var roles: String?
        @Option(name: .customLong("attribute"), help: "NAME=VALUE of the hypothetical principal (repeatable).")
        var attributes: [String] = []
        @Option(help: "The action (read, write, export, lookup, erase, reidentify, infer, train).") var action: String
        @Option(help: "The collection or model.") var collection: String
        @Option(help: "The purpose of use.") var purpose: String
        @Option(name: .customLong("context"), help: "NAME=VALUE of the request context (repeatable).")
        var context: [String] = []

        func run() async throws {
            try await Console.run(json: options.json) {
                guard let parsedAction = Action(rawValue: action) else {
                    throw TutelaError(.invalidInput, "unknown action '\(action)'")
                }
                let configuration = options.configuration
                let decision: Decision
                let schema: Schema
                if let principal {
                    let tutela = try await Tutela.open(configuration)
                    let caller = Caller(
                        principal: principal,
                        purpose: purpose,
                        context: try keyValuePairs(context, what: "context")
                    )
                    decision = try await tutela.explain(caller, action: parsedAction, collection: collection)
                    schema = tutela.schema
                } else if let roles {
                    let policies = try PolicyLoader.load(directory: configuration.policiesDirectory)
                    let typed = try policies.typedAttributes(
                        try keyValuePairs(attributes, what: "attribute"),
                        .principal
                    )
                    let contextValues = try policies.requestContext(
                        try keyValuePairs(context, what: "context"),
                        channel: .cli,
                        now: Console.now
                    )
                    let names = Set(roles.split(separator: ",").map { String($0.trimmingWhitespace) })
                    for role in names where policies.roles[role] == nil {
                        throw TutelaError(.invalidInput, "unknown role '\(role)'")
                    }
                    decision = policies.evaluate(
                        AccessRequest(
                            principal: Principal(name: "hypothetical", roles: names, attributes: typed),
                            action: parsedAction,
                            collection: collection,
                            purpose: purpose,
                            context: contextValues
                        )
                    )
                    schema = policies.schema
                } else {
                    throw TutelaError(.invalidInput, "name a principal with --as or roles with --roles")
                }
                if options.json {
                    return try Console.printJSON(
                        JSONReports.DecisionReport(
                            allowed: decision.isAllowed,
                            denial: decision.denial?.rawValue,
                            explanation: decision.explanation,
                            consentRequired: decision.isAllowed ? decision.obligations.requiresConsent : nil,
                            masks: decision.isAllowed
                                ? Dictionary(
                                    uniqueKeysWithValues: schema.classes.keys.map {
                                        ($0, "\(decision.obligations.mask(forClass: $0))")
                                    }
                                ) : nil,
                            policySet: String(decision.policySetDigest.prefix(16))
                        )
                    )
                }
                print(decision.isAllowed ? "ALLOW" : "DENY (\(decision.denial?.rawValue ?? ""))")
                print("why: \(decision.explanation)")
                if decision.isAllowed {
                    print("consent required: \(decision.obligations.requiresConsent ? "yes, for \(purpose)" : "no")")
                    print("masks:")
                    for name in schema.classes.keys.sorted() {
                        print(
                            "  \(name.padding(toLength: 18, withPad: " ", startingAt: 0)) \(decision.obligations.mask(forClass: name))"
                        )
                    }
                }
                print("policy set: \(decision.policySetDigest.prefix(16))")
            }
        }
    }
}

struct RolesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "roles",
        abstract: "Show the roles of roles.yaml.",
        subcommands: [List.self, Show.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List roles with what they inherit.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await Console.run(json: options.json) {
                let policies = try PolicyLoader.load(directory: options.configuration.policiesDirectory)
                let roles = policies.roles.values.sorted(by: { $0.name < $1.name })
                if options.json { return try Console.printJSON(roles.map(JSONReports.RoleReport.init)) }
                for role in roles {
                    let inherits = role.inherits.isEmpty ? "" : " (inherits \(role.inherits.joined(separator: ", ")))"
                    print("\(role.name)\(inherits): \(role.summary)")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A role's summary, inheritance and the policies that name it."
        )
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The role.") var role: String

        func run() async throws {
            try await Console.run(json: options.json) {
                let policies = try PolicyLoader.load(directory: options.configuration.policiesDirectory)
                guard let definition = policies.roles[role] else { throw TutelaError(.notFound, "no role '\(role)'") }
                let effective = policies.effectiveRoles(of: Principal(name: "", roles: [role]))
                let conflicts = policies.separationOfDuties.filter { $0.roles.contains(role) }
                let rules = policies.rules.filter { !$0.roles.isDisjoint(with: effective) }
                if options.json {
                    return try Console.printJSON(
                        JSONReports.RoleDetail(
                            name: definition.name,
                            summary: definition.summary,
                            effectiveRoles: effective.sorted(),
                            mayNotBeHeldWith: conflicts.map {
                                .init(roles: $0.roles.subtracting([role]).sorted(), reason: $0.reason)
                            },
                            policies: rules.map {
                                .init(
                                    id: $0.id,
                                    effect: $0.effect.rawValue,
                                    actions: $0.actions.map(\.rawValue).sorted(),
                                    collections: $0.collections.sorted(),
                                    purposes: $0.purposes.sorted()
                                )
                            }
                        )
                    )
                }
                print("\(definition.name): \(definition.summary)")
                print("effective roles: \(effective.sorted().joined(separator: ", "))")
                for conflict in conflicts {
                    print(
                        "may not be held with: \(conflict.roles.subtracting([role]).sorted().joined(separator: ", ")) (\(conflict.reason))"
                    )
                }
                print("policies:")
                for rule in rules {
                    let actions = rule.actions.map(\.rawValue).sorted().joined(separator: ",")
                    print(
                        "  \(rule.effect.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0)) \(rule.id): \(actions) on \(rule.collections.sorted().joined(separator: ",")) for \(rule.purposes.sorted().joined(separator: ","))"
                    )
                }
            }
        }
    }
}

struct PrincipalsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "principals",
        abstract: "Create, list, grant, revoke, disable and enable principals.",
        subcommands: [Create.self, List.self, Grant.self, Revoke.self, Disable.self, Enable.self]
    )

    /// Prints a principal: as JSON with `--json`, else as a line after `prefix`.
    static func show(_ principal: Principal, json: Bool, prefix: String = "") throws {
        if json { return try Console.printJSON(JSONReports.PrincipalReport(principal)) }
        Swift.print(prefix + describe(principal))
    }

    static func describe(_ principal: Principal) -> String {
        let attributes = principal.attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        var text = "\(principal.name)  roles: \(principal.roles.sorted().joined(separator: ","))"
        if !attributes.isEmpty { text += "  attributes: \(attributes.joined(separator: ","))" }
        if principal.disabled { text += "  DISABLED" }
        return text
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a principal.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The principal's name.") var name: String
        @Option(name: .customLong("role"), help: "A role (repeatable).") var roles: [String] = []
        @Option(name: .customLong("attribute"), help: "NAME=VALUE (repeatable).") var attributes: [String] = []

        func run() async throws {
            try await Console.run(json: options.json) {
                let tutela = try await Tutela.open(options.configuration)
                let principal = try await tutela.createPrincipal(
                    name: name,
                    roles: Set(roles),
                    attributes: try keyValuePairs(attributes, what: "attribute")
                )
                try PrincipalsCommand.show(principal, json: options.json, prefix: "Created ")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List principals.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await Console.run(json: options.json) {
                let principals = try await Tutela.open(options.configuration).listPrincipals()
                if options.json { return try Console.printJSON(principals.map(JSONReports.PrincipalReport.init)) }
                for principal in principals { print(PrincipalsCommand.describe(principal)) }
            }
        }
    }

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Grant a role; refused if it breaks separation of duties."
        )
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The principal.") var name: String
        @Argument(help: "The role.") var role: String

        func run() async throws {
            try await Console.run(json: options.json) {
                let principal = try await Tutela.open(options.configuration).grant(role: role, to: name)
                try PrincipalsCommand.show(principal, json: options.json)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a role.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The principal.") var name: String
        @Argument(help: "The role.") var role: String

        func run() async throws {
            try await Console.run(json: options.json) {
                let principal = try await Tutela.open(options.configuration).revoke(role: role, from: name)
                try PrincipalsCommand.show(principal, json: options.json)
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a principal: every request is denied.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The principal.") var name: String

        func run() async throws {
            try await Console.run(json: options.json) {
                try PrincipalsCommand.show(
                    try await Tutela.open(options.configuration).setDisabled(true, principal: name),
                    json: options.json
                )
            }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled principal again.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The principal.") var name: String

        func run() async throws {
            try await Console.run(json: options.json) {
                try PrincipalsCommand.show(
                    try await Tutela.open(options.configuration).setDisabled(false, principal: name),
                    json: options.json
                )
            }
        }
    }
}

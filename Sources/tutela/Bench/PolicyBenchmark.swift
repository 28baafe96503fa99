import Foundation
import Governance
import Policy
import TutelaCore

/// Decision latency with a large generated policy set: 100 roles, 1,000 rules (one in ten a
/// forbid at night, a fifth of the permits with conditions), written as YAML and loaded like an
/// administrator's.
struct PolicyBenchmark {
    let directory: String
    let policies: String
    let roleCount = 100
    let ruleCount = 1000

    func run(into report: BenchReport) throws {
        let files = FileManager.default
        try files.createDirectory(atPath: directory + "/policies", withIntermediateDirectories: true)
        for name in ["schema.yaml", "attributes.yaml", "purposes.yaml"] {
            try files.copyItem(atPath: policies + "/" + name, toPath: directory + "/" + name)
        }
        var random = SplitMix64(seed: 11)
        var roles = "roles:\n"
        for number in 0..<roleCount {
            roles += "  role\(number):\n    summary: generated\n"
            if number % 10 != 0 { roles += "    inherits: [role\(number / 10 * 10)]\n" }
        }
        try Data(roles.utf8).write(to: URL(fileURLWithPath: directory + "/roles.yaml"))
        let actions = ["read", "export", "lookup", "write"]
        let collections = ["customers", "interactions", "conversations", "consents"]
        let purposes = ["support", "marketing_personalization", "analytics", "model_training", "partner_exchange"]
        var rules = "policies:\n"
        for number in 0..<ruleCount {
            let forbid = number % 10 == 9
            rules += "  - id: rule-\(number)\n    effect: \(forbid ? "forbid" : "permit")\n"
            rules += "    roles: [role\(random.next(below: roleCount)), role\(random.next(below: roleCount))]\n"
            rules += "    actions: [\(actions[random.next(below: actions.count)])]\n"
            rules += "    collections: [\(collections[random.next(below: collections.count)])]\n"
            rules +=
                "    purposes: [\(purposes[random.next(below: purposes.count)]), \(purposes[random.next(below: purposes.count)])]\n"
            if forbid {
                rules += "    when: \"context.hour < 6\"\n"
            } else if number % 5 == 0 {
                rules +=
                    "    when: \"principal.clearance >= \(random.next(below: 4)) && context.channel == \\\"internal\\\"\"\n"
            }
            if !forbid { rules += "    masks:\n      \"*\": redact\n      public: clear\n" }
        }
        try Data(rules.utf8).write(to: URL(fileURLWithPath: directory + "/policies/generated.yaml"))

        let loadSeconds = try measure { _ = try PolicyLoader.load(directory: directory) }
        report.record("policy", "load_1000_rules_ms", loadSeconds * 1000)
        let set = try PolicyLoader.load(directory: directory)

        let requests = (0..<2000).map { _ in
            AccessRequest(
                principal: Principal(
                    name: "p",
                    roles: ["role\(random.next(below: roleCount))", "role\(random.next(below: roleCount))"],
                    attributes: ["clearance": .int(Int64(random.next(below: 4)))]
                ),
                action: Action(rawValue: actions[random.next(below: actions.count)]) ?? .read,
                collection: collections[random.next(below: collections.count)],
                purpose: purposes[random.next(below: purposes.count)],
                context: ["channel": .string("internal"), "hour": .int(Int64(random.next(below: 24)))]
            )
        }
        let clock = ContinuousClock()
        var samples: [Double] = []
        samples.reserveCapacity(100_000)
        var allowed = 0
        for round in 0..<50 {
            for request in requests {
                let start = clock.now
                let decision = set.evaluate(request)
                let elapsed = clock.now - start
                if round == 0, decision.isAllowed { allowed += 1 }
                samples.append(Double(elapsed.components.attoseconds) / 1e9 + Double(elapsed.components.seconds) * 1e9)
            }
        }
        samples.sort()
        report.record("policy", "rules", Double(set.rules.count))
        report.record("policy", "roles", Double(set.roles.count))
        report.record("policy", "decisions_allowed_percent", Double(allowed) * 100 / Double(requests.count))
        report.record("policy", "decision_p50_ns", samples[samples.count / 2])
        report.record("policy", "decision_p99_ns", samples[samples.count * 99 / 100])
    }
}

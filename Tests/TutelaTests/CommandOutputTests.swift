import Foundation
import Governance
import Testing
import TutelaCore
import TutelaTestSupport

@Suite("What the administration commands print: JSON with --json, text without control characters")
struct CommandOutputTests {
    /// Every command that offers `--json` prints one JSON document with it (or JSON lines, for
    /// the commands that stream records or events), with snake_case keys.
    @Test("every command prints JSON with --json, keys in snake_case")
    func everyCommand() async throws {
        let tutela = try ChildProcess.builtTutela()
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        _ = try await environment.startWithSample(customers: 5)
        func run(_ arguments: [String]) async throws -> ChildProcess {
            let run = try await ChildProcess.run(
                tutela,
                arguments + ["--json"] + environment.pathArguments,
                environment: environment.configuration.environment
            )
            #expect(run.status == 0, "\(arguments.joined(separator: " ")): \(run.errors)")
            return run
        }
        func document(_ arguments: [String]) async throws -> Any {
            let output = try await run(arguments).output
            return try #require(
                try? JSONSerialization.jsonObject(with: Data(output.utf8)),
                "\(arguments.joined(separator: " ")) printed \(output.prefix(80))"
            )
        }
        func object(_ arguments: [String]) async throws -> [String: Any] {
            try #require(try await document(arguments) as? [String: Any], "\(arguments)")
        }

        // Principals: one object per change, an array for the list.
        let created = try await object([
            "principals", "create", "pat", "--role", "support_agent", "--attribute", "clearance=2",
        ])
        #expect(created["name"] as? String == "pat" && created["disabled"] as? Bool == false)
        #expect(created["roles"] as? [String] == ["support_agent"])
        #expect((created["attributes"] as? [String: Any])?["clearance"] as? Int == 2)
        #expect(
            try await object(["principals", "grant", "pat", "marketing_analyst"])["roles"] as? [String] == [
                "marketing_analyst", "support_agent",
            ]
        )
        #expect(
            try await object(["principals", "revoke", "pat", "marketing_analyst"])["roles"] as? [String] == [
                "support_agent"
            ]
        )
        #expect(try await object(["principals", "disable", "pat"])["disabled"] as? Bool == true)
        #expect(try await object(["principals", "enable", "pat"])["disabled"] as? Bool == false)
        let principals = try #require(try await document(["principals", "list"]) as? [[String: Any]])
        #expect(principals.contains { $0["name"] as? String == "pat" })

        // Roles and policies.
        let roles = try #require(try await document(["roles", "list"]) as? [[String: Any]])
        #expect(roles.contains { $0["name"] as? String == "support_agent" })
        let role = try await object(["roles", "show", "support_agent"])
        #expect(
            role["effective_roles"] is [String] && role["may_not_be_held_with"] is [Any] && role["policies"] is [Any]
        )
        let tests = try await object(["policy", "test"])
        #expect(tests["failed"] as? Int == 0 && (tests["passed"] as? Int ?? 0) > 0)
        let decision = try await object([
            "policy", "explain", "--roles", "support_agent", "--action", "read", "--collection", "customers",
            "--purpose", "support",
        ])
        #expect(decision["allowed"] as? Bool == true && decision["masks"] is [String: String])
        #expect(decision["consent_required"] is Bool && decision["policy_set"] is String)

        // Keys and API keys.
        let key = try await object(["apikeys", "create", "--principal", "pat"])
        let id = try #require(key["id"] as? String)
        #expect(try await object(["apikeys", "revoke", id])["revoked"] as? Bool == true)
        #expect(try await object(["keys", "rotate"])["active_version"] as? Int == 2)
        // Version 1 still wraps the sample's data keys: disable and enable it.
        #expect(try await object(["keys", "disable", "1"])["state"] as? String == "disabled")
        #expect(try await object(["keys", "enable", "1"])["state"] as? String == "decrypt_only")

        // Data and the audit log.
        let imported = try await object(["data", "import", "customers", try sampleFile(environment)])
        #expect(imported["records"] as? Int == 1 && imported["skipped_records"] as? Int == 0)
        let erased = try await object(["data", "erase", "c000001", "--irreversibly-erase"])
        #expect(erased["data_key_destroyed"] as? Bool == true && erased["records_removed"] is Int)
        #expect(erased["already_erased"] as? Bool == false)
        let again = try await object(["data", "erase", "c000001", "--irreversibly-erase"])
        #expect(again["already_erased"] as? Bool == true && again["records_removed"] as? Int == 0)
        let checkpoint = try await object(["audit", "checkpoint"])
        #expect(checkpoint["size"] is Int && checkpoint["root"] is String && checkpoint["text"] is String)
        let size = try #require(checkpoint["size"] as? Int)
        let inclusion = try await object(["audit", "prove", "1"])
        #expect(inclusion["verified"] as? Bool == true && inclusion["path"] is [String])
        let consistency = try await object(["audit", "prove", "--from", "1", "--to", "\(size)"])
        #expect(consistency["old_root"] is String && consistency["new_root"] is String)
        #expect(try await object(["audit", "show", "1"])["kind"] is String)
        #expect(try await object(["audit", "verify"])["valid"] as? Bool == true)
        for lines in [["audit", "search", "--limit", "3"], ["data", "export", "customers"]] {
            let output = try await run(lines).output
            for line in output.split(separator: "\n") {
                #expect(
                    (try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any],
                    "\(lines.joined(separator: " ")): \(line.prefix(60))"
                )
            }
        }
    }

    @Test("the audit log's text lines show control characters as escapes, never raw")
    func controlCharactersInAuditLines() async throws {
        let environment = try await Self.logWithRejection(of: "customers/a\u{1B}[2Jb\u{9B}c\u{7F}")
        defer { environment.remove() }
        for command in [["audit", "search", "--kind", "http.rejected"], ["audit", "tail"]] {
            let run = try await Self.tutela(command, in: environment)
            #expect(run.status == 0, "\(run.errors)")
            #expect(run.output.contains(#"customers/a\u{1B}[2Jb\u{9B}c\u{7F}"#), "\(run.output)")
            #expect(!run.output.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x9B || $0.value == 0x7F })
        }
    }

    @Test("a search for a kind no entry has names the kinds the log holds; a search that finds nothing says so")
    func searchForAnUnknownKind() async throws {
        let environment = try await Self.logWithRejection(of: "GET unmatched")
        defer { environment.remove() }
        func search(_ arguments: [String]) async throws -> ChildProcess {
            try await Self.tutela(["audit", "search"] + arguments, in: environment)
        }
        for json in [false, true] {
            let typo = try await search(["--kind", "http.rejection"] + (json ? ["--json"] : []))
            #expect(typo.status == 0)
            #expect(typo.output.isEmpty)
            #expect(typo.errors.hasPrefix("note: no entry has kind 'http.rejection'; the log's entries have kinds "))
            #expect(typo.errors.contains("http.rejected"), "\(typo.errors)")
        }
        // What was typed is shown with its control characters as escapes.
        let typed = try await search(["--kind", "x\u{1B}[2J"])
        #expect(typed.errors.hasPrefix(#"note: no entry has kind 'x\u{1B}[2J'"#), "\(typed.errors)")
        // A kind the log holds, with nothing else matching: no note about kinds.
        let none = try await search(["--kind", "http.rejected", "--principal", "nobody"])
        #expect(none.status == 0)
        #expect(none.errors == "no entry matches\n")
        let quiet = try await search(["--kind", "http.rejected", "--principal", "nobody", "--json"])
        #expect(quiet.output.isEmpty && quiet.errors.isEmpty, "\(quiet.errors)")
        let found = try await search(["--kind", "http.rejected"])
        #expect(found.output.contains("GET unmatched") && found.errors.isEmpty, "\(found.errors)")
    }

    @Test("text messages put a count of one with a singular noun")
    func singularCounts() async throws {
        #expect(counted(0, "record") == "0 records")
        #expect(counted(1, "entry", "entries") == "1 entry")
        #expect(counted(2, "entry", "entries") == "2 entries")
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        _ = try await environment.start()
        let imported = try await Self.tutela(
            ["data", "import", "customers", try sampleFile(environment)],
            in: environment
        )
        #expect(imported.output == "Imported 1 record of 1 subject into customers.\n", "\(imported.errors)")
        let erased = try await Self.tutela(["data", "erase", "c900001", "--irreversibly-erase"], in: environment)
        #expect(erased.output.contains("1 record and 1 index entry removed"), "\(erased.output) \(erased.errors)")
    }

    @Test("an error quoting what was typed shows its control characters as escapes, never raw")
    func controlCharactersInErrors() async throws {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        _ = try await environment.start()
        let run = try await ChildProcess.run(
            try ChildProcess.builtTutela(),
            ["data", "get", "customers", "c\u{1B}[2J1"] + environment.pathArguments,
            environment: environment.configuration.environment
        )
        #expect(run.status == 1)
        #expect(run.errors.contains(#"no record customers/c\u{1b}[2J1"#), "\(run.errors)")
        #expect(!run.errors.unicodeScalars.contains { $0.value == 0x1B })
    }

    @Test(
        "a failed command exits 1 with its error as one JSON line under --json, as text without; a usage error exits 64"
    )
    func errorsAndExitCodes() async throws {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        _ = try await environment.start()
        func run(_ arguments: [String]) async throws -> ChildProcess {
            try await ChildProcess.run(
                try ChildProcess.builtTutela(),
                arguments + environment.pathArguments,
                environment: environment.configuration.environment
            )
        }

        let failed = try await run(["data", "get", "customers", "c\u{9B}2", "--json"])
        #expect(failed.status == 1)
        #expect(failed.output.isEmpty)
        let lines = failed.errors.split(separator: "\n")
        #expect(lines.count == 1, "\(failed.errors)")
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(failed.errors.utf8)) as? [String: Any],
            "\(failed.errors)"
        )
        let error = try #require(report["error"] as? [String: Any])
        #expect(error["code"] as? String == "not_found")
        #expect(error["message"] as? String == #"no record customers/c\u{9b}2"#)
        #expect(!failed.errors.unicodeScalars.contains { $0.value == 0x9B })

        let unconfirmed = try await run(["keys", "destroy", "1", "--json"])
        #expect(unconfirmed.status == 1)
        let refusal = try JSONSerialization.jsonObject(with: Data(unconfirmed.errors.utf8)) as? [String: Any]
        #expect((refusal?["error"] as? [String: Any])?["code"] as? String == "invalid_input", "\(unconfirmed.errors)")

        let plain = try await run(["data", "get", "customers", "c2"])
        #expect(plain.status == 1)
        #expect(plain.errors == "error: no record customers/c2\n")

        for usage in [["keys", "frobnicate"], ["data", "get", "customers"], ["audit", "search", "--since", "noon"]] {
            let misused = try await run(usage)
            #expect(misused.status == 64, "\(usage): \(misused.status) \(misused.errors)")
        }
    }

    /// A fresh installation whose audit log holds one `http.rejected` entry for `resource`.
    private static func logWithRejection(of resource: String) async throws -> TestEnvironment {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        do {
            let tutela = try await environment.start()
            try await tutela.auditRejection(principal: nil, requestID: "r1", resource: resource, outcome: "error:test")
            return environment
        } catch {
            environment.remove()
            throw error
        }
    }

    /// Runs the built `tutela` with `arguments` on `environment`'s directories.
    private static func tutela(_ arguments: [String], in environment: TestEnvironment) async throws -> ChildProcess {
        try await ChildProcess.run(
            try ChildProcess.builtTutela(),
            arguments + environment.pathArguments,
            environment: environment.configuration.environment
        )
    }

    /// A one-row customers file in the environment's directory.
    private func sampleFile(_ environment: TestEnvironment) throws -> String {
        let path = environment.root + "/one.csv"
        try "customer_id,email\nc900001,someone@example.com\n".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

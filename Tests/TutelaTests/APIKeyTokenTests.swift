import Foundation
import Governance
import Testing
import TutelaCore
import TutelaTestSupport

@Suite("API key tokens")
struct APIKeyTokenTests {
    @Test("only tut_<16 ASCII characters>_<secret> with the right secret authenticates")
    func tokenShapes() async throws {
        let (fixture, _) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        let token = try #require(fixture.keys["agent"])
        #expect(try await fixture.tutela.authenticate(token: token, requestID: "t") == "agent")
        let id = String(token.dropFirst(4).prefix(16))
        let secret = String(token.dropFirst(21))
        let refused = [
            "tut_\(id)_",  // no secret
            "tut_\(id)",  // no separator
            "tux_\(id)_\(secret)",  // wrong prefix
            "tut_\(id.dropLast())_\(secret)",  // id one character short
            "tut_\(id.dropLast())__\(secret)",  // separator inside the id
            "tut_\(id.dropLast(2))é_\(secret)",  // a non-ASCII id of 16 bytes
            "tut_\(id)_\(secret.dropLast())\(secret.last == "A" ? "B" : "A")",  // wrong secret
            "tut_\(id)_\(secret)_",  // secret with a byte added
            "",
        ]
        for candidate in refused {
            let error = await #expect(throws: TutelaError.self, "\(candidate)") {
                try await fixture.tutela.authenticate(token: candidate, requestID: "t")
            }
            #expect(error?.code == (candidate.isEmpty ? .missingCredentials : .invalidCredentials))
        }
    }
}

@Suite("tutela apikeys create --expires")
struct APIKeyExpiryCommandTests {
    @Test("a duration or time is taken up to the year 9999; one beyond, or too long to count, is refused")
    func expiries() async throws {
        let tutela = try ChildProcess.builtTutela()
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        _ = try await environment.start().createPrincipal(name: "admin", roles: ["administrator"], attributes: [:])
        func create(_ expiry: String) async throws -> ChildProcess {
            try await ChildProcess.run(
                tutela,
                ["apikeys", "create", "--principal", "admin", "--expires", expiry, "--json"]
                    + environment.pathArguments,
                environment: environment.configuration.environment
            )
        }
        for taken in ["30d", "12h", "9999-12-31T23:59:59Z"] {
            let run = try await create(taken)
            #expect(run.status == 0, "\(taken): \(run.errors)")
        }
        for (refused, reason) in [
            ("999999999999d", "later than the year 9999"),  // more milliseconds than a time holds
            ("3000000d", "later than the year 9999"),
            ("0d", "takes an RFC 3339 time or a duration"),
            ("2000-01-01T00:00:00Z", "is the time 2000-01-01T00:00:00Z, which has passed"),
            // Unix seconds, not days: told how it was read.
            ("30", "is the time 1970-01-01T00:00:30Z, which has passed; a duration takes a unit"),
        ] {
            let run = try await create(refused)
            #expect(run.status == 1, "\(refused)")
            #expect(run.errors.contains(reason), "\(refused): \(run.errors)")
        }
        let listed = try await ChildProcess.run(
            tutela,
            ["apikeys", "list", "--json"] + environment.pathArguments,
            environment: environment.configuration.environment
        )
        let keys = try JSONSerialization.jsonObject(with: Data(listed.output.utf8)) as? [[String: Any]]
        #expect(keys?.count == 3)
    }
}

@Suite("NAME=VALUE options")
struct KeyValueOptionTests {
    @Test(
        "an attribute or context name given twice, undeclared or of the wrong type is refused, and nothing is created"
    )
    func nameGivenTwice() async throws {
        let tutela = try ChildProcess.builtTutela()
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        _ = try await environment.start()
        func run(_ arguments: [String]) async throws -> ChildProcess {
            try await ChildProcess.run(
                tutela,
                arguments + environment.pathArguments,
                environment: environment.configuration.environment
            )
        }
        let twice = try await run([
            "principals", "create", "pat", "--role", "support_agent", "--attribute", "clearance=2",
            "--attribute", "clearance=3",
        ])
        #expect(twice.status == 1)
        #expect(twice.errors.contains("attribute 'clearance' is given more than once"), "\(twice.errors)")
        let listed = try await run(["principals", "list", "--json"])
        #expect(!listed.output.contains("pat"), "\(listed.output)")
        let context = try await run([
            "policy", "explain", "--roles", "support_agent", "--action", "read", "--collection", "customers",
            "--purpose", "support", "--context", "channel=chat", "--context", "channel=email",
        ])
        #expect(context.status == 1)
        #expect(context.errors.contains("context 'channel' is given more than once"), "\(context.errors)")
        // A hypothetical principal's attributes and context are typed as attributes.yaml declares.
        for (option, refused) in [
            (["--attribute", "clearence=3"], "attribute 'clearence' is not declared in attributes.yaml"),
            (["--attribute", "on_call=yes"], "attribute 'on_call' is true or false"),
            (["--context", "hour=noon"], "context attribute 'hour' is an integer"),
        ] {
            let explained = try await run(
                ["policy", "explain", "--roles", "support_agent", "--action", "read", "--collection", "customers"]
                    + ["--purpose", "support"] + option
            )
            #expect(explained.status == 1, "\(option)")
            #expect(explained.errors.contains(refused), "\(option): \(explained.errors)")
        }
    }
}

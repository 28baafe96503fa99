import Foundation
import Governance
import Synchronization
import Testing
import TutelaCore
import TutelaTestSupport

@Suite("Cached credentials")
struct CredentialCacheTests {
    @Test("a key revoked or a principal disabled by another process is refused on the next request")
    func changesFromAnotherProcess() async throws {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        let server = try await environment.start()
        // The server sees the change through its file change monitor, not by a stat per lookup.
        let configuration = environment.configuration
        #expect(FileChangeMonitor(files: [configuration.keyringPath, configuration.credentialsStampPath]) != nil)
        _ = try await server.createPrincipal(name: "agent", roles: ["support_agent"], attributes: [:])
        let key = try await server.createAPIKey(principal: "agent", expiresAt: nil)
        let other = try await server.createAPIKey(principal: "agent", expiresAt: nil)
        // The server has both keys and the principal in its cache now.
        #expect(try await server.authenticate(token: key.token, requestID: "r1") == "agent")
        #expect(try await server.authenticate(token: other.token, requestID: "r2") == "agent")
        let caller = Caller(principal: "agent", purpose: "support")
        _ = try await server.explain(caller, action: .read, collection: "customers")

        // An administrator's command is another Tutela over the same directories.
        let command = try await Tutela.open(environment.configuration)
        try await command.revokeAPIKey(id: key.id)
        await #expect(throws: TutelaError.self) {
            try await server.authenticate(token: key.token, requestID: "r3")
        }
        #expect(try await server.authenticate(token: other.token, requestID: "r4") == "agent")

        _ = try await command.setDisabled(true, principal: "agent")
        let decision = try await server.explain(caller, action: .read, collection: "customers")
        #expect(!decision.isAllowed)
        #expect(decision.denial?.rawValue == "principal_disabled")
    }
}

@Suite("Deadlines")
struct DeadlineTests {
    @Test("an operation past its deadline is cancelled and reported as expired")
    func expires() async throws {
        let deadlines = Deadlines(tick: .milliseconds(5))
        // In a task of its own: cancelling a test's own task would cancel the test.
        let operation = Task {
            try await deadlines.withCancellation(after: .milliseconds(50)) {
                try await Task.sleep(for: .seconds(30))
            }
        }
        await #expect(throws: DeadlineExpired.self) { try await operation.value }
    }

    @Test("an operation that ends in time keeps its result and its deadline is removed")
    func inTime() async throws {
        let deadlines = Deadlines(tick: .milliseconds(5))
        let value = try await deadlines.withCancellation(after: .seconds(5)) { 42 }
        #expect(value == 42)
        let fired = Mutex(false)
        let id = deadlines.schedule(after: .milliseconds(20)) { fired.withLock { $0 = true } }
        #expect(deadlines.cancel(id))
        try await Task.sleep(for: .milliseconds(80))
        #expect(!fired.withLock { $0 })
    }
}

import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import TutelaTestSupport

@testable import Governance
@testable import Store
@testable import TutelaCore

@Suite("API gateway: changes made by other processes")
struct GatewayFileChangeTests {
    @Test("a governed fetch reads the change queue once for its keyring, API key and principal")
    func oneQueueReadPerRequest() async throws {
        let (fixture, app) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        let monitor = try #require(fixture.tutela.fileChanges)
        let headers = GatewayFixture.headers(fixture.keys["agent"])
        try await app.test(.router) { client in
            // The first request drains what the set-up queued and fills the credential cache.
            try await client.execute(uri: "/v1/customers/c000001", method: .get, headers: headers) { response in
                #expect(response.status == .ok)
            }
            let before = monitor.queueReads
            for _ in 0..<3 {
                try await client.execute(uri: "/v1/customers/c000001", method: .get, headers: headers) { response in
                    #expect(response.status == .ok)
                }
            }
            #expect(monitor.queueReads - before == 3)
        }
    }

    @Test("a key revoked or a principal disabled by another process is refused on the next request")
    func changesBetweenRequests() async throws {
        let (fixture, app) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        let key = try await fixture.tutela.createAPIKey(principal: "agent", expiresAt: nil)
        // Another process: its own Tutela over the same directories.
        let other = try await Tutela.open(fixture.tutela.configuration)
        try await app.test(.router) { client in
            let headers = GatewayFixture.headers(key.token)
            try await client.execute(uri: "/v1/customers/c000001", method: .get, headers: headers) { response in
                #expect(response.status == .ok)
            }
            try await other.revokeAPIKey(id: key.id)
            try await client.execute(uri: "/v1/customers/c000001", method: .get, headers: headers) { response in
                #expect(response.status == .unauthorized)
            }
            let kept = GatewayFixture.headers(fixture.keys["agent"])
            try await client.execute(uri: "/v1/customers/c000001", method: .get, headers: kept) { response in
                #expect(response.status == .ok)
            }
            _ = try await other.setDisabled(true, principal: "agent")
            try await client.execute(uri: "/v1/customers/c000001", method: .get, headers: kept) { response in
                #expect(response.status == .forbidden)
                #expect(String(buffer: response.body).contains("principal_disabled"))
            }
        }
    }

    @Test("a customer read twice, then erased by another process, is gone on the next request")
    func erasureByAnotherProcess() async throws {
        let (fixture, app) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        let backend = try #require(fixture.tutela.store.backend as? SQLiteRecordStore)
        let headers = GatewayFixture.headers(fixture.keys["agent"])
        try await app.test(.router) { client in
            for _ in 0..<2 {
                try await client.execute(uri: "/v1/customers/c000003", method: .get, headers: headers) { response in
                    #expect(response.status == .ok)
                }
            }
            // The second fetch was answered from the sealed row kept since the first.
            #expect(backend.keptRecordHits >= 1)
            let erase = try await ChildProcess.run(
                try ChildProcess.builtTutela(),
                ["data", "erase", "c000003", "--irreversibly-erase"] + fixture.environment.pathArguments,
                environment: fixture.environment.configuration.environment
            )
            #expect(erase.status == 0, "\(erase.errors)")
            try await client.execute(uri: "/v1/customers/c000003", method: .get, headers: headers) { response in
                #expect(response.status == .gone)
            }
            try await client.execute(uri: "/v1/customers/c000004", method: .get, headers: headers) { response in
                #expect(response.status == .ok)
            }
        }
    }
}

import Audit
import Foundation
import Gateway
import Governance
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import TutelaTestSupport

@Suite("HEAD requests at the gateway")
struct GatewayHeadTests {
    /// The status, headers and body length of a GET and of a HEAD to the same URI.
    private struct Pair {
        var get: (status: HTTPResponse.Status, headers: HTTPFields, bodyBytes: Int)
        var head: (status: HTTPResponse.Status, headers: HTTPFields, bodyBytes: Int)
    }

    private static func pair(
        _ client: some TestClientProtocol,
        uri: String,
        headers: HTTPFields = [:]
    ) async throws -> Pair {
        let get = try await client.execute(uri: uri, method: .get, headers: headers) {
            ($0.status, $0.headers, $0.body.readableBytes)
        }
        let head = try await client.execute(uri: uri, method: .head, headers: headers) {
            ($0.status, $0.headers, $0.body.readableBytes)
        }
        return Pair(get: get, head: head)
    }

    private static func count(_ kind: String, by principal: String, in tutela: Tutela) async throws -> Int {
        var filter = AuditFilter()
        filter.kind = kind
        filter.principal = principal
        return try await tutela.auditSearch(filter, limit: 1000).count
    }

    @Test("HEAD answers every GET route with the GET's status and headers, no body, and Content-Length of the GET body")
    func headMirrorsGet() async throws {
        let (fixture, app) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        let agent = GatewayFixture.headers(fixture.keys["agent"])
        let officer = GatewayFixture.headers(
            try await fixture.newKey(principal: "officer", roles: ["data_protection_officer"]),
            purpose: "compliance"
        )
        try await app.test(.router) { client in
            for (uri, headers) in [
                ("/healthz", HTTPFields()), ("/openapi.yaml", HTTPFields()), ("/v1/customers/c000001", agent),
                ("/v1/customers?email=someone@example.com", agent),
                // A streamed answer: HEAD writes it to nothing, to give its length.
                ("/v1/collections/customers/export", officer),
            ] {
                let pair = try await Self.pair(client, uri: uri, headers: headers)
                #expect(pair.get.status == .ok, "\(uri)")
                #expect(pair.head.status == .ok, "\(uri)")
                #expect(pair.get.bodyBytes > 0, "\(uri)")
                #expect(pair.head.bodyBytes == 0, "\(uri)")
                #expect(pair.head.headers[.contentLength] == String(pair.get.bodyBytes), "\(uri)")
                #expect(pair.head.headers[.contentType] == pair.get.headers[.contentType], "\(uri)")
                #expect(pair.head.headers[.cacheControl] == "no-store", "\(uri)")
            }
        }
    }

    @Test("HEAD passes the same authentication, decision and audit as GET, and its refusals carry no body")
    func headIsEnforcedAndAudited() async throws {
        let (fixture, app) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        let officer = try await fixture.newKey(principal: "officer", roles: ["data_protection_officer"])
        try await app.test(.router) { client in
            let guarded = GatewayRoute.all.filter { $0.method == .get && $0.action != nil }
            #expect(guarded.count >= 3)
            for route in guarded {
                let (uri, _) = GatewayFixture.request(for: route)
                for (token, status) in [(nil, HTTPResponse.Status.unauthorized), (fixture.keys["nobody"], .forbidden)] {
                    try await client.execute(uri: uri, method: .head, headers: GatewayFixture.headers(token)) {
                        #expect($0.status == status, "HEAD \(route.path)")
                        #expect($0.body.readableBytes == 0, "HEAD \(route.path)")
                    }
                }
            }
            try await client.execute(
                uri: "/v1/customers/c000001",
                method: .head,
                headers: GatewayFixture.headers(fixture.keys["agent"])
            ) { #expect($0.status == .ok) }
            try await client.execute(
                uri: "/v1/collections/customers/export",
                method: .head,
                headers: GatewayFixture.headers(officer, purpose: "compliance")
            ) { #expect($0.status == .ok) }
            // A path served only with POST: 405, and HEAD is not among the methods allowed.
            try await client.execute(uri: "/v1/interactions", method: .head) {
                #expect($0.status == .methodNotAllowed)
                #expect($0.headers[.allow] == "POST")
                #expect($0.body.readableBytes == 0)
            }
        }
        // The refusals of a missing key and of a caller without a permit are audited as for GET.
        var failed = AuditFilter()
        failed.kind = "auth.failed"
        #expect(try await fixture.tutela.auditSearch(failed, limit: 100).count == 3)
        var refused = AuditFilter()
        refused.principal = "nobody"
        #expect(try await fixture.tutela.auditSearch(refused, limit: 100).count == 3)
        // The allowed HEADs left the records of a read and of an export.
        #expect(try await Self.count("data.read", by: "agent", in: fixture.tutela) == 1)
        #expect(try await Self.count("data.export", by: "officer", in: fixture.tutela) == 1)
    }
}

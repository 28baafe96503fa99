import Audit
import Foundation
import Gateway
import Governance
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Policy
import Testing
import TutelaCore
import TutelaTestSupport
import Yams

/// A gateway over a fresh installation with principals and keys for the tests.
struct GatewayFixture {
    let environment: TestEnvironment
    let tutela: Tutela
    var keys: [String: String] = [:]

    static func make(
        configuration: GatewayConfiguration = GatewayConfiguration(),
        logger: Logger = Logger(label: "tutela.gateway.test")
    ) async throws -> (GatewayFixture, some ApplicationProtocol) {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        let (tutela, _) = try await environment.startWithSample(customers: 12)
        var fixture = GatewayFixture(environment: environment, tutela: tutela)
        for (name, roles) in [("agent", ["support_agent"]), ("analyst", ["marketing_analyst"]), ("nobody", [String]())]
        {
            _ = try await tutela.createPrincipal(name: name, roles: Set(roles), attributes: [:])
            fixture.keys[name] = try await tutela.createAPIKey(principal: name, expiresAt: nil).token
        }
        return (fixture, try buildApplication(tutela: tutela, configuration: configuration, logger: logger))
    }

    /// Creates a principal with `roles` and returns an API key for it.
    func newKey(principal name: String, roles: Set<String>) async throws -> String {
        _ = try await tutela.createPrincipal(name: name, roles: roles, attributes: [:])
        return try await tutela.createAPIKey(principal: name, expiresAt: nil).token
    }

    static func headers(_ token: String?, purpose: String? = "support") -> HTTPFields {
        var fields = HTTPFields()
        if let token { fields[.authorization] = "Bearer \(token)" }
        if let purpose { fields[purposeHeader] = purpose }
        return fields
    }

    /// A concrete URI and body for a route template.
    static func request(for route: GatewayRoute) -> (String, ByteBuffer?) {
        let uri = route.path
            .replacingOccurrences(of: "{id}", with: "c000001")
            .replacingOccurrences(of: "{purpose}", with: "support")
            .replacingOccurrences(of: "{collection}", with: "customers")
            .replacingOccurrences(of: "{name}", with: "recommender")
        let query = route.action == .lookup ? "?email=someone@example.com" : ""
        var body: ByteBuffer?
        if route.method == .post || route.method == .put {
            body = ByteBuffer(
                string: route.path.contains("consents") ? "{\"granted\":true}" : "[{\"customer_id\":\"c000001\"}]"
            )
        }
        return (uri + query, body)
    }
}

@Suite("API gateway")
struct GatewayTests {
    @Test("every data and model route refuses missing, wrong, revoked and expired keys, and a caller without a permit")
    func everyRouteIsEnforced() async throws {
        let (fixture, app) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        let revoked = try await fixture.tutela.createAPIKey(principal: "agent", expiresAt: nil)
        try await fixture.tutela.revokeAPIKey(id: revoked.id)
        // Far enough ahead that a loaded machine still creates it before it expires; then wait
        // until it has.
        let expiry = Int64(Date().timeIntervalSince1970 * 1000) + 500
        let expiring = try await fixture.tutela.createAPIKey(principal: "agent", expiresAt: expiry)
        while Int64(Date().timeIntervalSince1970 * 1000) <= expiry { try await Task.sleep(for: .milliseconds(20)) }
        let guarded = GatewayRoute.all.filter { $0.action != nil }
        #expect(guarded.count >= 9)
        try await app.test(.router) { client in
            for route in guarded {
                let (uri, body) = GatewayFixture.request(for: route)
                let keys: [(String?, String)] = [
                    (nil, "missing_credentials"), ("tut_0000000000000000_AAAA", "invalid_credentials"),
                    (revoked.token, "invalid_credentials"), (expiring.token, "invalid_credentials"),
                ]
                for (token, code) in keys {
                    try await client.execute(
                        uri: uri,
                        method: route.method,
                        headers: GatewayFixture.headers(token),
                        body: body
                    ) { response in
                        #expect(response.status == .unauthorized, "\(route.method) \(route.path)")
                        #expect(String(buffer: response.body).contains("\"code\":\"\(code)\""))
                        #expect(
                            response.headers[.wwwAuthenticate]
                                == (token == nil
                                    ? "Bearer realm=\"tutela\"" : "Bearer realm=\"tutela\", error=\"invalid_token\"")
                        )
                    }
                }
                // A valid key next to a second Authorization header is no credential at all.
                var repeated = GatewayFixture.headers(fixture.keys["agent"])
                repeated.append(HTTPField(name: .authorization, value: "Bearer tut_0000000000000000_AAAA"))
                try await client.execute(uri: uri, method: route.method, headers: repeated, body: body) { response in
                    #expect(response.status == .unauthorized, "\(route.method) \(route.path)")
                    #expect(String(buffer: response.body).contains("\"code\":\"invalid_credentials\""))
                }
                try await client.execute(
                    uri: uri,
                    method: route.method,
                    headers: GatewayFixture.headers(fixture.keys["nobody"]),
                    body: body
                ) { response in
                    #expect(response.status == .forbidden, "\(route.method) \(route.path) is not enforced")
                    let text = String(buffer: response.body)
                    #expect(text.contains("\"code\":\"access_denied\"") && text.contains("\"request_id\""))
                }
            }
        }
        var failed = AuditFilter()
        failed.kind = "auth.failed"
        #expect(try await fixture.tutela.auditSearch(failed, limit: 1000).count == guarded.count * 5)
        var denied = AuditFilter()
        denied.decision = "deny"
        #expect(try await fixture.tutela.auditSearch(denied, limit: 1000).count >= guarded.count)
    }

    @Test("the Bearer scheme is matched without regard to case; another scheme is no credential")
    func bearerScheme() async throws {
        let (fixture, app) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        let key = try #require(fixture.keys["agent"])
        try await app.test(.router) { client in
            for (value, status) in [
                ("bearer \(key)", HTTPResponse.Status.ok), ("BEARER  \(key)", .ok), ("Basic \(key)", .unauthorized),
                ("Bearer", .unauthorized), ("Bearer\(key)", .unauthorized),
            ] {
                var headers = GatewayFixture.headers(nil)
                headers[.authorization] = value
                try await client.execute(uri: "/v1/customers/c000001", method: .get, headers: headers) { response in
                    #expect(response.status == status, "\(value.prefix(8))")
                }
            }
        }
    }

    @Test("the same customer comes back masked differently by role and purpose, or denied with the reason")
    func maskedByRole() async throws {
        let (fixture, app) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        let clear = try await fixture.tutela.record(collection: "customers", id: "c000002")
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/v1/customers/c000002",
                method: .get,
                headers: GatewayFixture.headers(fixture.keys["agent"])
            ) { response in
                #expect(response.status == .ok)
                let text = String(buffer: response.body)
                #expect(text.contains(clear.fields["email"]?.displayText ?? "-"))
                #expect(text.contains("\"birth_date\":\"[pii.dob]\""))
                #expect(response.headers[HTTPField.Name("X-Request-Id") ?? .accept] != nil)
                #expect(response.headers[.cacheControl] == "no-store")
            }
            try await client.execute(
                uri: "/v1/customers/c000002",
                method: .get,
                headers: GatewayFixture.headers(fixture.keys["agent"], purpose: "analytics")
            ) { response in
                #expect(response.status == .forbidden)
                #expect(String(buffer: response.body).contains("not_permitted"))
            }
            try await client.execute(
                uri: "/v1/customers/c000002",
                method: .get,
                headers: GatewayFixture.headers(fixture.keys["agent"], purpose: nil)
            ) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("purpose_required"))
            }
            // Every audit event keeps the purpose: one longer than any declared name is refused
            // before it is decided on, and not quoted back; one as long as a name can be is decided.
            let longest = String(repeating: "p", count: PurposeDefinition.maximumNameLength)
            for (purpose, status, code) in [
                (longest + "p", HTTPResponse.Status.badRequest, "invalid_input"),
                (longest, .forbidden, "unknown_purpose"),
            ] {
                try await client.execute(
                    uri: "/v1/customers/c000002",
                    method: .get,
                    headers: GatewayFixture.headers(fixture.keys["agent"], purpose: purpose)
                ) { response in
                    #expect(response.status == status)
                    let body = String(buffer: response.body)
                    #expect(body.contains(code))
                    #expect(body.contains(longest) == (status == .forbidden))
                }
            }
            let email = clear.fields["email"]?.displayText ?? ""
            try await client.execute(
                uri: "/v1/customers?email=\(email.uppercased())",
                method: .get,
                headers: GatewayFixture.headers(fixture.keys["agent"])
            ) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"customer_id\":\"c000002\""))
            }
        }
    }

    @Test("oversized bodies get 413, bursts get 429 with Retry-After, and both are audited")
    func limits() async throws {
        let (fixture, app) = try await GatewayFixture.make(
            configuration: GatewayConfiguration(maxBodyBytes: 64, requestsPerSecond: 0.01, burst: 3)
        )
        defer { fixture.environment.remove() }
        try await app.test(.router) { client in
            let big = ByteBuffer(string: "[" + String(repeating: "{\"customer_id\":\"c1\"},", count: 20) + "{}]")
            try await client.execute(
                uri: "/v1/conversations",
                method: .post,
                headers: GatewayFixture.headers(fixture.keys["agent"]),
                body: big
            ) { response in
                #expect(response.status == .contentTooLarge)
            }
            var statuses: [HTTPResponse.Status] = []
            for _ in 0..<4 {
                try await client.execute(
                    uri: "/v1/customers/c000001",
                    method: .get,
                    headers: GatewayFixture.headers(fixture.keys["agent"])
                ) { response in
                    statuses.append(response.status)
                    if response.status == .tooManyRequests { #expect(response.headers[.retryAfter] != nil) }
                }
            }
            #expect(statuses.contains(.tooManyRequests))
        }
        var rejected = AuditFilter()
        rejected.kind = "http.rejected"
        let outcomes = Set(try await fixture.tutela.auditSearch(rejected, limit: 100).map(\.outcome))
        #expect(outcomes == ["error:payload_too_large", "error:rate_limited"])
    }

    @Test("a query parameter a route does not take, or one given twice, gets 400 without being named back")
    func queryParameters() async throws {
        let (fixture, app) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        try await app.test(.router) { client in
            for (uri, message) in [
                ("/v1/customers/c000001?alice@example.com=1", "this route takes no query parameters"),
                (
                    "/v1/collections/customers/export?limit=2",
                    "this route takes no query parameters"
                ),
                (
                    "/v1/customers?email=a@example.com&alice@example.com",
                    "a query parameter this route does not take (it takes 'email', 'phone')"
                ),
                (
                    "/v1/customers?email=a@example.com&email=b@example.com",
                    "query parameter 'email' is given more than once"
                ),
                (
                    "/v1/customers?email=a@example.com&phone=555",
                    "give query parameter 'email' or 'phone', not both"
                ),
            ] {
                try await client.execute(
                    uri: uri,
                    method: .get,
                    headers: GatewayFixture.headers(fixture.keys["agent"])
                ) { response in
                    #expect(response.status == .badRequest, "\(uri)")
                    let body = String(buffer: response.body)
                    #expect(body.contains("\"code\":\"invalid_input\""))
                    #expect(body.contains(message), "\(body)")
                    #expect(!body.contains("alice"))
                }
            }
            // A lone `?` and empty pairs are no parameters.
            for uri in ["/v1/customers/c000001?", "/v1/customers/c000001?&&"] {
                try await client.execute(
                    uri: uri,
                    method: .get,
                    headers: GatewayFixture.headers(fixture.keys["agent"])
                ) { #expect($0.status == .ok, "\(uri)") }
            }
        }
        var refused = AuditFilter()
        refused.kind = "http.rejected"
        let outcomes = try await fixture.tutela.auditSearch(refused, limit: 100).map(\.outcome)
        #expect(outcomes == Array(repeating: "error:invalid_input", count: 5))
    }

    @Test("a lookup by a value with nothing to match by gets 400, not every customer with such a value")
    func unindexableLookup() async throws {
        let (fixture, app) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        _ = try await fixture.tutela.importRecords(
            into: "customers",
            data: Data("customer_id,email,phone\nc900001,a@example.com,n/a\nc900002,b@example.com,unknown\n".utf8),
            format: .csv
        )
        try await app.test(.router) { client in
            for (query, reason) in [("phone=none", "it has no digits"), ("email=%20", "it is empty or white space")] {
                try await client.execute(
                    uri: "/v1/customers?" + query,
                    method: .get,
                    headers: GatewayFixture.headers(fixture.keys["agent"])
                ) { response in
                    #expect(response.status == .badRequest, "\(query)")
                    let body = String(buffer: response.body)
                    #expect(body.contains("\"code\":\"invalid_input\"") && body.contains(reason), "\(body)")
                    #expect(!body.contains("none") && !body.contains("c90000"), "\(body)")
                }
            }
        }
        var agent = AuditFilter()
        agent.principal = "agent"
        let outcomes = try await fixture.tutela.auditSearch(agent, limit: 100).map(\.outcome)
        #expect(outcomes == Array(repeating: "error:invalid_input", count: 2))
    }

    @Test("a request no route matches is audited by method, without its path")
    func unmatchedRequestsAreAudited() async throws {
        let (fixture, app) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/v1/customers/alice@example.com/secrets",
                method: .get,
                headers: GatewayFixture.headers(fixture.keys["agent"])
            ) { response in
                #expect(response.status == .notFound)
            }
            // A path served with other methods: 405 and the methods that are.
            try await client.execute(uri: "/v1/customers/c000001", method: .put) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET, HEAD, DELETE")
                #expect(String(buffer: response.body).contains("\"code\":\"method_not_allowed\""))
            }
            try await client.execute(uri: "/v1/customers/", method: .patch) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET, HEAD, POST")
            }
            // Observability routes are not audited.
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
            }
        }
        var rejected = AuditFilter()
        rejected.kind = "http.rejected"
        let events = try await fixture.tutela.auditSearch(rejected, limit: 100)
        #expect(events.count == 3)
        #expect(Set(events.map(\.resource)) == ["GET unmatched", "PUT unmatched", "PATCH unmatched"])
        #expect(events.allSatisfy { $0.outcome.hasPrefix("error:http_4") && $0.principal == "-" })
        let everything = try await fixture.tutela.auditSearch(AuditFilter(), limit: 1000)
        #expect(!everything.contains { $0.record?.contains("alice") == true || $0.resource.contains("alice") })
    }

    @Test("a request refused before any step recorded it is audited once, with its caller and the error code")
    func unrecordedRefusalsAreAudited() async throws {
        let (fixture, app) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        let agent = fixture.keys["agent"]
        try await app.test(.router) { client in
            // A body that is not JSON.
            try await client.execute(
                uri: "/v1/interactions",
                method: .post,
                headers: GatewayFixture.headers(agent, purpose: "data_management"),
                body: ByteBuffer(string: "[[[not json")
            ) { #expect($0.status == .badRequest) }
            // No purpose header.
            try await client.execute(
                uri: "/v1/customers/c000001",
                method: .get,
                headers: GatewayFixture.headers(agent, purpose: nil)
            ) { #expect($0.status == .badRequest) }
            // Consent to a purpose that purposes.yaml does not declare.
            try await client.execute(
                uri: "/v1/customers/c000001/consents/x:support",
                method: .put,
                headers: GatewayFixture.headers(agent),
                body: ByteBuffer(string: "{\"granted\":true}")
            ) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("not declared in purposes.yaml"))
            }
            // A denial, audited by the decision itself: not a second time.
            try await client.execute(
                uri: "/v1/customers/c000001",
                method: .get,
                headers: GatewayFixture.headers(fixture.keys["nobody"])
            ) { #expect($0.status == .forbidden) }
        }
        var rejected = AuditFilter()
        rejected.kind = "http.rejected"
        let events = try await fixture.tutela.auditSearch(rejected, limit: 100)
        #expect(events.count == 3)
        #expect(events.allSatisfy { $0.principal == "agent" })
        #expect(
            Set(events.map { "\($0.resource) \($0.outcome)" }) == [
                "/v1/interactions error:invalid_input", "/v1/customers/{id} error:purpose_required",
                "/v1/customers/{id}/consents/{purpose} error:invalid_input",
            ]
        )
        var nobody = AuditFilter()
        nobody.principal = "nobody"
        #expect(try await fixture.tutela.auditSearch(nobody, limit: 100).count == 1)
        var consents = AuditFilter()
        consents.kind = "data.write"
        #expect(try await fixture.tutela.auditSearch(consents, limit: 100).isEmpty)
    }

    @Test("writes, consent, export and erasure through the API")
    func writesAndErasure() async throws {
        let (fixture, app) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        let officer = try await fixture.newKey(principal: "officer", roles: ["data_protection_officer"])
        try await app.test(.router) { client in
            let message = ByteBuffer(
                string:
                    "{\"message_id\":\"m9000\",\"customer_id\":\"c000003\",\"channel\":\"chat\",\"direction\":\"inbound\",\"text\":\"hi\",\"sent_at\":1700000000}"
            )
            try await client.execute(
                uri: "/v1/conversations",
                method: .post,
                headers: GatewayFixture.headers(fixture.keys["agent"]),
                body: message
            ) { response in
                #expect(response.status == .created)
            }
            try await client.execute(
                uri: "/v1/conversations",
                method: .post,
                headers: GatewayFixture.headers(fixture.keys["agent"]),
                body: ByteBuffer(string: "{\"message_id\":\"m9001\"}")
            ) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("customer_id"))
            }
            // A field named twice is refused, not resolved by picking one of the two values.
            try await client.execute(
                uri: "/v1/conversations",
                method: .post,
                headers: GatewayFixture.headers(fixture.keys["agent"]),
                body: ByteBuffer(string: "{\"message_id\":\"m9002\",\"text\":\"secret one\",\"text\":\"secret two\"}")
            ) { response in
                #expect(response.status == .badRequest)
                let text = String(buffer: response.body)
                #expect(text.contains("a field name appears twice") && !text.contains("secret"))
            }
            // A consent's other fields come from the path and the clock: sent in the body, they
            // are refused, and nothing is recorded.
            let granted = try await fixture.tutela.consentsGranted(customer: "c000003")
            #expect(!granted.contains("analytics"))
            try await client.execute(
                uri: "/v1/customers/c000003/consents/analytics",
                method: .put,
                headers: GatewayFixture.headers(fixture.keys["agent"]),
                body: ByteBuffer(string: "{\"granted\":true,\"customer_id\":\"c000004\"}")
            ) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("the body holds only the field 'granted'"))
            }
            #expect(try await fixture.tutela.consentsGranted(customer: "c000003") == granted)
            try await client.execute(
                uri: "/v1/customers/c000003/consents/analytics",
                method: .put,
                headers: GatewayFixture.headers(fixture.keys["agent"]),
                body: ByteBuffer(string: "{\"granted\":true}")
            ) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(
                uri: "/v1/collections/customers/export",
                method: .get,
                headers: GatewayFixture.headers(officer, purpose: "compliance")
            ) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).split(separator: "\n").count == 12)
            }
            for already in [false, true] {
                try await client.execute(
                    uri: "/v1/customers/c000003",
                    method: .delete,
                    headers: GatewayFixture.headers(officer, purpose: "compliance")
                ) { response in
                    #expect(response.status == .ok)
                    let body = try JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8))
                    #expect((body as? [String: Any])?["already_erased"] as? Bool == already)
                }
            }
            try await client.execute(
                uri: "/v1/customers/c000003",
                method: .get,
                headers: GatewayFixture.headers(officer, purpose: "compliance")
            ) { response in
                #expect(response.status == .gone)
            }
        }
        #expect(try await fixture.tutela.consentsGranted(customer: "c000003").isEmpty)
    }

    @Test("an id with spaces, quotes or letters outside ASCII is reached percent-encoded, and answered as JSON")
    func percentEncodedIDs() async throws {
        let (fixture, app) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        let id = "c \"7\" é"
        let line = #"{"customer_id":"c \"7\" é","email":"seven@example.com"}"# + "\n"
        _ = try await fixture.tutela.importRecords(into: "customers", data: Data(line.utf8), format: .jsonl)
        let encoded = "c%20%227%22%20%C3%A9"
        @Sendable func field(_ name: String, of response: TestResponse) -> String? {
            let object = try? JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8))
            return (object as? [String: Any])?[name] as? String
        }
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/v1/customers/\(encoded)",
                method: .get,
                headers: GatewayFixture.headers(fixture.keys["agent"])
            ) { response in
                #expect(response.status == .ok)
                #expect(field("customer_id", of: response) == id)
            }
            try await client.execute(
                uri: "/v1/customers/\(encoded)/consents/analytics",
                method: .put,
                headers: GatewayFixture.headers(fixture.keys["agent"]),
                body: ByteBuffer(string: "{\"granted\":true}")
            ) { response in
                #expect(response.status == .ok)
                #expect(field("customer_id", of: response) == id)
                #expect(field("purpose", of: response) == "analytics")
            }
            try await client.execute(
                uri: "/v1/customers/c%FF",
                method: .get,
                headers: GatewayFixture.headers(fixture.keys["agent"])
            ) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("the path's id is not valid percent-encoded UTF-8"))
            }
            // No record key holds a control character, and the id would go into the audit log.
            for control in ["c%1B%5B2J", "c%0A", "c%C2%9B"] {
                try await client.execute(
                    uri: "/v1/customers/\(control)",
                    method: .get,
                    headers: GatewayFixture.headers(fixture.keys["agent"])
                ) { response in
                    #expect(response.status == .badRequest)
                    #expect(String(buffer: response.body).contains("the path's id holds a control character"))
                }
            }
        }
        #expect(try await fixture.tutela.consentsGranted(customer: id) == ["analytics"])
    }

    @Test("the OpenAPI document lists exactly the routes the gateway serves, with their query parameters")
    func openAPIMatchesRoutes() async throws {
        let (fixture, app) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        try await app.test(.router) { client in
            try await client.execute(uri: "/openapi.yaml", method: .get) { response in
                #expect(response.status == .ok)
                let document = try #require(try Yams.load(yaml: String(buffer: response.body)) as? [String: Any])
                let paths = try #require(document["paths"] as? [String: Any])
                // Each operation with the query parameters it and its path declare.
                func queryNames(_ item: Any?) -> [String] {
                    (item as? [String: Any])?["parameters"].flatMap { $0 as? [[String: Any]] }?
                        .compactMap { $0["in"] as? String == "query" ? $0["name"] as? String : nil } ?? []
                }
                var documented: Set<String> = []
                for (path, item) in paths {
                    for (key, operation) in item as? [String: Any] ?? [:]
                    where ["get", "post", "put", "delete"].contains(key) {
                        let query = (queryNames(item) + queryNames(operation)).sorted()
                        documented.insert("\(key.uppercased()) \(path) \(query)")
                    }
                }
                let served = Set(GatewayRoute.all.map { "\($0.method.rawValue) \($0.path) \($0.query.sorted())" })
                #expect(documented == served)
                #expect((document["info"] as? [String: Any])?["version"] as? String == Tutela.version)
            }
        }
    }

    @Test(
        "while the audit log cannot store events, audited requests get 503 and /readyz says not ready; then both recover"
    )
    func auditOutage() async throws {
        let log = CollectedLog()
        let (fixture, app) = try await GatewayFixture.make(logger: log.logger())
        defer { fixture.environment.remove() }
        let blocker = try AuditLock(path: fixture.tutela.configuration.auditPath)
        let fetch: @Sendable (any TestClientProtocol) async throws -> HTTPResponse.Status = { client in
            try await client.execute(
                uri: "/v1/customers/c000001",
                method: .get,
                headers: GatewayFixture.headers(fixture.keys["agent"])
            ) { $0.status }
        }
        try await app.test(.router) { client in
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }
            try await blocker.lock()
            #expect(try await fetch(client) == .serviceUnavailable)
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(String(buffer: response.body).contains("not_ready"))
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                let failures = String(buffer: response.body).split(separator: "\n").first {
                    $0.hasPrefix("tutela_audit_write_failures_total ")
                }
                #expect((failures.flatMap { Int($0.split(separator: " ")[1]) } ?? 0) >= 1)
            }
            try await blocker.unlock()
            #expect(try await fetch(client) == .ok)
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }
        }
        // Told once each way; the reason is the lock (SQLITE_BUSY) or, on a loaded machine, the
        // append's deadline passing first.
        let told = log.lines.filter { $0.contains("the audit log") }
        #expect(told.count == 2)
        #expect(
            told.first?.hasPrefix("the audit log cannot store events; audited requests are refused reason=") == true
        )
        #expect(told.last == "the audit log stores events again")
    }

    @Test("a live server answers over a socket")
    func liveSmoke() async throws {
        let (fixture, app) = try await GatewayFixture.make(configuration: GatewayConfiguration(port: 0))
        defer { fixture.environment.remove() }
        try await app.test(.live) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(
                uri: "/v1/customers/c000001",
                method: .get,
                headers: GatewayFixture.headers(fixture.keys["agent"])
            ) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                #expect(
                    text.contains(
                        "tutela_http_requests_total{route=\"/v1/customers/{id}\",method=\"GET\",status=\"200\"} 1"
                    )
                )
                // The audit log's commits and the events in them, this process's own.
                func value(_ name: String) -> Int? {
                    text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap {
                        Int($0.split(separator: " ")[1])
                    }
                }
                let batches = try #require(value("tutela_audit_batches_total"))
                let events = try #require(value("tutela_audit_events_total"))
                #expect(batches >= 1 && events >= batches)
                // Every stored batch is in the commit histogram once, in a bucket and in +Inf.
                #expect(value("tutela_audit_commit_duration_seconds_count") == batches)
                let buckets = text.split(separator: "\n").filter {
                    $0.hasPrefix("tutela_audit_commit_duration_seconds_bucket{")
                }
                #expect(buckets.count == AuditCommitTimes.bounds.count + 1)
                #expect(buckets.last == "tutela_audit_commit_duration_seconds_bucket{le=\"+Inf\"} \(batches)")
                // Nothing archived by this process, nothing failed.
                #expect(value("tutela_audit_archived_entries_total") == 0)
                #expect(value("tutela_audit_archive_failures_total") == 0)
            }
        }
    }
}

@Suite("Request context at the gateway")
struct GatewayRequestContextTests {
    @Test("conditions read context.channel as api through the gateway and cli in process, and context.hour as 0 to 23")
    func channelAndHour() async throws {
        let policies = try PolicyFixture.copy()
        defer { try? FileManager.default.removeItem(atPath: policies) }
        // Support reads only through the gateway, at any hour of the day: fails closed (denies)
        // wherever either attribute is missing.
        let path = policies + "/policies/support.yaml"
        try
            (try String(contentsOfFile: path, encoding: .utf8)
                + """

                  - id: support-reads-through-the-gateway-only
                    description: A test rule.
                    effect: forbid
                    roles: [support_agent]
                    actions: [read]
                    collections: [customers]
                    purposes: [support]
                    when: "context.channel != \\"api\\" || context.hour < 0 || context.hour > 23"

                """)
            .write(toFile: path, atomically: true, encoding: .utf8)
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        var configuration = environment.configuration
        configuration.policiesDirectory = policies
        _ = try await Tutela.initialize(configuration, now: 1_700_000_000_000)
        let tutela = try await Tutela.open(configuration)
        let dataset = SampleDataset.generate(customers: 3, items: 5, interactionsPerCustomer: 1)
        _ = try await tutela.importRecords(into: "customers", data: Data(dataset.customersCSV.utf8), format: .csv)
        _ = try await tutela.createPrincipal(name: "agent", roles: ["support_agent"], attributes: [:])
        let token = try await tutela.createAPIKey(principal: "agent", expiresAt: nil).token

        let local = await #expect(throws: TutelaError.self) {
            try await tutela.governedRecord(
                Caller(principal: "agent", purpose: "support"),
                collection: "customers",
                id: "c000001"
            )
        }
        #expect(local?.code == .denied)
        #expect(local?.message.contains("support-reads-through-the-gateway-only") == true, "\(local?.message ?? "")")

        let app = try buildApplication(
            tutela: tutela,
            configuration: GatewayConfiguration(),
            logger: Logger(label: "tutela.gateway.test")
        )
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/v1/customers/c000001",
                method: .get,
                headers: GatewayFixture.headers(token)
            ) { response in
                #expect(response.status == .ok, "\(String(buffer: response.body))")
            }
        }
    }
}

import Audit
import Foundation
import GRDB
import Governance
import KeyManagement
import Store
import Testing
import TutelaCore
import TutelaTestSupport

@Suite("Governed reads: authorize, fetch, filter by consent, mask")
struct GovernedAccessTests {
    @Test("the same customer reads differently by role and purpose, exactly as the decision says")
    func masksByRole() async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let (tutela, _) = try await environment.startWithSample(customers: 30)
        _ = try await tutela.createPrincipal(name: "alice", roles: ["support_agent"], attributes: [:])
        _ = try await tutela.createPrincipal(name: "dora", roles: ["data_protection_officer"], attributes: [:])
        let clear = try await tutela.record(collection: "customers", id: "c000005")

        let support = try await tutela.governedRecord(
            Caller(principal: "alice", purpose: "support"),
            collection: "customers",
            id: "c000005"
        )
        #expect(support.fields["email"] == clear.fields["email"])
        #expect(support.fields["full_name"] == clear.fields["full_name"])
        #expect(support.fields["birth_date"] == .string("[pii.dob]"))
        #expect(support.fields["occupation"] == nil)
        guard case .string(let phone)? = support.fields["phone"], case .string(let clearPhone)? = clear.fields["phone"]
        else {
            Issue.record("phone missing")
            return
        }
        #expect(phone.hasSuffix(String(clearPhone.suffix(4))))
        #expect(phone.hasPrefix("****"))

        let officer = try await tutela.governedRecord(
            Caller(principal: "dora", purpose: "compliance"),
            collection: "customers",
            id: "c000005"
        )
        #expect(officer.fields == clear.fields)

        let denied = await #expect(throws: TutelaError.self) {
            try await tutela.governedRecord(
                Caller(principal: "alice", purpose: "analytics"),
                collection: "customers",
                id: "c000005"
            )
        }
        #expect(denied?.code == .denied)
        #expect(denied?.message.contains("not_permitted") == true)
        #expect(denied?.message.contains("@") == false)

        let unknown = await #expect(throws: TutelaError.self) {
            try await tutela.governedRecord(
                Caller(principal: "mallory", purpose: "support"),
                collection: "customers",
                id: "c000005"
            )
        }
        #expect(unknown?.message.contains("unknown_principal") == true)

        _ = try await tutela.setDisabled(true, principal: "alice")
        let disabled = await #expect(throws: TutelaError.self) {
            try await tutela.governedRecord(
                Caller(principal: "alice", purpose: "support"),
                collection: "customers",
                id: "c000005"
            )
        }
        #expect(disabled?.message.contains("principal_disabled") == true)
    }

    @Test("fields a decision hides are never made into values, and hidden fields that were never stored stay absent")
    func withheldFieldsAreNotDecrypted() async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let (tutela, _) = try await environment.startWithSample(customers: 5)
        let caller = Caller(principal: "alice", purpose: "support")
        _ = try await tutela.createPrincipal(name: "alice", roles: ["support_agent"], attributes: [:])
        let decision = try await tutela.explain(caller, action: .read, collection: "customers")
        let definition = try tutela.schema.collection("customers")
        let withheld = decision.obligations.withheldFields(of: definition)
        // Support sees birth dates as a class token and no occupation: neither needs the value.
        #expect(withheld.isSuperset(of: ["birth_date", "occupation"]))
        #expect(!withheld.contains("email"))
        let stored = try await tutela.store.get(collection: "customers", id: "c000003", withheld: withheld)
        #expect(stored.fields["birth_date"] == nil)
        #expect(stored.withheld.contains("birth_date"))
        #expect(stored.fields["email"] != nil)

        // A customer without a birth date: the token is not made up for a value that is not there.
        try await tutela.store.put([
            try definition.makeRecord(from: ["customer_id": .text("c900001"), "email": .text("nobody@example.com")])
        ])
        let sparse = try await tutela.governedRecord(caller, collection: "customers", id: "c900001")
        #expect(sparse.fields["birth_date"] == nil)
        let full = try await tutela.governedRecord(caller, collection: "customers", id: "c000003")
        #expect(full.fields["birth_date"] == .string("[pii.dob]"))
    }

    @Test("exports for a purpose that needs consent hold only consenting customers, pseudonymized")
    func consentFilter() async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let (tutela, _) = try await environment.startWithSample(customers: 40)
        _ = try await tutela.createPrincipal(name: "partner", roles: ["partner_service"], attributes: [:])
        var consenting: Set<String> = []
        try await tutela.exportRecords(collection: "consents") { page in
            for consent in page
            where consent.fields["purpose"] == .string("partner_exchange") && consent.fields["granted"] == .bool(true) {
                consenting.insert(consent.subject)
            }
        }
        try #require(!consenting.isEmpty && consenting.count < 40)
        var exported: [TutelaCore.Record] = []
        let count = try await tutela.governedExport(
            Caller(principal: "partner", purpose: "partner_exchange"),
            collection: "customers"
        ) {
            exported += $0
        }
        #expect(count == consenting.count)
        for record in exported {
            #expect(record.fields["email"] == nil)
            #expect(record.fields["phone"] == nil)
            #expect(record.fields["customer_id"]?.displayText.hasPrefix("ps_") == true)
        }
    }

    @Test("a consent counts only for the customer and the purpose it names, whatever its record id says")
    func consentMatchesItsRecord() async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let (tutela, _) = try await environment.startWithSample(customers: 40)
        _ = try await tutela.createPrincipal(name: "partner", roles: ["partner_service"], attributes: [:])
        let consents = try tutela.schema.collection("consents")
        var consenting: Set<String> = []
        try await tutela.exportRecords(collection: "consents") { page in
            for consent in page
            where consent.fields["purpose"] == .string("partner_exchange") && consent.fields["granted"] == .bool(true) {
                consenting.insert(consent.subject)
            }
        }
        let others = (1...40).map { String(format: "c%06d", $0) }.filter { !consenting.contains($0) }
        try #require(others.count >= 2 && !consenting.isEmpty)
        let (refuser, other) = (others[0], others[1])
        // Stored past the import's checks, as a damaged or hand-made file might have been
        // before them: one customer's consent under another's record id, and a consent to
        // another purpose under this purpose's id.
        func consent(id: String, customer: String, purpose: String) -> TutelaCore.Record {
            TutelaCore.Record(
                collection: consents.name,
                id: id,
                subject: customer,
                fields: [
                    "consent_id": .string(id), "customer_id": .string(customer), "purpose": .string(purpose),
                    "granted": .bool(true),
                ]
            )
        }
        try await tutela.store.put([
            consent(
                id: "\(refuser):partner_exchange",
                customer: try #require(consenting.first),
                purpose: "partner_exchange"
            ),
            consent(id: "\(other):partner_exchange", customer: other, purpose: "analytics"),
        ])
        #expect(try await !tutela.consentsGranted(customer: refuser).contains("partner_exchange"))
        #expect(try await !tutela.consentsGranted(customer: other).contains("partner_exchange"))
        var exported: Set<String> = []
        try await tutela.governedExport(
            Caller(principal: "partner", purpose: "partner_exchange"),
            collection: "customers"
        ) { page in
            for record in page { exported.insert(record.id) }
        }
        #expect(exported.count == consenting.count)
    }

    @Test(
        "a governed write of a consent is refused for a purpose purposes.yaml does not declare, an id not its own, or an id twice"
    )
    func consentWrites() async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let (tutela, _) = try await environment.startWithSample(customers: 3)
        _ = try await tutela.createPrincipal(name: "steward", roles: ["data_steward"], attributes: [:])
        let caller = Caller(principal: "steward", purpose: "data_management")
        func row(id: String, purpose: String) -> [String: RawFieldValue] {
            [
                "consent_id": .text(id), "customer_id": .text("c000001"), "purpose": .text(purpose),
                "granted": .bool(true), "recorded_at": .text("2024-01-01T00:00:00Z"),
            ]
        }
        for (bad, message) in [
            (
                row(id: "c000001:analytcs", purpose: "analytcs"),
                "field 'purpose': not a purpose declared in purposes.yaml"
            ),
            (row(id: "c000002:analytics", purpose: "analytics"), "the record key must be customer_id:purpose"),
            (row(id: "c000001:support", purpose: "support"), "its record id repeats record 1's"),
        ] {
            let error = await #expect(throws: TutelaError.self) {
                try await tutela.governedWrite(
                    caller,
                    collection: "consents",
                    rows: [row(id: "c000001:support", purpose: "support"), bad]
                )
            }
            #expect(error?.message.contains("record 2: ") == true, "\(error?.message ?? "")")
            #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
        }
        // Nothing of either write was stored, the good first row included.
        var consents: [TutelaCore.Record] = []
        try await tutela.exportRecords(collection: "consents") { consents += $0 }
        #expect(
            !consents.contains {
                $0.id == "c000001:analytcs" || $0.fields["recorded_at"] == .timestamp(milliseconds: 1_704_067_200_000)
            }
        )
    }

    @Test("granting roles checks separation of duties and known roles and attributes")
    func principalAdministration() async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let tutela = try await environment.start()
        _ = try await tutela.createPrincipal(name: "trainer", roles: ["model_trainer"], attributes: ["clearance": "1"])
        let conflict = await #expect(throws: TutelaError.self) {
            try await tutela.grant(role: "data_protection_officer", to: "trainer")
        }
        #expect(conflict?.message.contains("may not be held together") == true)
        #expect(try await tutela.principal(named: "trainer").roles == ["model_trainer"])
        await #expect(throws: TutelaError.self) {
            try await tutela.createPrincipal(name: "x", roles: ["wizard"], attributes: [:])
        }
        await #expect(throws: TutelaError.self) {
            try await tutela.createPrincipal(name: "y", roles: ["support_agent"], attributes: ["clearance": "high"])
        }
        await #expect(throws: TutelaError.self) {
            try await tutela.createPrincipal(name: "trainer", roles: [], attributes: [:])
        }
        // A name is in every audit event of its requests: bounded, and refused one byte past it.
        let longest = String(repeating: "n", count: Tutela.maximumPrincipalNameLength)
        let tooLong = await #expect(throws: TutelaError.self) {
            try await tutela.createPrincipal(name: longest + "n", roles: ["support_agent"], attributes: [:])
        }
        #expect(tooLong?.message == "a principal name has at most 128 bytes, not 129")
        #expect(
            try await tutela.createPrincipal(name: longest, roles: ["support_agent"], attributes: [:]).name == longest
        )
        let revoked = try await tutela.revoke(role: "model_trainer", from: "trainer")
        #expect(revoked.roles.isEmpty)
    }

    @Test("a principal whose stored attributes were damaged is refused, not read as having none")
    func damagedPrincipalAttributes() async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let (tutela, _) = try await environment.startWithSample(customers: 5)
        _ = try await tutela.createPrincipal(name: "alice", roles: ["support_agent"], attributes: [:])
        let caller = Caller(principal: "alice", purpose: "support")
        _ = try await tutela.governedRecord(caller, collection: "customers", id: "c000002")

        let database = try DatabaseQueue(path: environment.configuration.databasePath)
        try await database.write { db in
            try db.execute(sql: "UPDATE principals SET attributes = '{\"clearance\": ' WHERE name = 'alice'")
        }
        // A fresh instance, as a new process would read it: no cached principal.
        let reopened = try await Tutela.open(environment.configuration)
        let readError = await #expect(throws: TutelaError.self) {
            try await reopened.governedRecord(caller, collection: "customers", id: "c000002")
        }
        #expect(readError?.code == .storage)
        #expect(readError?.message.contains("principal 'alice' are damaged") == true)
        let listError = await #expect(throws: TutelaError.self) { try await reopened.listPrincipals() }
        #expect(listError?.message.contains("principal 'alice' are damaged") == true)
    }

    @Test("an export that meets a damaged record stops there and is audited with the error")
    func exportOfDamagedRecord() async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let (tutela, _) = try await environment.startWithSample(customers: 5)
        _ = try await tutela.createPrincipal(name: "dora", roles: ["data_protection_officer"], attributes: [:])
        let caller = Caller(principal: "dora", purpose: "compliance", requestID: "export-1")
        let database = try DatabaseQueue(path: environment.configuration.databasePath)
        try await database.write { db in
            try db.execute(sql: "UPDATE records SET payload = x'7f' || substr(payload, 2) WHERE id = 'c000004'")
        }
        // Two records a page: the first page goes out, the second holds the damaged record.
        var pages = 0
        let error = await #expect(throws: TutelaError.self) {
            try await tutela.governedExport(caller, collection: "customers", pageSize: 2) { _ in pages += 1 }
        }
        #expect(error?.code == .ciphertextTampered)
        #expect(error?.message.contains("customers/c000004") == true)
        #expect(pages == 1)
        var filter = AuditFilter()
        filter.principal = "dora"
        let events = try await tutela.audit.search(filter, limit: 10).filter { $0.requestID == "export-1" }
        #expect(events.map(\.outcome) == ["error:ciphertext_tampered", "ok"])
    }
}

@Suite("Request context against attributes.yaml")
struct RequestContextTests {
    @Test("a context attribute that is not declared, or not of its declared type, is refused, not read as missing")
    func contextIsTyped() async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let (tutela, _) = try await environment.startWithSample(customers: 3)
        _ = try await tutela.createPrincipal(name: "alice", roles: ["support_agent"], attributes: [:])
        let before = try await tutela.audit.size
        for (context, message) in [
            (["hour": "noon"], "context attribute 'hour' is an integer"),
            (["chanel": "cli"], "context attribute 'chanel' is not declared in attributes.yaml"),
        ] {
            let refused = await #expect(throws: TutelaError.self) {
                try await tutela.governedRecord(
                    Caller(principal: "alice", purpose: "support", context: context),
                    collection: "customers",
                    id: "c000001"
                )
            }
            #expect(refused?.code == .invalidInput)
            #expect(refused?.message == message)
        }
        // Typed as declared, the same read goes through.
        let read = try await tutela.governedRecord(
            Caller(principal: "alice", purpose: "support", context: ["hour": "9", "channel": "cli"]),
            collection: "customers",
            id: "c000001"
        )
        #expect(read.id == "c000001")
        #expect(try await tutela.audit.size == before + 1)
    }
}

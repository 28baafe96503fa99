import Foundation
import GRDB
import Governance
import KeyManagement
import Store
import Synchronization
import Testing
import TutelaCore
import TutelaTestSupport

/// The behaviour every `RecordStore` backend must have, run against each backend.
@Suite("RecordStore conformance")
struct StoreConformanceTests {
    /// The backends under test, each made fresh in a temporary directory.
    static let backends = ["sqlite"]

    private func makeStore(_ backend: String) throws -> (EncryptedStore, String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tutela-store-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let recordStore: any RecordStore
        switch backend {
        default: recordStore = try SQLiteRecordStore(path: directory + "/store.sqlite")
        }
        let store = EncryptedStore(
            backend: recordStore,
            schema: try TestEnvironment.schema(),
            keyring: Keyring.generate(now: 0),
            tenant: "acme"
        )
        return (store, directory)
    }

    @Test("records round-trip and pages come in id order", arguments: backends)
    func roundTrip(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let records = (1...25).map {
            SampleRecords.customer(String(format: "c%03d", $0), email: "user\($0)@example.com")
        }
        try await store.put(records)
        #expect(try await store.get(collection: "customers", id: "c007") == records[6])
        let first = try await store.page(collection: "customers", after: nil, limit: 10)
        let second = try await store.page(collection: "customers", after: first.last?.id, limit: 100)
        #expect((first + second).map(\.id) == records.map(\.id))
        #expect(try await store.backend.count(collection: "customers") == 25)
        let missing = await #expect(throws: TutelaError.self) {
            try await store.get(collection: "customers", id: "nope")
        }
        #expect(missing?.code == .notFound)
    }

    @Test("a record is found by email or phone through its blind index", arguments: backends)
    func blindIndex(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await store.put([
            SampleRecords.customer("c1", email: "Alice@Example.com", phone: "+1 (555) 123-4567"),
            SampleRecords.customer("c2", email: "bob@example.com", phone: "+1 555 999 0000"),
        ])
        #expect(
            try await store.find(collection: "customers", field: "email", value: " alice@EXAMPLE.com").map(\.id) == [
                "c1"
            ]
        )
        #expect(
            try await store.find(collection: "customers", field: "phone", value: "+15559990000").map(\.id) == ["c2"]
        )
        #expect(try await store.find(collection: "customers", field: "email", value: "carol@example.com").isEmpty)
        // Replacing a record replaces its index entries.
        try await store.put([SampleRecords.customer("c1", email: "alice.new@example.com")])
        #expect(try await store.find(collection: "customers", field: "email", value: "alice@example.com").isEmpty)
        #expect(
            try await store.find(collection: "customers", field: "email", value: "alice.new@example.com").map(\.id) == [
                "c1"
            ]
        )
        // Several records with one value come in id order, each opened with its own data key.
        try await store.put([
            SampleRecords.customer("c9", email: "c9@example.com", phone: "+1 555 000 1111"),
            SampleRecords.customer("c3", email: "c3@example.com", phone: "+1 555 000 1111"),
        ])
        let shared = try await store.find(collection: "customers", field: "phone", value: "+1 555 000 1111")
        #expect(shared.map(\.id) == ["c3", "c9"])
        #expect(shared.map { $0.fields["email"] } == [.string("c3@example.com"), .string("c9@example.com")])
        await #expect(throws: TutelaError.self) {
            try await store.find(collection: "customers", field: "full_name", value: "Alice Example")
        }
    }

    @Test("the raw database file holds no plaintext PII", arguments: backends)
    func rawFileScan(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let dataset = SampleDataset.generateCustomers(count: 60)
        try await store.put(dataset)
        let needles = dataset.flatMap { record in
            ["email", "phone", "full_name", "street_address", "birth_date"].compactMap {
                record.fields[$0]?.displayText
            }
        }
        #expect(needles.count == 60 * 5)
        var bytes = Data()
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            bytes.append(FileManager.default.contents(atPath: directory + "/" + name) ?? Data())
        }
        // The scan must be able to fail: the clear segment label is stored and found.
        #expect(bytes.range(of: Data("loyal".utf8)) != nil)
        for needle in needles {
            #expect(bytes.range(of: Data(needle.utf8)) == nil, "found a plaintext value in the database file")
        }
    }

    @Test("a stored ciphertext edited in the database is reported with record and fields", arguments: backends)
    func tamperedPayload(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await store.put([
            SampleRecords.customer("c1", email: "alice@example.com"),
            SampleRecords.customer("c2", email: "bob@example.com"),
        ])
        let (stored, key) = try #require(try await store.backend.record(collection: "customers", id: "c1"))
        // Flip one bit inside the sealed group, leaving the payload's framing intact.
        let group = try #require(try RecordPayload.groupRange(in: stored.payload, record: "test"))
        var altered = stored
        altered.payload[group.upperBound - 20] ^= 0x01
        let error = #expect(throws: TutelaError.self) { try store.open(altered, key: key) }
        #expect(error?.code == .ciphertextTampered)
        #expect(error?.message.contains("customers/c1 fields 'email', 'phone', 'full_name', 'birth_date'") == true)

        // The clear names say which value is which: relabelling two sealed fields is caught.
        var relabelled = stored
        let email = Array("email".utf8) + [2]
        let phone = Array("phone".utf8) + [2]
        let emailAt = try #require(relabelled.payload.firstRange(of: email))
        let phoneAt = try #require(relabelled.payload.firstRange(of: phone))
        relabelled.payload.replaceSubrange(emailAt, with: phone)
        relabelled.payload.replaceSubrange(phoneAt, with: email)
        let relabelError = #expect(throws: TutelaError.self) { try store.open(relabelled, key: key) }
        #expect(relabelError?.code == .ciphertextMisplaced)
        #expect(relabelError?.message.contains("belongs to another record or field") == true)

        // c1's payload copied onto c2 under c2's key.
        let (other, otherKey) = try #require(try await store.backend.record(collection: "customers", id: "c2"))
        var moved = stored
        moved.id = other.id
        moved.subject = other.subject
        let movedError = #expect(throws: TutelaError.self) { try store.open(moved, key: otherKey) }
        #expect(movedError?.code == .ciphertextMisplaced)
        #expect(movedError?.message.contains("another subject's data key") == true)

        // One interaction's payload copied onto another of the same customer: same data key,
        // another record.
        try await store.put([SampleRecords.interaction("i1", of: "c1"), SampleRecords.interaction("i2", of: "c1")])
        let (first, firstKey) = try #require(try await store.backend.record(collection: "interactions", id: "i1"))
        var copied = first
        copied.id = "i2"
        let copiedError = #expect(throws: TutelaError.self) { try store.open(copied, key: firstKey) }
        #expect(copiedError?.code == .ciphertextMisplaced)
        #expect(copiedError?.message.contains("interactions/i2 fields") == true)
    }

    @Test("the SQLite store erases a customer whose list of blind-index entries was damaged, entries included")
    func erasureWithDamagedLookupList() async throws {
        let (store, directory) = try makeStore("sqlite")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await store.put([
            SampleRecords.customer("c1", email: "alice@example.com"),
            SampleRecords.customer("c2", email: "bob@example.com"),
        ])
        let database = try DatabaseQueue(path: directory + "/store.sqlite", configuration: .waitingForLocks)
        try await database.write { db in
            try db.execute(sql: "UPDATE records SET lookups = x'05' WHERE id = 'c1'")
        }
        // An update of the record needs its list, and says whose it is.
        let update = await #expect(throws: TutelaError.self) {
            try await store.put([SampleRecords.customer("c1", email: "carol@example.com")])
        }
        #expect(update?.message.contains("stored with customers/c1 is damaged") == true)
        // An erasure goes ahead and leaves no index entry of the customer behind.
        let report = try await store.erase(subject: "c1", at: 1)
        #expect(report.dataKeyDestroyed && report.recordsRemoved == 1 && report.lookupsRemoved == 2)
        let left = try await database.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM lookups WHERE record_id = 'c1'")
        }
        #expect(left == 0)
        #expect(try await store.find(collection: "customers", field: "email", value: "bob@example.com").count == 1)
    }

    @Test("a stored payload altered at any byte is refused with an error naming its record", arguments: backends)
    func alteredPayloadBytes(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await store.put([SampleRecords.customer("c1", email: "alice@example.com")])
        let (stored, key) = try #require(try await store.backend.record(collection: "customers", id: "c1"))
        var refused = 0
        for index in stored.payload.indices {
            var altered = stored
            altered.payload[index] ^= 0x01
            // A clear value (the id, the segment label) is stored as it is, not sealed: a changed
            // letter there reads back changed. Everything else must be refused.
            let error: TutelaError
            do {
                _ = try store.open(altered, key: key)
                continue
            } catch let thrown as TutelaError {
                error = thrown
            }
            refused += 1
            // The stored data is at fault, not a caller's input: never `.invalidInput` (a 400 at
            // the gateway), always the record's name.
            #expect(
                [.ciphertextTampered, .ciphertextMisplaced].contains(error.code),
                "byte \(index): \(error.code.rawValue): \(error.message)"
            )
            #expect(error.message.contains("customers/c1"), "byte \(index): \(error.message)")
        }
        #expect(refused > stored.payload.count / 2)

        // A stored field name is quoted in the message with its control characters escaped.
        var renamed = stored
        let email = try #require(renamed.payload.firstRange(of: Array("email".utf8) + [2]))
        renamed.payload[email.lowerBound] = 0x1B
        let renamedError = #expect(throws: TutelaError.self) { try store.open(renamed, key: key) }
        #expect(renamedError?.message.contains("'\\u{1b}mail'") == true)
        #expect(renamedError?.message.unicodeScalars.contains(where: \.isControlCharacter) == false)
    }

    @Test("withheld fields are listed, not decrypted into values, in both payload formats", arguments: backends)
    func withheldFields(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (original, stored, wrapped) = try await Self.storedCustomer(in: store)
        let hidden: Set<String> = ["email", "birth_date", "zip"]
        let record = try store.open(stored, key: wrapped, withheld: hidden)
        // zip was never stored, so it is not listed.
        #expect(record.withheld == ["email", "birth_date"])
        #expect(record.fields["email"] == nil && record.fields["birth_date"] == nil)
        #expect(record.fields["phone"] == original.fields["phone"])
        #expect(record.fields["segment"] == .string("loyal"))

        let old = try Self.fieldFormat(stored, store: store, wrapped: wrapped, tenant: "acme")
        let fromOld = try store.open(old, key: wrapped, withheld: hidden)
        #expect(fromOld.withheld == record.withheld)
        #expect(fromOld.fields == record.fields)
    }

    @Test("records written in the field-by-field format of earlier versions still open", arguments: backends)
    func fieldFormatStillOpens(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (original, stored, wrapped) = try await Self.storedCustomer(in: store)
        let old = try Self.fieldFormat(stored, store: store, wrapped: wrapped, tenant: "acme")
        #expect(old.payload.first == 1)
        #expect(try store.open(old, key: wrapped) == original)
        // Written back through the backend, it is read as any record is.
        var batch = WriteBatch()
        batch.records = [old]
        batch.expectedKeyIDs["c1"] = wrapped?.id
        try await store.backend.apply(batch)
        #expect(try await store.get(collection: "customers", id: "c1") == original)
        // A field sealed on its own and moved to another field is caught.
        var entries = try RecordPayload.decode(old.payload, record: "test")
        let emailIndex = try #require(entries.firstIndex { $0.name == "email" })
        let phoneIndex = try #require(entries.firstIndex { $0.name == "phone" })
        (entries[emailIndex].entry, entries[phoneIndex].entry) = (entries[phoneIndex].entry, entries[emailIndex].entry)
        var swapped = old
        swapped.payload = RecordPayload.encodeFieldFormat(entries)
        let error = #expect(throws: TutelaError.self) { try store.open(swapped, key: wrapped) }
        #expect(error?.code == .ciphertextMisplaced)
        #expect(error?.message.contains("customers/c1 field 'email'") == true)
    }

    /// A customer put into `store`, and the row and wrapped key the backend keeps for it.
    private static func storedCustomer(
        in store: EncryptedStore
    ) async throws -> (TutelaCore.Record, StoredRecord, WrappedDataKey?) {
        let original = SampleRecords.customer("c1", email: "alice@example.com")
        try await store.put([original])
        let (stored, wrapped) = try #require(try await store.backend.record(collection: "customers", id: "c1"))
        return (original, stored, wrapped)
    }

    /// The same record in format 1: every sealed field in a ciphertext of its own.
    private static func fieldFormat(
        _ stored: StoredRecord,
        store: EncryptedStore,
        wrapped: WrappedDataKey?,
        tenant: String
    ) throws -> StoredRecord {
        let cipher = EnvelopeCipher(keyring: store.keyring, tenant: tenant)
        let key = try cipher.unwrap(try #require(wrapped), subject: stored.subject)
        let clear = try store.open(stored, key: wrapped)
        let definition = try store.schema.collection(stored.collection)
        var entries: [(name: String, entry: RecordPayload.Entry)] = []
        for field in definition.fields {
            guard let value = clear.fields[field.name] else { continue }
            guard field.isEncrypted else {
                entries.append((field.name, .clear(value)))
                continue
            }
            let context = FieldContext(
                tenant: tenant,
                collection: stored.collection,
                recordID: stored.id,
                field: field.name
            )
            entries.append((field.name, .sealed(try cipher.seal(value, with: key, context: context))))
        }
        var old = stored
        old.payload = RecordPayload.encodeFieldFormat(entries)
        return old
    }

    @Test(
        "erasing a subject destroys the data key: an old copy of their ciphertext no longer opens",
        arguments: backends
    )
    func cryptoShredding(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await store.put([
            SampleRecords.customer("c1", email: "alice@example.com"),
            SampleRecords.customer("c2", email: "bob@example.com"),
        ])
        let (copy, keyBefore) = try #require(try await store.backend.record(collection: "customers", id: "c1"))
        #expect(try store.open(copy, key: keyBefore).fields["email"] == .string("alice@example.com"))

        let report = try await store.erase(subject: "c1", at: 1)
        #expect(report == ErasureReport(dataKeyDestroyed: true, recordsRemoved: 1, lookupsRemoved: 2))
        #expect(try await store.backend.dataKeys(subjects: ["c1"]).isEmpty)
        let erased = #expect(throws: TutelaError.self) { try store.open(copy, key: nil) }
        #expect(erased?.code == .subjectErased)
        #expect(try await store.find(collection: "customers", field: "email", value: "alice@example.com").isEmpty)
        #expect(try await store.get(collection: "customers", id: "c2").fields["email"] == .string("bob@example.com"))
        // Nothing can be written for an erased subject again.
        let rewrite = await #expect(throws: TutelaError.self) {
            try await store.put([SampleRecords.customer("c1", email: "alice@example.com")])
        }
        #expect(rewrite?.code == .subjectErased)
        #expect(try await store.backend.isErased(subject: "c1"))
        // Asked among more subjects than one statement takes, the erased one among the last.
        let among = Set((0..<600).map { "x\($0)" } + ["c1", "c2"])
        #expect(try await store.backend.erasedSubjects(among: among) == ["c1"])
        #expect(try await store.backend.erasedSubjects(among: []).isEmpty)
        let gone = await #expect(throws: TutelaError.self) { try await store.get(collection: "customers", id: "c1") }
        #expect(gone?.code == .subjectErased)
        // Erased again: nothing is left, and the report says it was erased before.
        #expect(
            try await store.erase(subject: "c1", at: 2)
                == ErasureReport(dataKeyDestroyed: false, recordsRemoved: 0, lookupsRemoved: 0, alreadyErased: true)
        )
    }

    @Test(
        "erasing a subject removes its records in every collection and nobody else's",
        arguments: backends
    )
    func erasureAcrossCollections(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await store.put([
            SampleRecords.customer("c1", email: "alice@example.com"),
            SampleRecords.customer("c2", email: "bob@example.com"),
        ])
        // The interaction with id c1 is c2's record and stays; the one with id c2 is c1's and goes.
        try await store.put([
            SampleRecords.interaction("i1", of: "c1"), SampleRecords.interaction("c2", of: "c1"),
            SampleRecords.interaction("c1", of: "c2"),
            SampleRecords.interaction("i4", of: "c2"),
        ])
        let report = try await store.erase(subject: "c1", at: 1)
        #expect(report == ErasureReport(dataKeyDestroyed: true, recordsRemoved: 3, lookupsRemoved: 2))
        let customers = try await store.page(collection: "customers", after: nil, limit: 10)
        #expect(customers.map(\.id) == ["c2"])
        let interactions = try await store.page(collection: "interactions", after: nil, limit: 10)
        #expect(interactions.map(\.id) == ["c1", "i4"])
        #expect(interactions.allSatisfy { $0.subject == "c2" })
    }

    @Test(
        "a reader that keeps a customer's data key reads what a fresh one reads, and nothing once another erases them",
        arguments: backends
    )
    func keptKeysAfterErasureElsewhere(_ backend: String) async throws {
        let (reader, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let customers = [
            SampleRecords.customer("c1", email: "alice@example.com"),
            SampleRecords.customer("c2", email: "bob@example.com"),
        ]
        try await reader.put(customers + [SampleRecords.interaction("i1", of: "c1")])
        // A first read unwraps each customer's key and keeps it; a second store over the same
        // database is another process, which keeps none.
        for customer in customers {
            #expect(try await reader.get(collection: "customers", id: customer.id) == customer)
        }
        let other = EncryptedStore(
            backend: try SQLiteRecordStore(path: directory + "/store.sqlite"),
            schema: reader.schema,
            keyring: reader.keyring,
            tenant: "acme"
        )
        #expect(reader.cachedDataKeyCount == 2 && other.cachedDataKeyCount == 0)
        for customer in customers {
            #expect(try await reader.get(collection: "customers", id: customer.id) == customer)
            #expect(try await other.get(collection: "customers", id: customer.id) == customer)
        }
        #expect(
            try await reader.find(collection: "customers", field: "email", value: "alice@example.com") == [customers[0]]
        )
        #expect(try await reader.backend.dataKey(subject: "c1") == reader.backend.dataKeys(subjects: ["c1"])["c1"])

        _ = try await other.erase(subject: "c1", at: 1)
        #expect(try await reader.backend.recordOnly(collection: "customers", id: "c1") == nil)
        #expect(try await reader.backend.dataKey(subject: "c1") == nil)
        let erased = await #expect(throws: TutelaError.self) { try await reader.get(collection: "customers", id: "c1") }
        #expect(erased?.code == .subjectErased)
        #expect(try await reader.find(collection: "customers", field: "email", value: "alice@example.com").isEmpty)
        let interaction = await #expect(throws: TutelaError.self) {
            try await reader.get(collection: "interactions", id: "i1")
        }
        #expect(interaction?.code == .notFound)
        #expect(try await reader.get(collection: "customers", id: "c2") == customers[1])
    }

    @Test("a batch with one failing record writes nothing", arguments: backends)
    func atomicBatch(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await store.put([SampleRecords.customer("c1", email: "alice@example.com")])
        _ = try await store.erase(subject: "c1", at: 1)
        let batch = [
            SampleRecords.customer("c2", email: "bob@example.com"),
            SampleRecords.customer("c1", email: "alice@example.com"),
        ]
        await #expect(throws: TutelaError.self) { try await store.put(batch) }
        #expect(try await store.backend.count(collection: "customers") == 0)
        #expect(try await store.backend.dataKeys(subjects: ["c2"]).isEmpty)
    }

    @Test(
        "a write larger than one sealed batch is streamed: keys made once per subject, progress reported, all read back",
        arguments: backends
    )
    func streamedWrite(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await store.put([SampleRecords.customer("c1", email: "alice@example.com")])
        // Three batches' worth, each batch with interactions of the same 20 customers, one of
        // whom (c1) already has a data key.
        let count = EncryptedStore.streamedBatchSize * 3 - 7
        let records = (0..<count).map { SampleRecords.interaction(String(format: "i%05d", $0), of: "c\($0 % 20 + 1)") }
        let reports = Mutex<[Int]>([])
        try await store.put(records) { done in reports.withLock { $0.append(done) } }

        let progress = reports.withLock { $0 }
        #expect(progress.count == 3)
        #expect(progress == progress.sorted() && progress.last == count)
        #expect(try await store.backend.count(collection: "interactions") == count)
        #expect(try await store.backend.dataKeyCountsByVersion().values.reduce(0, +) == 20)
        let page = try await store.page(collection: "interactions", after: nil, limit: count + 1)
        #expect(page == records)
    }

    @Test(
        "a value with nothing to match by (a phone without digits, a blank e-mail) is not indexed, and a lookup by one is refused",
        arguments: backends
    )
    func unindexableValues(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await store.put([
            SampleRecords.customer("c1", email: "one@example.com", phone: "n/a"),
            SampleRecords.customer("c2", email: "   ", phone: "unknown"),
            SampleRecords.customer("c3", email: "three@example.com", phone: "+"),
            SampleRecords.customer("c4", email: "four@example.com", phone: "+1 555 000 4444"),
        ])
        // Each of these normalized to the same empty value, and found c1, c2 and c3 alike.
        for (field, value, reason) in [
            ("phone", "-", "it has no digits"), ("phone", "+", "it has no digits"),
            ("phone", "none", "it has no digits"),
            ("email", "", "it is empty or white space"), ("email", " \t", "it is empty or white space"),
        ] {
            let error = await #expect(throws: TutelaError.self, "\(field)=\(value)") {
                try await store.find(collection: "customers", field: field, value: value)
            }
            #expect(error?.code == .invalidInput, "\(field)=\(value)")
            #expect(error?.message.hasSuffix(reason) == true, "\(error?.message ?? "")")
        }
        #expect(try await store.find(collection: "customers", field: "phone", value: "15550004444").isEmpty)
        #expect(
            try await store.find(collection: "customers", field: "phone", value: "+15550004444").map(\.id) == ["c4"]
        )
        #expect(
            try await store.find(collection: "customers", field: "email", value: "ONE@example.com").map(\.id) == ["c1"]
        )
        // Only the values with something to match by have index entries.
        for (subject, lookups) in [("c1", 1), ("c2", 0), ("c3", 1), ("c4", 2)] {
            #expect(try await store.erase(subject: subject, at: 0).lookupsRemoved == lookups, "\(subject)")
        }
    }

    @Test("a lookup finds by a field's normalized value and refuses a field without an index", arguments: backends)
    func lookupFields(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await store.put([SampleRecords.customer("c1", email: "Alice@Example.com")])
        let found = try await store.find(collection: "customers", field: "email", value: " alice@example.COM ")
        #expect(found.map(\.id) == ["c1"])
        for field in ["full_name", "no_such_field"] {
            let error = await #expect(throws: TutelaError.self) {
                try await store.find(collection: "customers", field: field, value: "Alice Example")
            }
            #expect(error?.code == .invalidInput && error?.message.contains("has no lookup index") == true)
        }
    }

    @Test(
        "a streamed write that fails in a later batch leaves nothing of the earlier ones",
        arguments: backends
    )
    func streamedWriteAtomicity(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await store.put([SampleRecords.customer("gone", email: "gone@example.com")])
        _ = try await store.erase(subject: "gone", at: 1)
        let size = EncryptedStore.streamedBatchSize
        var records = (0..<(size * 3)).map { SampleRecords.interaction(String(format: "i%05d", $0), of: "c\($0)") }
        // The database refuses the third batch (an erased subject's record)...
        records[size * 2 + 5] = SampleRecords.interaction("late", of: "gone")
        let erased = await #expect(throws: TutelaError.self) { try await store.put(records) }
        #expect(erased?.code == .subjectErased)
        // ... and the sealing of the third batch fails in another (a collection the schema lacks).
        records[size * 2 + 5] = Record(collection: "nowhere", id: "x", subject: "c1", fields: [:])
        let unknown = await #expect(throws: TutelaError.self) { try await store.put(records) }
        #expect(unknown?.code == .notFound && unknown?.message.contains("unknown collection 'nowhere'") == true)
        #expect(try await store.backend.count(collection: "interactions") == 0)
        #expect(try await store.backend.dataKeyCountsByVersion().values.reduce(0, +) == 0)
    }

    @Test(
        "a batch written in chunks replaces stored records and repeated ids, leaving only the last version's index entries",
        arguments: backends
    )
    func chunkedReplacements(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let ids = (0..<100).map { String(format: "c%03d", $0) }
        try await store.put(ids.map { SampleRecords.customer($0, email: "old.\($0)@example.com") })
        // 101 records, so chunks of several sizes: every other one replaces a stored record,
        // the rest are new, and c050 comes twice, inside the first chunk.
        var batch = ids.enumerated().map { index, id in
            index.isMultiple(of: 2)
                ? SampleRecords.customer(id, email: "new.\(id)@example.com")
                : SampleRecords.customer("n" + id.dropFirst(), email: "n\(id)@example.com")
        }
        batch.insert(SampleRecords.customer("c050", email: "first.c050@example.com"), at: 10)
        try await store.put(batch)

        #expect(try await store.backend.count(collection: "customers") == 150)
        for id in ["c000", "c002", "c064", "c098"] {
            #expect(
                try await store.get(collection: "customers", id: id).fields["email"] == .string("new.\(id)@example.com")
            )
            #expect(
                try await store.find(collection: "customers", field: "email", value: "old.\(id)@example.com").isEmpty
            )
            let found = try await store.find(collection: "customers", field: "email", value: "new.\(id)@example.com")
            #expect(found.map(\.id) == [id])
        }
        for id in ["c001", "c099"] {
            #expect(
                try await store.get(collection: "customers", id: id).fields["email"] == .string("old.\(id)@example.com")
            )
            let found = try await store.find(
                collection: "customers",
                field: "email",
                value: "nc\(id.dropFirst())@example.com"
            )
            #expect(found.map(\.id) == ["n" + id.dropFirst()])
        }
        #expect(
            try await store.get(collection: "customers", id: "c050").fields["email"] == .string("new.c050@example.com")
        )
        #expect(try await store.find(collection: "customers", field: "email", value: "first.c050@example.com").isEmpty)
    }

    @Test(
        "an erased subject among many new ones is named, and none of their keys or records is kept",
        arguments: backends
    )
    func erasedSubjectInChunk(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await store.put([SampleRecords.customer("gone", email: "gone@example.com")])
        _ = try await store.erase(subject: "gone", at: 1)
        var batch = (0..<90).map { SampleRecords.customer(String(format: "c%03d", $0), email: "c\($0)@example.com") }
        batch.insert(SampleRecords.customer("gone", email: "gone@example.com"), at: 40)
        let error = await #expect(throws: TutelaError.self) { try await store.put(batch) }
        #expect(error?.code == .subjectErased && error?.message.contains("subject gone was erased") == true)
        #expect(try await store.backend.count(collection: "customers") == 0)
        #expect(try await store.backend.dataKeyCountsByVersion().values.reduce(0, +) == 0)
    }

    @Test("data keys are found for many subjects at once, and only for subjects that have one", arguments: backends)
    func dataKeysOfManySubjects(_ backend: String) async throws {
        let (store, directory) = try makeStore(backend)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // More subjects than one lookup statement takes, so that the last list is a short one.
        let known = (0..<300).map { String(format: "c%04d", $0) }
        try await store.put(known.map { SampleRecords.customer($0, email: "\($0)@example.com") })
        let keys = try await store.backend.dataKeys(subjects: Set(known + ["nobody", "c9999", ""]))
        #expect(keys.count == known.count)
        #expect(Set(keys.keys) == Set(known))
        for subject in ["c0000", "c0255", "c0256", "c0299"] {
            let (_, key) = try #require(try await store.backend.record(collection: "customers", id: subject))
            #expect(keys[subject] == key)
        }
        #expect(try await store.backend.dataKeys(subjects: ["nobody"]).isEmpty)
    }
}

extension SampleDataset {
    /// Sample customers as records.
    static func generateCustomers(count: Int) -> [TutelaCore.Record] {
        let dataset = generate(customers: count, interactionsPerCustomer: 0)
        guard let schema = try? TestEnvironment.schema(), let definition = try? schema.collection("customers"),
            let rows = try? RecordFileReader.read(Data(dataset.customersCSV.utf8), format: .csv)
        else { return [] }
        return rows.compactMap { try? definition.makeRecord(from: $0.values) }
    }
}

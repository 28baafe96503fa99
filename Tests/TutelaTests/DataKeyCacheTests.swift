import Foundation
import Testing
import TutelaCore
import TutelaTestSupport

@testable import KeyManagement
@testable import Store

@Suite("Unwrapped data keys kept for later reads")
struct DataKeyCacheTests {
    @Test("a kept key serves only the stored form and subject it was unwrapped for")
    func exactStoredForm() throws {
        let cipher = EnvelopeCipher(keyring: Keyring.generate(now: 0), tenant: "acme")
        let (_, wrapped) = try cipher.makeDataKey(forSubject: "c1")
        let first = try cipher.unwrap(wrapped, subject: "c1")
        let again = try cipher.unwrap(wrapped, subject: "c1")
        #expect(cipher.cachedDataKeyCount == 1)
        // The same key object: no second unwrap and key setup.
        #expect(again.cipher === first.cipher)

        // A stored form altered after the key was kept still fails, as it would unkept.
        var altered = wrapped.sealed
        altered[altered.count - 1] ^= 1
        let tampered = WrappedDataKey(id: wrapped.id, kekVersion: wrapped.kekVersion, sealed: altered)
        #expect(throws: TutelaError.self) { try cipher.unwrap(tampered, subject: "c1") }
        // The subject's key copied to another subject does not open there.
        #expect(throws: TutelaError.self) { try cipher.unwrap(wrapped, subject: "c2") }
        #expect(try cipher.unwrap(wrapped, subject: "c1").cipher === first.cipher)
        // A reader that found one of the subject's records takes the kept key by subject alone.
        #expect(cipher.keptDataKey(subject: "c1")?.cipher === first.cipher)
        #expect(cipher.keptDataKey(subject: "c2") == nil)
    }

    @Test("a cipher made to keep nothing unwraps every time")
    func keepsNothing() throws {
        let cipher = EnvelopeCipher(keyring: Keyring.generate(now: 0), tenant: "acme", cachedDataKeys: 0)
        let (_, wrapped) = try cipher.makeDataKey(forSubject: "c1")
        let first = try cipher.unwrap(wrapped, subject: "c1")
        #expect(try cipher.unwrap(wrapped, subject: "c1").cipher !== first.cipher)
        #expect(cipher.cachedDataKeyCount == 0)
    }

    @Test("when full, a key used since the last sweep stays and an unused one gives way")
    func leastRecentlyUsed() throws {
        let cipher = EnvelopeCipher(keyring: Keyring.generate(now: 0), tenant: "acme", cachedDataKeys: 0)
        let keys = try ["a", "b", "c"].map { subject in
            let (key, wrapped) = try cipher.makeDataKey(forSubject: subject)
            return (subject, key, wrapped)
        }
        let cache = DataKeyCache(capacity: 2, maxAge: .seconds(60))
        for (subject, key, wrapped) in keys.prefix(2) { cache.insert(subject: subject, wrapped: wrapped, key: key) }
        #expect(cache.key(subject: "a", wrapped: keys[0].2) != nil)
        cache.insert(subject: "c", wrapped: keys[2].2, key: keys[2].1)
        #expect(cache.count == 2)
        #expect(cache.key(subject: "a", wrapped: keys[0].2)?.id == keys[0].1.id)
        #expect(cache.key(subject: "b", wrapped: keys[1].2) == nil)
        #expect(cache.key(subject: "c", wrapped: keys[2].2)?.id == keys[2].1.id)

        cache.remove(subject: "a")
        #expect(cache.key(subject: "a", wrapped: keys[0].2) == nil)
        #expect(cache.count == 1)
    }

    @Test("a kept key expires after its age")
    func expiry() throws {
        let cipher = EnvelopeCipher(keyring: Keyring.generate(now: 0), tenant: "acme", cachedDataKeys: 0)
        let (key, wrapped) = try cipher.makeDataKey(forSubject: "c1")
        let cache = DataKeyCache(capacity: 4, maxAge: .zero)
        cache.insert(subject: "c1", wrapped: wrapped, key: key)
        #expect(cache.key(subject: "c1", wrapped: wrapped) == nil)
        #expect(cache.count == 0)
        cache.insert(subject: "c1", wrapped: wrapped, key: key)
        #expect(cache.key(subject: "c1") == nil)
        #expect(cache.count == 0)
    }

    private func makeStore() throws -> (EncryptedStore, String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tutela-keycache-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let store = EncryptedStore(
            backend: try SQLiteRecordStore(path: directory + "/store.sqlite"),
            schema: try TestEnvironment.schema(),
            keyring: Keyring.generate(now: 0),
            tenant: "acme"
        )
        return (store, directory)
    }

    @Test("a page scan keeps no keys of its own but reads every record; point reads keep theirs")
    func scansDoNotKeep() async throws {
        let (store, directory) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await store.put((1...3).map { SampleRecords.customer("c\($0)", email: "user\($0)@example.com") })
        try await store.put((1...6).map { SampleRecords.interaction("i\($0)", of: "c\($0 % 3 + 1)") })
        let interactions = try await store.page(collection: "interactions", after: nil, limit: 10)
        #expect(interactions.map(\.id) == ["i1", "i2", "i3", "i4", "i5", "i6"])
        #expect(interactions.allSatisfy { $0.fields["item_id"] == .string("p1") })
        #expect(store.cachedDataKeyCount == 0)

        _ = try await store.get(collection: "customers", id: "c2")
        #expect(store.cachedDataKeyCount == 1)
        // The page uses the kept key and still keeps no other.
        #expect(try await store.page(collection: "customers", after: nil, limit: 10).count == 3)
        #expect(store.cachedDataKeyCount == 1)
    }

    @Test("erasing a subject drops its kept key and the store's kept rows, and its records no longer open")
    func erasure() async throws {
        let (store, directory) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let backend = try #require(store.backend as? SQLiteRecordStore)
        try await store.put([
            SampleRecords.customer("c1", email: "alice@example.com"),
            SampleRecords.customer("c2", email: "bob@example.com"),
        ])
        _ = try await store.get(collection: "customers", id: "c1")
        _ = try await store.get(collection: "customers", id: "c2")
        #expect(store.cachedDataKeyCount == 2)
        #expect(backend.keptRecordCount == 2)

        _ = try await store.erase(subject: "c1", at: 1)
        #expect(store.cachedDataKeyCount == 1)
        // The sealed rows go with the erasure, not at the next read.
        #expect(backend.keptRecordCount == 0)
        await #expect(throws: TutelaError.self) { try await store.get(collection: "customers", id: "c1") }
        #expect(try await store.get(collection: "customers", id: "c2").fields["email"] == .string("bob@example.com"))
    }
}

import Crypto
import Foundation
import GRDB
import Governance
import KeyManagement
import Synchronization
import Testing
import TutelaCore
import TutelaTestSupport

@Suite("Key rotation, re-wrapping and destruction")
struct KeyRotationTests {
    @Test("rewrap moves every key it can open, names the subjects of altered keys, and keeps their version")
    func rewrapAroundAlteredKeys() async throws {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        let (tutela, _) = try await environment.startWithSample(customers: 30)
        let database = try DatabaseQueue(path: environment.configuration.databasePath)
        try await database.write { db in
            try db.execute(
                sql: """
                    UPDATE data_keys SET wrapped = substr(wrapped, 1, 20) || x'00' || substr(wrapped, 22)
                    WHERE subject IN ('c000007', 'c000021')
                    """
            )
        }
        #expect(try await tutela.rotateKey(now: 2) == 2)
        let error = await #expect(throws: TutelaError.self) { try await tutela.rewrapAll(batchSize: 8) }
        #expect(error?.code == .authenticationFailed)
        #expect(error?.message.contains("re-wrapped 28 data keys; 2 failed authentication") == true)
        #expect(error?.message.contains("subjects 'c000007', 'c000021'") == true)
        #expect(try await tutela.keyStatus().map(\.dataKeys) == [2, 28])
        // Version 1 still wraps them, so it cannot be destroyed; erasing those customers frees it.
        await #expect(throws: TutelaError.self) { try await tutela.destroyKeyVersion(1) }
        for subject in ["c000007", "c000021"] { _ = try await tutela.erase(subject: subject, now: 3) }
        #expect(try await tutela.rewrapAll() == 0)
        try await tutela.destroyKeyVersion(1)
        let reopened = try await Tutela.open(environment.configuration)
        #expect(try await reopened.record(collection: "customers", id: "c000008").id == "c000008")
    }

    @Test("rotation never breaks reads, and rewrap moves every data key while reads go on")
    func rotateAndRewrapUnderReads() async throws {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        let (tutela, _) = try await environment.startWithSample(customers: 120)
        let expected = try await tutela.record(collection: "customers", id: "c000042")

        #expect(try await tutela.rotateKey(now: 2) == 2)
        // The instance opened before the rotation still reads, and so does a fresh one.
        #expect(try await tutela.record(collection: "customers", id: "c000042") == expected)
        let reopened = try await Tutela.open(environment.configuration)
        #expect(try await reopened.record(collection: "customers", id: "c000042") == expected)

        let stop = Mutex(false)
        let readers = Task {
            var reads = 0
            while !stop.withLock({ $0 }) {
                let id = "c" + String(format: "%06d", 1 + reads % 120)
                let record = try await reopened.record(collection: "customers", id: id)
                #expect(record.id == id)
                reads += 1
            }
            return reads
        }
        var reports: [(Int, Int)] = []
        let count = try await reopened.rewrapAll(batchSize: 16) { done, total in reports.append((done, total)) }
        stop.withLock { $0 = true }
        let reads = try await readers.value
        #expect(reads > 0)
        #expect(count == 120)
        #expect(reports.first.map { $0 == (0, 120) } == true)
        #expect(reports.last.map { $0 == (120, 120) } == true)
        let status = try await reopened.keyStatus()
        #expect(status.map(\.dataKeys) == [0, 120])
        #expect(status.map(\.state) == ["decrypt-only", "active"])
        #expect(
            try await Tutela.open(environment.configuration).record(collection: "customers", id: "c000042") == expected
        )
    }

    struct SimulatedCrash: Error {}

    @Test("a rewrap stopped after one batch resumes where it stopped")
    func crashDuringRewrapThenResume() async throws {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        let (tutela, _) = try await environment.startWithSample(customers: 50)
        try await tutela.rotateKey(now: 2)
        await #expect(throws: SimulatedCrash.self) {
            try await tutela.rewrapAll(batchSize: 10) { done, _ in
                if done >= 10 { throw SimulatedCrash() }
            }
        }
        // Exactly the committed batch moved; everything is still readable.
        #expect(try await tutela.keyStatus().map(\.dataKeys) == [40, 10])
        let reopened = try await Tutela.open(environment.configuration)
        for number in 1...50 {
            _ = try await reopened.record(collection: "customers", id: "c" + String(format: "%06d", number))
        }
        #expect(try await reopened.rewrapAll(batchSize: 10) == 40)
        #expect(try await reopened.keyStatus().map(\.dataKeys) == [0, 50])
    }

    @Test("a version is destroyed only when nothing is wrapped under it, and a disabled version blocks reads")
    func destroyAndDisable() async throws {
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        let (tutela, _) = try await environment.startWithSample(customers: 10)
        let refusedActive = await #expect(throws: TutelaError.self) { try await tutela.destroyKeyVersion(1) }
        #expect(refusedActive?.code == .invalidState)
        try await tutela.rotateKey(now: 2)
        let refused = await #expect(throws: TutelaError.self) { try await tutela.destroyKeyVersion(1) }
        #expect(refused?.message.contains("still wraps 10 data keys") == true)

        // A key kept unwrapped from a read does not outlive the disabling of its version, once
        // the keyring is reloaded (as the gateway does before every request).
        _ = try await tutela.record(collection: "customers", id: "c000001")
        try await tutela.changeKey(version: 1, .disable)
        #expect(try await tutela.reloadKeyringIfChanged()?.get() == 2)
        let keptBlocked = await #expect(throws: TutelaError.self) {
            try await tutela.record(collection: "customers", id: "c000001")
        }
        #expect(keptBlocked?.code == .keyDisabled)
        let disabled = try await Tutela.open(environment.configuration)
        let blocked = await #expect(throws: TutelaError.self) {
            try await disabled.record(collection: "customers", id: "c000001")
        }
        #expect(blocked?.code == .keyDisabled)
        try await tutela.changeKey(version: 1, .enable)

        try await tutela.rewrapAll()
        try await tutela.destroyKeyVersion(1)
        let after = try await Tutela.open(environment.configuration)
        _ = try await after.record(collection: "customers", id: "c000001")
        #expect(try await after.keyStatus().map(\.state) == ["destroyed", "active"])
    }
}

@Suite("Opening a data directory")
struct OpeningTests {
    @Test("init refuses to overwrite, and open explains what is missing or wrong")
    func openErrors() async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let notInitialized = await #expect(throws: TutelaError.self) {
            try await Tutela.open(environment.configuration)
        }
        #expect(notInitialized?.message.contains("tutela init") == true)
        _ = try await environment.start()
        let again = await #expect(throws: TutelaError.self) {
            try await Tutela.initialize(environment.configuration, now: 0)
        }
        #expect(again?.code == .alreadyExists)

        var wrongKey = environment.configuration
        wrongKey.environment["TUTELA_MASTER_KEY"] = TestEnvironment.encodedMasterKey(.init(size: .bits256))
        let wrong = await #expect(throws: TutelaError.self) { try await Tutela.open(wrongKey) }
        #expect(wrong?.code == .masterKeyWrong)

        let other = try TestEnvironment()
        defer { other.remove() }
        _ = try await other.start()
        var mismatched = environment.configuration
        mismatched.keysDirectory = other.configuration.keysDirectory
        let mismatch = await #expect(throws: TutelaError.self) { try await Tutela.open(mismatched) }
        #expect(mismatch?.message.contains("another keyring") == true)
    }

    /// A schema whose collection `c` has a field `kind` declared as `spec`, on line 10, and
    /// with `keyFrom` a `key_from` on line 7 and a required string field `kind2`.
    private func valuesSchema(_ spec: String, keyFrom: String? = nil) -> String {
        let keyLine = keyFrom.map { "    key_from: \($0)\n" } ?? ""
        let more = keyFrom == nil ? "" : "      kind2: { type: string, class: public, required: true }\n"
        return
            "version: 1\nclasses:\n  public: { encrypted: false }\ncollections:\n  c:\n    key: id\n\(keyLine)    subject: id\n    fields:\n      id: { type: string, class: public, required: true }\n      kind: \(spec)\n\(more)"
    }

    @Test("a schema that does not parse or validate is refused with file and line")
    func badSchema() async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let policies = environment.root + "/policies"
        try FileManager.default.createDirectory(atPath: policies, withIntermediateDirectories: true)
        var configuration = environment.configuration
        configuration.policiesDirectory = policies
        let cases: [(String, String)] = [
            ("version: 1\nclasses: [unclosed\n", "schema.yaml: line"),
            (
                "version: 1\nclasses:\n  pii.email: { encrypted: false }\ncollections: {}\n",
                "schema.yaml:3: class 'pii.email' holds personal data"
            ),
            (
                "version: 1\nclasses:\n  public: { encrypted: false }\ncollections:\n  c:\n    key: id\n    subject: id\n    fields:\n      id: { type: strng, class: public, required: true }\n",
                "schema.yaml:9: unknown type 'strng'"
            ),
            (
                "version: 1\nclasses:\n  public: { encrypted: false }\ncollections:\n  c:\n    key: id\n    subject: id\n    fields:\n      id: { type: string, class: public, required: true }\n      \(String(repeating: "x", count: 300)): { type: string, class: public }\n",
                "schema.yaml:10: field name '\(String(repeating: "x", count: 300))' must be 1 to 64"
            ),
            (
                valuesSchema("{ type: int, class: public, values: [a] }"),
                "schema.yaml:10: only string fields can have 'values'"
            ),
            (
                valuesSchema("{ type: string, class: public, values: [] }"),
                "schema.yaml:10: 'values' of 'c.kind' must list 1 to 256"
            ),
            (valuesSchema("{ type: string, class: public, values: [a, b, a] }"), "'a' is listed twice in 'c.kind'"),
            (
                valuesSchema("{ type: string, class: public, values: [\"\"] }"),
                "a value of 'c.kind' must be 1 to 64 bytes"
            ),
            (valuesSchema("{ type: string, class: public, values: view }"), "schema.yaml:10"),
            (
                valuesSchema("{ type: string, class: public, min: 1 }"),
                "schema.yaml:10: only int and double fields can have 'min' and 'max'"
            ),
            (valuesSchema("{ type: int, class: public, min: 5, max: 1 }"), "'min' of 'c.kind' is above its 'max'"),
            (valuesSchema("{ type: double, class: public, max: .nan }"), "'max' of 'c.kind' must be a finite number"),
            (valuesSchema("{ type: double, class: public, min: one }"), "'min' of 'c.kind' must be a finite number"),
            (
                valuesSchema("{ type: string, class: public, required: true }", keyFrom: "[kind]"),
                "schema.yaml:7: 'key_from' of 'c' must list two or more distinct fields"
            ),
            (
                valuesSchema("{ type: string, class: public, required: true }", keyFrom: "[kind, nope]"),
                "'key_from' of 'c': 'nope' is not a field other than the key"
            ),
            (
                valuesSchema("{ type: string, class: public }", keyFrom: "[kind, kind2]"),
                "'key_from' of 'c': 'kind' must be a required string stored in the clear"
            ),
        ]
        for (text, expected) in cases {
            try text.write(toFile: policies + "/schema.yaml", atomically: true, encoding: .utf8)
            let error = await #expect(throws: TutelaError.self) { try await Tutela.initialize(configuration, now: 0) }
            #expect(error?.message.contains(expected) == true, "\(error?.message ?? "no error")")
            #expect(!FileManager.default.fileExists(atPath: configuration.keyringPath))
        }
    }
}

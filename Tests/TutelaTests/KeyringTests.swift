import Crypto
import Foundation
import KeyManagement
import Testing
import TutelaCore
import TutelaTestSupport

@Suite("Keyring and master key")
struct KeyringTests {
    private func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tutela-keys-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test("a created keyring loads back with the same versions and secrets")
    func roundTrip() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let provider = FileMasterKeyProvider(path: directory + "/master.key")
        _ = try provider.create()
        let attributes = try FileManager.default.attributesOfItem(atPath: provider.path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let file = KeyringFile(path: directory + "/keyring.json", masterKeyProvider: provider)
        let keyring = Keyring.generate(now: 5)
        try file.create(keyring)
        let loaded = try file.load()
        #expect(loaded.id == keyring.id)
        #expect(loaded.activeVersion == 1)
        for purpose in KeyPurpose.allCases {
            #expect(loaded.secret(purpose) == keyring.secret(purpose))
        }
        #expect(try loaded.key(version: 1) == keyring.key(version: 1))
    }

    @Test("a wrong master key and a damaged keyring give different errors")
    func wrongKeyAndCorruption() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let right = EnvironmentMasterKeyProvider(
            environment: ["TUTELA_MASTER_KEY": TestEnvironment.encodedMasterKey(SymmetricKey(size: .bits256))]
        )
        let path = directory + "/keyring.json"
        try KeyringFile(path: path, masterKeyProvider: right).create(Keyring.generate(now: 0))

        let wrong = EnvironmentMasterKeyProvider(
            environment: ["TUTELA_MASTER_KEY": TestEnvironment.encodedMasterKey(SymmetricKey(size: .bits256))]
        )
        let wrongError = #expect(throws: TutelaError.self) {
            try KeyringFile(path: path, masterKeyProvider: wrong).load()
        }
        #expect(wrongError?.code == .masterKeyWrong)

        let original = try String(contentsOfFile: path, encoding: .utf8)
        try original.replacingOccurrences(of: "\"active\"", with: "\"disabled\"").write(
            toFile: path,
            atomically: true,
            encoding: .utf8
        )
        let tampered = #expect(throws: TutelaError.self) {
            try KeyringFile(path: path, masterKeyProvider: right).load()
        }
        #expect(tampered?.code == .keyringCorrupted)

        try "{ not json".write(toFile: path, atomically: true, encoding: .utf8)
        let garbage = #expect(throws: TutelaError.self) { try KeyringFile(path: path, masterKeyProvider: right).load() }
        #expect(garbage?.code == .keyringCorrupted)
    }

    @Test("a missing, malformed or world-readable master key is refused")
    func masterKeyProblems() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let missing = #expect(throws: TutelaError.self) {
            try FileMasterKeyProvider(path: directory + "/absent.key").masterKey()
        }
        #expect(missing?.code == .masterKeyMissing)

        let malformed = #expect(throws: TutelaError.self) {
            try EnvironmentMasterKeyProvider(environment: ["TUTELA_MASTER_KEY": "tutela-mk1:c2hvcnQ="]).masterKey()
        }
        #expect(malformed?.code == .masterKeyMissing)

        let provider = FileMasterKeyProvider(path: directory + "/master.key")
        _ = try provider.create()
        chmod(provider.path, 0o644)
        let readable = #expect(throws: TutelaError.self) { try provider.masterKey() }
        #expect(readable?.message.contains("chmod 600") == true)
        #expect(throws: TutelaError.self) { try provider.create() }
    }

    @Test("key version lifecycle follows the state machine")
    func lifecycle() throws {
        var keyring = Keyring.generate(now: 0)
        #expect(throws: TutelaError.self) { try keyring.apply(.disable, toVersion: 1) }
        #expect(throws: TutelaError.self) { try keyring.apply(.destroy, toVersion: 1) }
        #expect(try keyring.rotate(now: 1) == 2)
        #expect(keyring.activeVersion == 2)
        #expect(keyring.versions.map(\.state) == [.decryptOnly, .active])
        try keyring.apply(.disable, toVersion: 1)
        let disabled = #expect(throws: TutelaError.self) { try keyring.key(version: 1) }
        #expect(disabled?.code == .keyDisabled)
        try keyring.apply(.enable, toVersion: 1)
        _ = try keyring.key(version: 1)
        try keyring.apply(.destroy, toVersion: 1)
        let destroyed = #expect(throws: TutelaError.self) { try keyring.key(version: 1) }
        #expect(destroyed?.code == .keyDestroyed)
        #expect(throws: TutelaError.self) { try keyring.apply(.enable, toVersion: 1) }
    }

    @Test("a destroyed version keeps no key material in the file")
    func destroyedMaterialLeavesFile() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let provider = EnvironmentMasterKeyProvider(
            environment: ["TUTELA_MASTER_KEY": TestEnvironment.encodedMasterKey(SymmetricKey(size: .bits256))]
        )
        let file = KeyringFile(path: directory + "/keyring.json", masterKeyProvider: provider)
        try file.create(Keyring.generate(now: 0))
        try file.update { keyring in
            try keyring.rotate(now: 1)
            try keyring.apply(.destroy, toVersion: 1)
        }
        let data = try #require(FileManager.default.contents(atPath: file.path))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let versions = try #require(json["versions"] as? [[String: Any]])
        #expect(versions.count == 2)
        #expect(versions[0]["material"] == nil)
        #expect(versions[0]["state"] as? String == "destroyed")
        #expect(try file.load().versions.map(\.state) == [.destroyed, .active])
    }
}

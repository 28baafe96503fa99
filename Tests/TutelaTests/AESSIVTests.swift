import Foundation
import KeyManagement
import Testing
import TutelaCore
import TutelaTestSupport

@Suite("AES-SIV (RFC 5297) through OpenSSL")
struct AESSIVTests {
    @Test("RFC 5297 A.1: deterministic authenticated encryption")
    func rfc5297A1() throws {
        let siv = try AESSIV(key: hex("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"))
        let associated = hex("101112131415161718191a1b1c1d1e1f2021222324252627")
        let plaintext = hex("112233445566778899aabbccddee")
        let sealed = try siv.seal(plaintext, authenticating: [associated])
        #expect(Hex.encode(sealed) == "85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c")
        #expect(try siv.open(sealed, authenticating: [associated]) == plaintext)
    }

    @Test("RFC 5297 A.2: several associated data components and a nonce")
    func rfc5297A2() throws {
        let siv = try AESSIV(key: hex("7f7e7d7c7b7a79787776757473727170404142434445464748494a4b4c4d4e4f"))
        let components = [
            hex("00112233445566778899aabbccddeeffdeaddadadeaddadaffeeddccbbaa99887766554433221100"),
            hex("102030405060708090a0"),
            hex("09f911029d74e35bd84156c5635688c0"),
        ]
        let plaintext = hex(
            "7468697320697320736f6d6520706c61696e7465787420746f20656e6372797074207573696e67205349562d414553"
        )
        let sealed = try siv.seal(plaintext, authenticating: components)
        #expect(
            Hex.encode(sealed)
                == "7bdb6e3b432667eb06f4d14bff2fbd0fcb900f2fddbe404326601965c889bf17dba77ceb094fa663b7a3f748ba8af829ea64ad544a272e9c485b62a3fd5c0d"
        )
        #expect(try siv.open(sealed, authenticating: components) == plaintext)
    }

    struct Vector: Decodable, Sendable, CustomTestStringConvertible {
        var key: String
        var ad: [String]
        var plaintext: String
        var output: String
        var testDescription: String { "\(plaintext.count / 2)-byte plaintext, \(ad.count) AD" }
    }

    static let vectors: [Vector] = {
        struct File: Decodable { var vectors: [Vector] }
        let path = TestEnvironment.repositoryRoot + "/Tests/TutelaTests/Vectors/aes-256-siv.json"
        guard let data = FileManager.default.contents(atPath: path),
            let file = try? JSONDecoder().decode(File.self, from: data)
        else { return [] }
        return file.vectors
    }()

    @Test("AES-256-SIV interoperates with another OpenSSL-backed implementation")
    func aes256Interop() throws {
        try #require(Self.vectors.count == 4)
        for vector in Self.vectors {
            let siv = try AESSIV(key: hex(vector.key))
            let components = vector.ad.map(hex)
            let sealed = try siv.seal(hex(vector.plaintext), authenticating: components)
            #expect(Hex.encode(sealed) == vector.output, "\(vector.testDescription)")
            #expect(try siv.open(hex(vector.output), authenticating: components) == hex(vector.plaintext))
        }
    }

    @Test("a flipped bit, other associated data or a short input fail authentication")
    func tampering() throws {
        let siv = try AESSIV(key: [UInt8](repeating: 9, count: 64))
        let sealed = try siv.seal(Array("alice@example.com".utf8), authenticating: [[1]])
        for index in [0, 15, 16, sealed.count - 1] {
            var altered = sealed
            altered[index] ^= 0x01
            #expect(throws: TutelaError.self) { try siv.open(altered, authenticating: [[1]]) }
        }
        #expect(throws: TutelaError.self) { try siv.open(sealed, authenticating: [[2]]) }
        #expect(throws: TutelaError.self) { try siv.open(Array(sealed.prefix(10)), authenticating: [[1]]) }
    }

    @Test("key sizes other than 32, 48 or 64 bytes and an empty plaintext are refused")
    func keySizes() throws {
        #expect(throws: TutelaError.self) { try AESSIV(key: [UInt8](repeating: 0, count: 64)).seal([]) }
        #expect(throws: TutelaError.self) { try AESSIV(key: [UInt8](repeating: 0, count: 16)) }
        #expect(throws: TutelaError.self) { try AESSIV(key: [UInt8](repeating: 0, count: 65)) }
    }
}

func hex(_ text: String) -> [UInt8] {
    Hex.decode(text) ?? []
}

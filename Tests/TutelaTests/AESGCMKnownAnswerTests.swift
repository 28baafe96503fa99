import Crypto
import Foundation
import KeyManagement
import Testing
import TutelaCore

/// The AES-256-GCM cases of the GCM specification (McGrew and Viega, test cases 13, 14 and 16),
/// run through swift-crypto (used for key wrapping) and through the OpenSSL-backed `AES256GCM`
/// (used for field values).
@Suite("AES-256-GCM known answers")
struct AESGCMKnownAnswerTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var key: String
        var nonce: String
        var plaintext: String
        var aad: String
        var ciphertext: String
        var tag: String
        var testDescription: String { name }
    }

    static let cases = [
        Case(
            name: "test case 13",
            key: String(repeating: "00", count: 32),
            nonce: String(repeating: "00", count: 12),
            plaintext: "",
            aad: "",
            ciphertext: "",
            tag: "530f8afbc74536b9a963b4f1c4cb738b"
        ),
        Case(
            name: "test case 14",
            key: String(repeating: "00", count: 32),
            nonce: String(repeating: "00", count: 12),
            plaintext: String(repeating: "00", count: 16),
            aad: "",
            ciphertext: "cea7403d4d606b6e074ec5d3baf39d18",
            tag: "d0d1c8a799996bf0265b98b5d48ab919"
        ),
        Case(
            name: "test case 16",
            key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            nonce: "cafebabefacedbaddecaf888",
            plaintext:
                "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            ciphertext:
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            tag: "76fc6ece0f4e1768cddf8853bb2d551b"
        ),
    ]

    @Test(arguments: cases)
    func knownAnswer(_ vector: Case) throws {
        let key = SymmetricKey(data: hex(vector.key))
        let box = try AES.GCM.seal(
            hex(vector.plaintext),
            using: key,
            nonce: AES.GCM.Nonce(data: hex(vector.nonce)),
            authenticating: hex(vector.aad)
        )
        #expect(Hex.encode(box.ciphertext) == vector.ciphertext)
        #expect(Hex.encode(box.tag) == vector.tag)
        let opened = try AES.GCM.open(box, using: key, authenticating: hex(vector.aad))
        #expect(Hex.encode(opened) == vector.plaintext)
    }

    @Test("OpenSSL-backed AES256GCM gives the specification's answers", arguments: cases)
    func openSSLKnownAnswer(_ vector: Case) throws {
        let cipher = try hex(vector.key).withUnsafeBytes { try AES256GCM(key: $0) }
        var sealed: [UInt8] = []
        try cipher.seal(
            hex(vector.plaintext),
            authenticating: hex(vector.aad),
            nonce: hex(vector.nonce),
            appendingTo: &sealed
        )
        #expect(Hex.encode(sealed) == vector.nonce + vector.ciphertext + vector.tag)
        #expect(Hex.encode(try cipher.open(sealed[...], authenticating: hex(vector.aad))) == vector.plaintext)
    }

    @Test("AES256GCM and swift-crypto open each other's output; any altered byte fails")
    func crossCheck() throws {
        let key = SymmetricKey(size: .bits256)
        let cipher = try key.withUnsafeBytes { try AES256GCM(key: $0) }
        let aad = Array("tutela.field.v1|acme|customers|c1|email".utf8)
        for length in [0, 1, 15, 16, 17, 100] {
            let plaintext = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            var ours: [UInt8] = [0xAA]
            try cipher.seal(plaintext, authenticating: aad, appendingTo: &ours)
            #expect(ours.first == 0xAA)
            let box = try AES.GCM.SealedBox(combined: ours.dropFirst())
            #expect(Array(try AES.GCM.open(box, using: key, authenticating: aad)) == plaintext)
            let theirs = try AES.GCM.seal(plaintext, using: key, authenticating: aad)
            #expect(try cipher.open(Array(try #require(theirs.combined))[...], authenticating: aad) == plaintext)
            for index in [1, 12, ours.count - 1] {
                var altered = ours
                altered[index] ^= 0x04
                #expect(throws: TutelaError.self) { try cipher.open(altered.dropFirst(), authenticating: aad) }
            }
            #expect(throws: TutelaError.self) { try cipher.open(ours.dropFirst(), authenticating: aad + [0]) }
        }
    }

    @Test(
        "one key used by more callers at once than it keeps contexts for: every output opens, here and in swift-crypto"
    )
    func concurrentCallers() async throws {
        let key = SymmetricKey(size: .bits256)
        let cipher = try key.withUnsafeBytes { try AES256GCM(key: $0) }
        let aad = Array("tutela.field.v1|acme|customers|c1|email".utf8)
        // Sixteen tasks interleaving seals and opens: contexts are keyed, reused and dropped
        // (four are kept idle) while others are in use.
        let sealed = try await withThrowingTaskGroup(of: [([UInt8], [UInt8])].self) { group in
            for task in 0..<16 {
                group.addTask {
                    try (0..<200).map { round in
                        let plaintext = Array("task \(task) round \(round)".utf8)
                        var output: [UInt8] = []
                        try cipher.seal(plaintext, authenticating: aad, appendingTo: &output)
                        #expect(try cipher.open(output[...], authenticating: aad) == plaintext)
                        return (plaintext, output)
                    }
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(sealed.count == 3_200)
        #expect(Set(sealed.map { Array($0.1.prefix(AES256GCM.nonceLength)) }).count == 3_200)
        for (plaintext, output) in sealed {
            let box = try AES.GCM.SealedBox(combined: output)
            #expect(Array(try AES.GCM.open(box, using: key, authenticating: aad)) == plaintext)
        }
    }
}

import Crypto
import Foundation
import Testing
import TutelaCore

/// The AES-256-GCM cases of the GCM specification (McGrew and Viega, test cases 13, 14 and 16),
/// run through the same library calls the envelope cipher makes.
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
}

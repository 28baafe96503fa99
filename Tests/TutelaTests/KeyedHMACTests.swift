import Crypto
import Foundation
import Governance
import KeyManagement
import Testing
import TutelaCore

@Suite("Keyed HMAC-SHA256")
struct KeyedHMACTests {
    @Test("RFC 4231 test cases 1, 2, 3 and 6 (a key longer than a block)")
    func rfc4231() {
        let cases: [(key: [UInt8], message: [UInt8], code: String)] = [
            (
                [UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
            ),
            (
                Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
            ),
            (
                [UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50),
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"
            ),
            (
                [UInt8](repeating: 0xaa, count: 131),
                Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
            ),
        ]
        for (key, message, code) in cases {
            let hmac = KeyedHMAC(key: SymmetricKey(data: key))
            #expect(Hex.encode(message.withUnsafeBytes { hmac.authenticationCode($0) }) == code)
        }
    }

    @Test("the same codes as swift-crypto's HMAC for random keys and messages, the key state reused")
    func agreesWithSwiftCrypto() {
        var random = SplitMix64(seed: 4231)
        for round in 0..<200 {
            let key = (0..<(round % 3 == 0 ? 100 : 32)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let hmac = KeyedHMAC(key: SymmetricKey(data: key))
            for length in [0, 1, 55, 56, 64, 65, round] {
                let message = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                let expected = Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
                #expect(message.withUnsafeBytes { hmac.authenticationCode($0) } == expected)
            }
            let text = "user\(round)@example.com"
            #expect(
                hmac.authenticationCode(text)
                    == Array(HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: SymmetricKey(data: key)))
            )
        }
    }
}

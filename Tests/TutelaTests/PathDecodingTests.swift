import Foundation
import Testing

@testable import Gateway

@Suite("Percent-decoding of path parameters")
struct PathDecodingTests {
    @Test(
        "escapes decode to their bytes, a malformed escape or bytes that are not UTF-8 give nil",
        arguments: [
            ("c000001", "c000001"), ("c%20%C3%A9", "c é"), ("a+b", "a+b"), ("%41%62%63", "Abc"),
            ("%e2%82%AC", "€"), ("%25", "%"), ("%2541", "%41"), ("%00", "\u{0}"),
        ]
    )
    func decodes(encoded: String, decoded: String) {
        #expect(GatewayHandlers.percentDecoded(encoded) == decoded)
    }

    @Test("malformed", arguments: ["%", "c%", "c%4", "%zz", "%4g", "%FF", "%C3", "%C3%28", "%ED%A0%80"])
    func malformed(encoded: String) {
        #expect(GatewayHandlers.percentDecoded(encoded) == nil)
    }

    /// Foundation on Linux puts U+FFFD in place of some bytes that are not UTF-8 (`%C3` alone),
    /// and gives nil for others (`%FF`); the decoder refuses them all, so that no id is looked up
    /// as something other than what was sent.
    @Test("agrees with Foundation's removingPercentEncoding on random segments, but never substitutes U+FFFD")
    func agreesWithFoundation() {
        let pieces = [
            "a", "Z", "0", "+", "-", "é", "%", "%4", "%41", "%c3", "%A9", "%e2%82", "%ac", "%ZZ", "%FF", "%00",
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            let segment = (0..<Int.random(in: 0...6, using: &generator)).map { _ in
                pieces.randomElement(using: &generator)!
            }.joined()
            let foundation = segment.removingPercentEncoding
            if let decoded = GatewayHandlers.percentDecoded(segment) {
                #expect(decoded == foundation, "\(segment)")
            } else {
                #expect(foundation == nil || foundation!.contains("\u{FFFD}"), "\(segment)")
            }
        }
    }
}

import Testing

@testable import TutelaCore

@Suite("Blind-index normalization")
struct LookupNormalizationTests {
    @Test("e-mail addresses, phone numbers and exact values normalize as documented")
    func documented() {
        #expect(LookupNormalization.email.normalize("  Alice.Smith@Example.COM\t") == "alice.smith@example.com")
        #expect(LookupNormalization.email.normalize("Zoë@Example.com") == "zoë@example.com")
        #expect(LookupNormalization.phone.normalize(" +1 (555) 010-2030 ") == "+15550102030")
        #expect(LookupNormalization.phone.normalize("0049 30 1234+5") == "00493012345")
        #expect(LookupNormalization.exact.normalize("\r\n Ab C \n") == "Ab C")
        for normalization in [LookupNormalization.exact, .email, .phone] {
            #expect(normalization.normalize("") == "")
            #expect(normalization.normalize(" \t\r\n") == "")
        }
    }

    @Test("the ASCII fast path gives what the character-by-character path gives")
    func fastPathAgrees() {
        // Every printable ASCII character and the white space around it, in many arrangements.
        let alphabet = Array(
            " \t\n\r\u{0B}\u{0C}+-()@._" + "AZaz09Mm" + (32...126).map { String(UnicodeScalar($0)) }.joined()
        )
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let length = Int.random(in: 0...24, using: &generator)
            let text = String((0..<length).map { _ in alphabet.randomElement(using: &generator) ?? " " })
            for normalization in [LookupNormalization.exact, .email, .phone] {
                let fast = normalization.normalizeASCII(text)
                #expect(fast != nil)
                #expect(fast == normalization.normalizeCharacters(text), "\(normalization) of \(text.debugDescription)")
            }
        }
        #expect(LookupNormalization.email.normalizeASCII("Zoë@example.com") == nil)
    }
}

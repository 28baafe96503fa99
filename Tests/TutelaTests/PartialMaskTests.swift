import Testing

@testable import Masking

@Suite("Partial masking")
struct PartialMaskTests {
    @Test("the printable-ASCII path masks exactly as the character path does")
    func fastPathAgrees() {
        let printable = (0x20...0x7e).map { Character(UnicodeScalar(UInt8($0))) }
        for _ in 0..<3000 {
            let text = String((0..<Int.random(in: 0...20)).map { _ in printable.randomElement() ?? "a" })
            let first = Int.random(in: 0...6)
            let last = Int.random(in: 0...6)
            let fast = Masker.partialPrintableASCII(text, keepFirst: first, keepLast: last)
            #expect(fast != nil)
            #expect(
                fast == Masker.partialCharacters(text, keepFirst: first, keepLast: last),
                "\(text), \(first), \(last)"
            )
        }
    }

    @Test("text that is not printable ASCII takes the character path, one star per character")
    func otherText() {
        #expect(Masker.partialPrintableASCII("Zoë", keepFirst: 1, keepLast: 0) == nil)
        #expect(Masker.partialPrintableASCII("a\r\nb", keepFirst: 1, keepLast: 1) == nil)
        #expect(Masker.partial("Zoë Ünal", keepFirst: 1, keepLast: 2) == "Z*****al")
        #expect(Masker.partial("a\r\nb", keepFirst: 0, keepLast: 1) == "**b")
        #expect(Masker.partial("+1 555 0100", keepFirst: 0, keepLast: 4) == "*******0100")
    }
}

import KeyManagement
import Masking
import Policy
import Testing
import TutelaCore

@Suite("Masking operators")
struct MaskingTests {
    let masker = Masker(keyring: Keyring.generate(now: 0), tenant: "acme")

    private func mask(
        _ value: FieldValue,
        _ maskOperator: MaskOperator,
        purpose: String = "analytics",
        subject: String = "c1"
    )
        throws -> FieldValue?
    {
        try masker.mask(
            value,
            with: maskOperator,
            fieldClass: "pii.email",
            domain: "customers.email",
            subject: subject,
            purpose: purpose
        )
    }

    struct Vector: Sendable, CustomTestStringConvertible {
        var value: FieldValue
        var maskOperator: MaskOperator
        var expected: FieldValue?
        var testDescription: String { "\(maskOperator) of \(value)" }
    }

    static let vectors: [Vector] = [
        Vector(value: .string("alice@example.com"), maskOperator: .clear, expected: .string("alice@example.com")),
        Vector(value: .string("alice@example.com"), maskOperator: .redact, expected: .string("[REDACTED]")),
        Vector(value: .string("alice@example.com"), maskOperator: .classToken, expected: .string("[pii.email]")),
        Vector(value: .string("alice@example.com"), maskOperator: .suppress, expected: nil),
        Vector(
            value: .string("+1 555 350 2373"),
            maskOperator: .partial(keepFirst: 0, keepLast: 4),
            expected: .string("***********2373")
        ),
        Vector(value: .string("Alice"), maskOperator: .partial(keepFirst: 1, keepLast: 0), expected: .string("A****")),
        Vector(value: .string("abc"), maskOperator: .partial(keepFirst: 2, keepLast: 2), expected: .string("***")),
        Vector(value: .int(34), maskOperator: .generalize(.band(width: 10)), expected: .string("30-39")),
        Vector(value: .int(40), maskOperator: .generalize(.band(width: 20)), expected: .string("40-59")),
        Vector(value: .string("18196"), maskOperator: .generalize(.prefix(length: 2)), expected: .string("18*")),
        Vector(
            value: .date(days: CalendarDate.days(year: 1991, month: 8, day: 18) ?? 0),
            maskOperator: .generalize(.month),
            expected: .string("1991-08")
        ),
        Vector(
            value: .date(days: CalendarDate.days(year: 1991, month: 8, day: 18) ?? 0),
            maskOperator: .generalize(.year),
            expected: .string("1991")
        ),
        Vector(value: .string("Alice"), maskOperator: .generalize(.year), expected: .string("[REDACTED]")),
        Vector(value: .string("Alice"), maskOperator: .dateShift(maxDays: 10), expected: .string("[REDACTED]")),
        // Bands of negative numbers, and bands at the edges of the number types: their bounds
        // used to overflow and stop the process.
        Vector(value: .int(-5), maskOperator: .generalize(.band(width: 10)), expected: .string("-10--1")),
        Vector(value: .int(-20), maskOperator: .generalize(.band(width: 10)), expected: .string("-20--11")),
        Vector(
            value: .int(Int64.max),
            maskOperator: .generalize(.band(width: 10)),
            expected: .string("9223372036854775800-9223372036854775807")
        ),
        Vector(
            value: .int(Int64.min),
            maskOperator: .generalize(.band(width: 10)),
            expected: .string("-9223372036854775808--9223372036854775801")
        ),
        Vector(
            value: .int(Int64.min + 1),
            maskOperator: .generalize(.band(width: 1_000_000_000)),
            expected: .string("-9223372036854775808--9223372036000000001")
        ),
        Vector(value: .double(34.5), maskOperator: .generalize(.band(width: 10)), expected: .string("30-39")),
        Vector(value: .double(1e300), maskOperator: .generalize(.band(width: 10)), expected: .string("[REDACTED]")),
        Vector(value: .double(-1e19), maskOperator: .generalize(.band(width: 10)), expected: .string("[REDACTED]")),
    ]

    @Test("fixed vectors", arguments: vectors)
    func vector(_ vector: Vector) throws {
        #expect(try mask(vector.value, vector.maskOperator) == vector.expected)
    }

    @Test("pseudonyms are stable within a purpose, differ across purposes and do not contain the value")
    func pseudonyms() throws {
        let value = FieldValue.string("c000042")
        let first = try #require(try mask(value, .pseudonym))
        #expect(try mask(value, .pseudonym) == first)
        #expect(try mask(value, .pseudonym, purpose: "partner_exchange") != first)
        #expect(try mask(.string("c000043"), .pseudonym) != first)
        // The pseudonym is hex under a fresh key: it contains "42" by chance about one time in
        // ten, but the whole value (seven given hex digits) about once in 10^7 runs.
        #expect(!first.displayText.contains("c000042"))
        #expect(first.displayText.hasPrefix("ps_"))
    }

    @Test("a reversible token turns back only through the tokenizer of the same keyring")
    func reversibleToken() throws {
        let keyring = Keyring.generate(now: 0)
        let masker = Masker(keyring: keyring, tenant: "acme")
        let token = try #require(
            try masker.mask(
                .string("alice@example.com"),
                with: .reversibleToken,
                fieldClass: "pii.email",
                domain: "customers.email",
                subject: "c1",
                purpose: "support"
            )
        )
        let tokenizer = DeterministicTokenizer(keyring: keyring, tenant: "acme")
        #expect(try tokenizer.reidentify(token.displayText, domain: "customers.email") == "alice@example.com")
        #expect(throws: TutelaError.self) {
            try DeterministicTokenizer(keyring: Keyring.generate(now: 0), tenant: "acme").reidentify(
                token.displayText,
                domain: "customers.email"
            )
        }
    }

    @Test("date shifts are consistent per customer and bounded")
    func dateShift() throws {
        let date = FieldValue.date(days: 10_000)
        let shifted = try #require(try mask(date, .dateShift(maxDays: 30), subject: "c1"))
        #expect(
            try mask(.date(days: 10_010), .dateShift(maxDays: 30), subject: "c1")
                == {
                    if case .date(let days) = shifted { return .date(days: days + 10) }
                    return nil
                }()
        )
        var offsets: Set<Int32> = []
        for number in 0..<50 {
            guard case .date(let days)? = try mask(date, .dateShift(maxDays: 30), subject: "c\(number)") else {
                Issue.record("not a date")
                return
            }
            #expect(abs(days - 10_000) <= 30)
            offsets.insert(days)
        }
        #expect(offsets.count > 10)
    }

    @Test("a date or time the shift would carry out of its type's range is redacted, any other shifted")
    func dateShiftAtTheEdges() throws {
        let widest = MaskSyntax.maximumArgument
        var signs: Set<Bool> = []
        for number in 0..<20 {
            let subject = "c\(number)"
            // The subject's shift, read off a date far from either edge.
            guard case .date(let moved)? = try mask(.date(days: 0), .dateShift(maxDays: widest), subject: subject)
            else {
                Issue.record("a date in the middle of the range was not shifted")
                return
            }
            let days = Int64(moved)
            #expect(days.magnitude <= UInt64(widest))
            if days != 0 { signs.insert(days > 0) }
            let milliseconds = days * 86_400_000
            let expectations: [(FieldValue, FieldValue)] = [
                (.date(days: .max), days > 0 ? .string("[REDACTED]") : .date(days: Int32(Int64(Int32.max) + days))),
                (.date(days: .min), days < 0 ? .string("[REDACTED]") : .date(days: Int32(Int64(Int32.min) + days))),
                (
                    .timestamp(milliseconds: .max),
                    days > 0 ? .string("[REDACTED]") : .timestamp(milliseconds: .max + milliseconds)
                ),
                (
                    .timestamp(milliseconds: .min),
                    days < 0 ? .string("[REDACTED]") : .timestamp(milliseconds: .min + milliseconds)
                ),
            ]
            for (value, expected) in expectations {
                #expect(try mask(value, .dateShift(maxDays: widest), subject: subject) == expected, "\(value)")
            }
        }
        // Both directions were met: each edge was both redacted and shifted inward.
        #expect(signs == [true, false])
    }
}

import TutelaCore

/// A labelled set of customer-service messages that the project generates, for measuring the
/// detector's precision and recall per type.
///
/// Messages mix personal data in varied formats with
/// look-alikes (order numbers, prices, versions, invalid card numbers and IBANs, dates without a
/// birth context) that must not be flagged.
public struct PIIEvaluationSet: Sendable {
    /// One message with the spans (UTF-8 offsets) that hold personal data.
    public struct Message: Sendable {
        /// The text.
        public var text: String
        /// Labelled spans.
        public var spans: [(type: PIIType, start: Int, end: Int)]
    }

    /// The messages.
    public let messages: [Message]

    /// Precision, recall and F1 of one type.
    public struct Score: Sendable {
        /// Correct findings / all findings.
        public var precision: Double
        /// Correct findings / all labelled spans.
        public var recall: Double
        /// Harmonic mean of the two.
        public var f1: Double
    }

    /// Generates a set.
    public static func generate(count: Int, seed: UInt64 = 1) -> PIIEvaluationSet {
        var random = Random(state: seed)
        var messages: [Message] = []
        for _ in 0..<count {
            var builder = Builder()
            let templates = 15
            switch random.next(templates) {
            case 0:
                builder.text("Hi, this is ")
                builder.span(.personName, random.pick(firstNames) + " " + random.pick(lastNames))
                builder.text(". Please send the invoice to ")
                builder.span(.email, random.email())
                builder.text(", thanks!")
            case 1:
                builder.text("My card ")
                builder.span(.paymentCard, random.card())
                builder.text(" was charged twice for order \(100_000 + random.next(900_000)), call me on ")
                builder.span(.phone, random.phone())
                builder.text(".")
            case 2:
                builder.text("I moved to ")
                builder.span(
                    .streetAddress,
                    "\(1 + random.next(300)) \(random.pick(streetNames)) \(random.pick(streetSuffixes))"
                )
                builder.text(", \(random.pick(cities)). Please update my address.")
            case 3:
                builder.text("Where is my order \(random.next(99_999))? I was born on ")
                builder.span(.dateOfBirth, random.date())
                builder.text(" if you need to verify.")
            case 4:
                builder.text("Please refund to ")
                builder.span(.iban, random.iban())
                builder.text(", the total was \(random.next(900)).\(10 + random.next(89)) EUR.")
            case 5:
                builder.text("My SSN is ")
                builder.span(.usSSN, random.ssn())
                builder.text(" for the tax form.")
            case 6:
                builder.text("The app logs me out; my IP is ")
                builder.span(.ipAddress, random.ipv4())
                builder.text(" and I run version \(random.next(9)).\(random.next(9)).\(random.next(9)).")
            case 7:
                builder.text("Dear Mr. ")
                builder.span(.personName, random.pick(lastNames))
                builder.text(", your parcel \(random.next(99_999_999)) ships on \(random.date()).")
            case 8:
                builder.text("Thanks for the quick help with the return of item \(random.next(9999)).")
            case 9:
                builder.text("Card \(random.invalidCard()) was declined, the bank says.")
            case 10:
                builder.text("Mobile: ")
                builder.span(.phone, random.phone())
                builder.text(", e-mail ")
                builder.span(.email, random.email())
            case 12:
                // Hard: a name with no cue before it.
                builder.span(.personName, random.pick(firstNames) + " " + random.pick(lastNames))
                builder.text(" called yesterday about the refund.")
            case 13:
                // Hard: a national number in parentheses, with a cue.
                builder.text("You can reach me at ")
                builder.span(
                    .phone,
                    "(\(200 + random.next(700))) \(200 + random.next(700))-\(1000 + random.next(9000))"
                )
                builder.text(" after six.")
            case 14:
                // Hard: an address spelled out to dodge filters.
                builder.text("write to ")
                builder.span(.email, "\(random.pick(firstNames).lowercased()) at example dot com")
                builder.text(" instead")
            default:
                builder.text(
                    "We meet at \(random.next(12)):\(10 + random.next(49)) in room \(random.next(500)); bring receipt \(random.next(99_999))."
                )
            }
            messages.append(builder.message)
        }
        return PIIEvaluationSet(messages: messages)
    }

    /// Scores a detector: a finding is correct when it has the labelled type and overlaps the
    /// labelled span.
    public func score(_ detector: PIIDetector) -> [PIIType: Score] {
        var truePositives: [PIIType: Int] = [:]
        var found: [PIIType: Int] = [:]
        var labelled: [PIIType: Int] = [:]
        for message in messages {
            let findings = detector.findings(in: message.text)
            for span in message.spans { labelled[span.type, default: 0] += 1 }
            for finding in findings {
                found[finding.type, default: 0] += 1
                if message.spans.contains(where: {
                    $0.type == finding.type && $0.start < finding.end && finding.start < $0.end
                }) {
                    truePositives[finding.type, default: 0] += 1
                }
            }
        }
        var scores: [PIIType: Score] = [:]
        for type in PIIType.allCases where (labelled[type] ?? 0) + (found[type] ?? 0) > 0 {
            let hits = Double(truePositives[type] ?? 0)
            let precision = found[type].map { $0 > 0 ? hits / Double($0) : 0 } ?? 0
            let recall = labelled[type].map { $0 > 0 ? hits / Double($0) : 0 } ?? 0
            let f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
            scores[type] = Score(precision: precision, recall: recall, f1: f1)
        }
        return scores
    }

    private static let firstNames = [
        "Ada", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas",
    ]
    private static let lastNames = [
        "Almeida", "Bauer", "Costa", "Dubois", "Eriksen", "Okafor", "Tanaka", "Weber", "Rossi",
    ]
    private static let streetNames = ["Maple", "Harbour", "Oak", "Linden", "Baker", "King", "Station"]
    private static let streetSuffixes = ["Street", "Road", "Avenue", "Lane", "Drive", "St", "Way"]
    private static let cities = ["Springfield", "Rivertown", "Lakeside", "Hillview"]

    private struct Builder {
        var bytes: [UInt8] = []
        var spans: [(type: PIIType, start: Int, end: Int)] = []

        mutating func text(_ text: String) { bytes.append(contentsOf: text.utf8) }

        mutating func span(_ type: PIIType, _ text: String) {
            let start = bytes.count
            bytes.append(contentsOf: text.utf8)
            spans.append((type, start, bytes.count))
        }

        var message: Message { Message(text: String(decoding: bytes, as: UTF8.self), spans: spans) }
    }

    private struct Random {
        var state: UInt64

        mutating func next(_ bound: Int) -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(max(1, bound)))
        }

        mutating func pick(_ items: [String]) -> String { items[next(items.count)] }

        mutating func digits(_ count: Int) -> [Int] { (0..<count).map { _ in next(10) } }

        mutating func email() -> String {
            "\(pick(PIIEvaluationSet.firstNames).lowercased()).\(pick(PIIEvaluationSet.lastNames).lowercased())\(next(100))@"
                + pick(["example.com", "mail.example.org", "post.example.net"])
        }

        mutating func phone() -> String {
            switch next(3) {
            case 0: return "+1 555 \(100 + next(900)) \(1000 + next(9000))"
            case 1: return "+44 20 \(1000 + next(9000)) \(1000 + next(9000))"
            default: return "+49 30 \(10_000_000 + next(89_999_999))"
            }
        }

        mutating func card() -> String {
            var body = [4] + digits(14)
            let check = (10 - Self.luhnSum(body + [0]) % 10) % 10
            body.append(check)
            let text = body.map(String.init).joined()
            let groups = stride(from: 0, to: 16, by: 4).map { start in
                String(
                    text[
                        text.index(text.startIndex, offsetBy: start)..<text.index(text.startIndex, offsetBy: start + 4)
                    ]
                )
            }
            return groups.joined(separator: next(2) == 0 ? " " : "-")
        }

        mutating func invalidCard() -> String {
            var body = [5] + digits(14)
            let check = (10 - Self.luhnSum(body + [0]) % 10) % 10
            body.append((check + 1 + next(8)) % 10)
            return body.map(String.init).joined()
        }

        static func luhnSum(_ digits: [Int]) -> Int {
            var sum = 0
            for (position, digit) in digits.reversed().enumerated() {
                var value = digit
                if position % 2 == 1 {
                    value *= 2
                    if value > 9 { value -= 9 }
                }
                sum += value
            }
            return sum
        }

        mutating func iban() -> String {
            let bban = digits(18).map(String.init).joined()
            // Check digits: 98 - (BBAN + "DE00" as digits) mod 97.
            var remainder = 0
            for byte in (bban + "131400").utf8 { remainder = (remainder * 10 + Int(byte) - 48) % 97 }
            let check = 98 - remainder
            let text = "DE" + (check < 10 ? "0" : "") + String(check) + bban
            guard next(2) == 0 else { return text }
            return stride(from: 0, to: text.count, by: 4).map { start in
                let from = text.index(text.startIndex, offsetBy: start)
                return String(text[from..<text.index(from, offsetBy: min(4, text.count - start))])
            }.joined(separator: " ")
        }

        mutating func ssn() -> String {
            "\(100 + next(565))-\(10 + next(89))-\(1000 + next(8999))"
        }

        mutating func ipv4() -> String {
            "\(1 + next(223)).\(next(256)).\(next(256)).\(1 + next(254))"
        }

        mutating func date() -> String {
            let year = 1950 + next(55)
            let month = 1 + next(12)
            let day = 1 + next(28)
            let pad = { (value: Int) in value < 10 ? "0\(value)" : "\(value)" }
            return next(2) == 0 ? "\(year)-\(pad(month))-\(pad(day))" : "\(pad(day))/\(pad(month))/\(year)"
        }
    }
}

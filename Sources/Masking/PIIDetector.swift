import TutelaCore

/// A kind of personal data found in free text.
public enum PIIType: String, Sendable, CaseIterable, Codable {
    case email
    case phone
    case paymentCard = "payment_card"
    case iban
    case usSSN = "us_ssn"
    case ipAddress = "ip_address"
    case dateOfBirth = "date_of_birth"
    case streetAddress = "street_address"
    case personName = "person_name"
}

/// One finding: what, where (UTF-8 byte offsets), how sure, and why.
public struct PIIFinding: Sendable, Hashable {
    /// The kind of data.
    public let type: PIIType
    /// Start offset in the text's UTF-8 bytes.
    public let start: Int
    /// End offset (exclusive) in the text's UTF-8 bytes.
    public let end: Int
    /// Confidence from 0 to 1.
    public let score: Double
    /// Why it was flagged, such as "passes the Luhn check".
    public let reason: String
}

/// Finds personal data in free text with checks rather than bare patterns: Luhn for card
/// numbers, mod-97 for IBANs, the issuing rules for US social security numbers, context words
/// for dates of birth and person names.
///
/// It scans UTF-8 bytes once per detector, without regular expressions, so it is fast enough for
/// every message and model input. Findings below `threshold` or whose text is on the allow list
/// are dropped; overlapping findings keep the higher score.
public struct PIIDetector: Sendable {
    /// The minimum score reported.
    public var threshold: Double
    /// Exact texts never reported (a support address, the company's own phone number).
    public var allowList: Set<String>

    /// Creates a detector.
    public init(threshold: Double = 0.5, allowList: Set<String> = []) {
        self.threshold = threshold
        self.allowList = allowList
    }

    /// The findings in a text, in order of position.
    public func findings(in text: String) -> [PIIFinding] {
        let bytes = Array(text.utf8)
        var scanner = Scanner(bytes: bytes)
        scanner.scan()
        var kept: [PIIFinding] = []
        for finding in scanner.found.sorted(by: { ($0.start, -$0.score) < ($1.start, -$1.score) })
        where finding.score >= threshold {
            if !allowList.isEmpty,
                allowList.contains(String(decoding: bytes[finding.start..<finding.end], as: UTF8.self))
            {
                continue
            }
            if let last = kept.last, finding.start < last.end {
                if finding.score > last.score { kept[kept.count - 1] = finding }
                continue
            }
            kept.append(finding)
        }
        return kept
    }

    /// The text with every finding replaced by `[TYPE]`.
    public func scrub(_ text: String) -> String {
        let found = findings(in: text)
        guard !found.isEmpty else { return text }
        let bytes = Array(text.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var position = 0
        for finding in found {
            output.append(contentsOf: bytes[position..<finding.start])
            output.append(contentsOf: "[\(finding.type.rawValue.uppercased())]".utf8)
            position = finding.end
        }
        output.append(contentsOf: bytes[position...])
        return String(decoding: output, as: UTF8.self)
    }
}

/// The byte-level scanners behind `PIIDetector`.
private struct Scanner {
    let bytes: [UInt8]
    let lowered: [UInt8]
    var found: [PIIFinding] = []

    init(bytes: [UInt8]) {
        self.bytes = bytes
        self.lowered = bytes.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
    }

    mutating func scan() {
        scanEmails()
        scanDigitRuns()
        scanIBANs()
        scanIPv6()
        scanStreetAddresses()
        scanNames()
    }

    // MARK: Character classes

    static func isDigit(_ byte: UInt8) -> Bool { byte >= 48 && byte <= 57 }
    static func isUpper(_ byte: UInt8) -> Bool { byte >= 65 && byte <= 90 }
    static func isLower(_ byte: UInt8) -> Bool { byte >= 97 && byte <= 122 }
    static func isLetter(_ byte: UInt8) -> Bool { isUpper(byte) || isLower(byte) || byte >= 0xC0 }
    static func isAlphanumeric(_ byte: UInt8) -> Bool { isLetter(byte) || isDigit(byte) }
    static func isHex(_ byte: UInt8) -> Bool { isDigit(byte) || (byte | 0x20 >= 97 && byte | 0x20 <= 102) }

    func isBoundary(_ index: Int) -> Bool {
        index < 0 || index >= bytes.count || !Self.isAlphanumeric(bytes[index])
    }

    /// Whether any of `words` appears in the `window` bytes before `index` (lowercased).
    func hasContext(before index: Int, window: Int, words: [String]) -> Bool {
        let start = max(0, index - window)
        guard start < index else { return false }
        let slice = lowered[start..<index]
        return words.contains { word in
            let needle = Array(word.utf8)
            guard needle.count <= slice.count else { return false }
            var position = slice.startIndex
            while position + needle.count <= slice.endIndex {
                if slice[position..<(position + needle.count)].elementsEqual(needle) { return true }
                position += 1
            }
            return false
        }
    }

    mutating func add(_ type: PIIType, _ start: Int, _ end: Int, _ score: Double, _ reason: String) {
        found.append(PIIFinding(type: type, start: start, end: end, score: min(1, score), reason: reason))
    }

    // MARK: Emails

    mutating func scanEmails() {
        for at in bytes.indices where bytes[at] == UInt8(ascii: "@") {
            var start = at
            while start > 0, Self.isAlphanumeric(bytes[start - 1]) || "._%+-".utf8.contains(bytes[start - 1]) {
                start -= 1
            }
            while start < at, bytes[start] == UInt8(ascii: ".") { start += 1 }
            var end = at + 1
            var lastDot = -1
            while end < bytes.count,
                Self.isAlphanumeric(bytes[end]) || bytes[end] == UInt8(ascii: ".") || bytes[end] == UInt8(ascii: "-")
            {
                if bytes[end] == UInt8(ascii: ".") { lastDot = end }
                end += 1
            }
            while end > at + 1, bytes[end - 1] == UInt8(ascii: ".") {
                end -= 1
                lastDot = bytes[at + 1..<end].lastIndex(of: UInt8(ascii: ".")) ?? -1
            }
            guard start < at, lastDot > at + 1, end - lastDot - 1 >= 2,
                bytes[(lastDot + 1)..<end].allSatisfy(Self.isLetter)
            else { continue }
            add(.email, start, end, 0.95, "local part, @ and a domain with a top-level name")
        }
    }

    // MARK: Numbers: cards, phones, SSNs, IPv4, dates

    /// Runs of digits joined by spaces, dashes, dots, slashes or parentheses, classified by shape.
    mutating func scanDigitRuns() {
        var index = 0
        while index < bytes.count {
            let startsRun =
                Self.isDigit(bytes[index])
                || (bytes[index] == UInt8(ascii: "+") && index + 1 < bytes.count
                    && Self.isDigit(bytes[index + 1]))
                || (bytes[index] == UInt8(ascii: "(") && index + 1 < bytes.count
                    && Self.isDigit(bytes[index + 1]))
            guard startsRun,
                isBoundary(index - 1) || bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "(")
            else {
                index += 1
                continue
            }
            var end = index + 1
            while end < bytes.count {
                let byte = bytes[end]
                if Self.isDigit(byte) || byte == UInt8(ascii: ")") {
                    end += 1
                } else if " -./(".utf8.contains(byte), end + 1 < bytes.count,
                    Self.isDigit(bytes[end + 1]) || (byte == UInt8(ascii: " ") && bytes[end + 1] == UInt8(ascii: "("))
                {
                    end += 1
                } else {
                    break
                }
            }
            classifyDigitRun(index, end)
            index = end
        }
    }

    mutating func classifyDigitRun(_ start: Int, _ end: Int) {
        let run = bytes[start..<end]
        // The digits after an IBAN's country code and check digits ("DE89 3704 ...") belong to
        // the IBAN scanner, whether or not its checksum holds.
        if start >= 5, bytes[start - 1] == UInt8(ascii: " "), Self.isUpper(bytes[start - 5]),
            Self.isUpper(bytes[start - 4]),
            Self.isDigit(bytes[start - 3]), Self.isDigit(bytes[start - 2]), isBoundary(start - 6)
        {
            return
        }
        let digits = run.filter(Self.isDigit)
        let separators = Set(run.filter { !Self.isDigit($0) })
        // IPv4: four dot-separated numbers up to 255.
        if separators == [UInt8(ascii: ".")] {
            let parts = run.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
            if parts.count == 4,
                parts.allSatisfy({
                    (1...3).contains($0.count) && (Int(String(decoding: $0, as: UTF8.self)) ?? 999) <= 255
                })
            {
                add(.ipAddress, start, end, 0.85, "four numbers from 0 to 255 joined by dots")
                return
            }
        }
        // Dates: YYYY-MM-DD, DD/MM/YYYY, MM/DD/YYYY, DD.MM.YYYY.
        if Self.date(run) != nil {
            let context = hasContext(
                before: start,
                window: 40,
                words: ["born", "birth", "dob", "d.o.b", "birthday", "geboren", "née"]
            )
            add(
                .dateOfBirth,
                start,
                end,
                context ? 0.9 : 0.3,
                context ? "a date after a birth context word" : "a date without context"
            )
            return
        }
        // US SSN: AAA-GG-SSSS with the issuing rules.
        if run.count == 11, separators == [UInt8(ascii: "-")], run[start + 3] == UInt8(ascii: "-"),
            run[start + 6] == UInt8(ascii: "-")
        {
            let area = Int(String(decoding: run[start..<(start + 3)], as: UTF8.self)) ?? 0
            let group = Int(String(decoding: run[(start + 4)..<(start + 6)], as: UTF8.self)) ?? 0
            let serial = Int(String(decoding: run[(start + 7)..<end], as: UTF8.self)) ?? 0
            if area != 0, area != 666, area < 900, group != 0, serial != 0 {
                let context = hasContext(
                    before: start,
                    window: 30,
                    words: ["ssn", "social security", "social-security"]
                )
                add(.usSSN, start, end, context ? 0.95 : 0.8, "AAA-GG-SSSS within the issuing rules")
                return
            }
        }
        // Payment cards: 13 to 19 digits passing the Luhn check.
        if (13...19).contains(digits.count), separators.isSubset(of: [UInt8(ascii: " "), UInt8(ascii: "-")]),
            run.first != UInt8(ascii: "+"), Self.luhn(digits)
        {
            add(.paymentCard, start, end, 0.95, "\(digits.count) digits passing the Luhn check")
            return
        }
        // Phone numbers: international with +, or 10 or more digits, 8 to 15 digits in all.
        guard (8...15).contains(digits.count), !separators.contains(UInt8(ascii: "/")) else { return }
        let context = hasContext(
            before: start,
            window: 30,
            words: ["call", "phone", "tel", "mobile", "cell", "reach me", "text me", "whatsapp"]
        )
        if run.first == UInt8(ascii: "+") {
            add(.phone, start, end, context ? 0.95 : 0.85, "an international number starting with +")
        } else if digits.count >= 10 {
            add(.phone, start, end, context ? 0.85 : 0.55, "ten or more digits in telephone grouping")
        } else if context {
            add(.phone, start, end, 0.7, "a number after a telephone context word")
        }
    }

    static func date(_ run: ArraySlice<UInt8>) -> Int32? {
        let text = String(decoding: run, as: UTF8.self)
        if run.count == 10, let days = CalendarDate.parse(Substring(text)) { return days }
        for separator in ["/", "."] {
            let parts = text.split(separator: Character(separator), omittingEmptySubsequences: false)
            guard parts.count == 3, parts[2].count == 4, let year = Int(parts[2]),
                let first = Int(parts[0]), let second = Int(parts[1]), parts[0].count <= 2, parts[1].count <= 2
            else { continue }
            if let days = CalendarDate.days(year: year, month: second, day: first) { return days }
            if let days = CalendarDate.days(year: year, month: first, day: second) { return days }
        }
        return nil
    }

    static func luhn(_ digits: [UInt8]) -> Bool {
        var sum = 0
        for (position, byte) in digits.reversed().enumerated() {
            var value = Int(byte - 48)
            if position % 2 == 1 {
                value *= 2
                if value > 9 { value -= 9 }
            }
            sum += value
        }
        return sum % 10 == 0
    }

    // MARK: IBAN

    mutating func scanIBANs() {
        var index = 0
        while index + 15 <= bytes.count {
            guard isBoundary(index - 1), Self.isUpper(bytes[index]), Self.isUpper(bytes[index + 1]),
                Self.isDigit(bytes[index + 2]), Self.isDigit(bytes[index + 3])
            else {
                index += 1
                continue
            }
            var characters: [UInt8] = []
            var end = index
            while end < bytes.count, characters.count < 34 {
                if Self.isDigit(bytes[end]) || Self.isUpper(bytes[end]) {
                    characters.append(bytes[end])
                    end += 1
                } else if bytes[end] == UInt8(ascii: " "), end + 1 < bytes.count,
                    Self.isDigit(bytes[end + 1]) || Self.isUpper(bytes[end + 1]), characters.count % 4 == 0
                {
                    end += 1
                } else {
                    break
                }
            }
            // Trim trailing characters until the checksum holds (a word may follow the number).
            while characters.count >= 15 {
                if Self.mod97(characters) == 1 {
                    var realEnd = index
                    var counted = 0
                    while counted < characters.count {
                        if bytes[realEnd] != UInt8(ascii: " ") { counted += 1 }
                        realEnd += 1
                    }
                    add(.iban, index, realEnd, 0.95, "country code, check digits and a valid mod-97 checksum")
                    break
                }
                characters.removeLast()
            }
            index = max(index + 1, end)
        }
    }

    static func mod97(_ characters: [UInt8]) -> Int {
        let rearranged = characters[4...] + characters[..<4]
        var remainder = 0
        for byte in rearranged {
            if isDigit(byte) {
                remainder = (remainder * 10 + Int(byte - 48)) % 97
            } else {
                remainder = (remainder * 100 + Int(byte - 55)) % 97
            }
        }
        return remainder
    }

    // MARK: IPv6

    mutating func scanIPv6() {
        var index = 0
        while index < bytes.count {
            guard isBoundary(index - 1), Self.isHex(bytes[index]) || bytes[index] == UInt8(ascii: ":") else {
                index += 1
                continue
            }
            var end = index
            var colons = 0
            while end < bytes.count, Self.isHex(bytes[end]) || bytes[end] == UInt8(ascii: ":") {
                if bytes[end] == UInt8(ascii: ":") { colons += 1 }
                end += 1
            }
            let groups = bytes[index..<end].split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: true)
            if colons >= 3, colons <= 7, groups.allSatisfy({ $0.count <= 4 }), groups.count >= 3,
                groups.contains(where: { $0.contains(where: Self.isDigit) }), isBoundary(end)
            {
                add(.ipAddress, index, end, 0.75, "hexadecimal groups joined by colons")
            }
            index = end + 1
        }
    }

    // MARK: Street addresses

    static let streetSuffixes: Set<String> = [
        "street", "st", "road", "rd", "avenue", "ave", "lane", "ln", "boulevard", "blvd", "drive", "dr", "way", "court",
        "ct", "place", "pl", "allee", "strasse", "straße", "platz", "weg",
    ]
    static let streetPrefixes: Set<String> = ["rue", "via", "calle", "avenida", "piazza", "chemin"]

    mutating func scanStreetAddresses() {
        let words = self.words()
        for (position, word) in words.enumerated() where word.isNumber && word.end - word.start <= 5 {
            // "221 Baker Street", "47 Oak Avenue"
            var cursor = position + 1
            var capitalized = 0
            while cursor < words.count, words[cursor].isCapitalized, capitalized < 4 {
                let lower = words[cursor].lowercased(in: lowered)
                if Self.streetSuffixes.contains(lower), capitalized > 0 {
                    add(.streetAddress, word.start, words[cursor].end, 0.85, "a house number, a name and a street word")
                    break
                }
                if Self.streetPrefixes.contains(lower), cursor + 1 < words.count,
                    words[cursor + 1].isCapitalized
                        || words[cursor + 1].lowercased(in: lowered) == "des"
                        || words[cursor + 1].lowercased(in: lowered) == "de"
                {
                    var last = cursor + 1
                    while last + 1 < words.count,
                        words[last + 1].isCapitalized
                            || ["des", "de", "la", "del"].contains(words[last + 1].lowercased(in: lowered)),
                        last - cursor < 4
                    {
                        last += 1
                    }
                    add(.streetAddress, word.start, words[last].end, 0.85, "a house number and a street word")
                    break
                }
                capitalized += 1
                cursor += 1
            }
        }
    }

    // MARK: Person names

    static let nameCues = [
        "my name is", "this is", "i am", "i'm", "name:", "dear", "mr.", "mrs.", "ms.", "dr.", "signed", "regards,",
    ]
    static let titles: Set<String> = ["mr", "mrs", "ms", "dr", "dear", "hi", "hello"]
    static let notNames: Set<String> = titles.union([
        "the", "a", "an", "your", "our", "my", "this", "that", "it", "i", "we", "support", "team", "customer", "order",
    ])

    mutating func scanNames() {
        let words = self.words()
        for (position, word) in words.enumerated() where word.isCapitalized {
            guard !Self.notNames.contains(word.lowercased(in: lowered)) else { continue }
            // Start at the first capitalized word of a run, titles aside ("Dear Mr. Tanaka").
            if position > 0, words[position - 1].isCapitalized,
                !Self.titles.contains(words[position - 1].lowercased(in: lowered))
            {
                continue
            }
            guard hasContext(before: word.start, window: 14, words: Self.nameCues) else { continue }
            var last = position
            while last + 1 < words.count, words[last + 1].isCapitalized, last - position < 2,
                words[last + 1].start - words[last].end == 1
            {
                last += 1
            }
            let score = last > position ? 0.85 : 0.6
            add(.personName, word.start, words[last].end, score, "capitalized words after a name cue")
        }
    }

    struct Word {
        let start: Int
        let end: Int
        let isCapitalized: Bool
        let isNumber: Bool

        func lowercased(in lowered: [UInt8]) -> String {
            String(decoding: lowered[start..<end], as: UTF8.self)
        }
    }

    func words() -> [Word] {
        var result: [Word] = []
        var index = 0
        while index < bytes.count {
            guard Self.isAlphanumeric(bytes[index]) else {
                index += 1
                continue
            }
            var end = index
            while end < bytes.count,
                Self.isAlphanumeric(bytes[end]) || bytes[end] == UInt8(ascii: "'") || bytes[end] == UInt8(ascii: "-")
            {
                end += 1
            }
            let isNumber = bytes[index..<end].allSatisfy(Self.isDigit)
            let isCapitalized =
                Self.isUpper(bytes[index]) && end - index >= 2 && bytes[(index + 1)..<end].contains(where: Self.isLower)
            result.append(Word(start: index, end: end, isCapitalized: isCapitalized, isNumber: isNumber))
            index = end
        }
        return result
    }
}

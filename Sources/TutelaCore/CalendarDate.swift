/// Conversions between proleptic Gregorian dates and day numbers, without Foundation's
/// calendar machinery (which is slow and locale-dependent).
public enum CalendarDate {
    /// Days since 1970-01-01 for a valid year, month and day, or nil for an impossible date.
    public static func days(year: Int, month: Int, day: Int) -> Int32? {
        guard (1...12).contains(month), (1...9999).contains(year) else { return nil }
        guard day >= 1, day <= daysInMonth(year: year, month: month) else { return nil }
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let shiftedMonth = month > 2 ? month - 3 : month + 9
        let dayOfYear = (153 * shiftedMonth + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return Int32(era * 146_097 + dayOfEra - 719_468)
    }

    /// The year, month and day of a day number.
    public static func components(days: Int32) -> (year: Int, month: Int, day: Int) {
        let z = Int(days) + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    /// Whether the year is a leap year.
    public static func isLeapYear(_ year: Int) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    /// The number of days in a month.
    public static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Parses `YYYY-MM-DD`.
    public static func parse(_ text: Substring) -> Int32? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            let year = decimal(parts[0]), let month = decimal(parts[1]), let day = decimal(parts[2])
        else { return nil }
        return days(year: year, month: month, day: day)
    }

    /// The milliseconds a timestamp may hold: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z,
    /// the years a date may have.
    public static let timestampRange: ClosedRange<Int64> = -62_135_596_800_000...253_402_300_799_999

    /// Parses an RFC 3339 timestamp (`2024-05-01T10:20:30Z`, optional fraction and offset) or a
    /// plain integer of Unix seconds, into milliseconds since the epoch; nil outside
    /// `timestampRange`, the years that format and read back as they were written.
    public static func parseTimestamp(_ text: Substring) -> Int64? {
        guard let milliseconds = parseAnyTimestamp(text), timestampRange.contains(milliseconds) else { return nil }
        return milliseconds
    }

    private static func parseAnyTimestamp(_ text: Substring) -> Int64? {
        if let seconds = Int64(text) {
            let (product, overflow) = seconds.multipliedReportingOverflow(by: 1000)
            return overflow ? nil : product
        }
        // RFC 3339 lets the 'T' and the 'Z' be written in lower case, and names a space as a
        // separator that applications may choose.
        guard text.count >= 20, let tIndex = text.firstIndex(where: { $0 == "T" || $0 == "t" || $0 == " " }),
            let days = parse(text[text.startIndex..<tIndex])
        else { return nil }
        var rest = text[text.index(after: tIndex)...]
        let clock = rest.prefix(8)
        let clockParts = clock.split(separator: ":", omittingEmptySubsequences: false)
        guard clock.count == 8, clockParts.count == 3,
            let hour = decimal(clockParts[0]), let minute = decimal(clockParts[1]),
            let second = decimal(clockParts[2]),
            (0...23).contains(hour), (0...59).contains(minute), (0...60).contains(second)
        else { return nil }
        rest = rest.dropFirst(8)
        var milliseconds = 0
        if rest.first == "." {
            rest = rest.dropFirst()
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty else { return nil }
            let padded = String((digits + "000").prefix(3))
            milliseconds = Int(padded) ?? 0
            rest = rest.dropFirst(digits.count)
        }
        var offsetSeconds = 0
        if rest == "Z" || rest == "z" {
            offsetSeconds = 0
        } else if let sign = rest.first, sign == "+" || sign == "-", rest.count == 6 {
            let offset = rest.dropFirst().split(separator: ":", omittingEmptySubsequences: false)
            guard offset.count == 2, let hours = decimal(offset[0]), let minutes = decimal(offset[1]),
                (0...23).contains(hours), (0...59).contains(minutes)
            else { return nil }
            offsetSeconds = (hours * 3600 + minutes * 60) * (sign == "-" ? -1 : 1)
        } else {
            return nil
        }
        let total = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second - offsetSeconds)
        return total * 1000 + Int64(milliseconds)
    }

    /// The value of a field written in ASCII digits only, as RFC 3339 writes every field of a
    /// date and a time; nil for anything else, such as a field with the sign that `Int(_:)`
    /// would take ("+1" as a month, "-0" as an hour).
    private static func decimal(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.utf8.allSatisfy(\.isASCIIDigit) else { return nil }
        return Int(text)
    }

    /// Formats a day number as `YYYY-MM-DD`.
    public static func format(days: Int32) -> String {
        let (year, month, day) = components(days: days)
        guard (0...9999).contains(year) else { return pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2) }
        // Written digit by digit into the string's storage: timestamps are formatted for every
        // record a response or an export carries.
        return String(unsafeUninitializedCapacity: 10) { buffer in
            writeDate(year, month, day, into: buffer)
            return 10
        }
    }

    /// Formats milliseconds since the epoch as an RFC 3339 UTC timestamp.
    public static func formatTimestamp(milliseconds: Int64) -> String {
        let (dayNumber, remainder) = milliseconds.quotientAndRemainder(dividingBy: 86_400_000)
        var days = dayNumber
        var millisecondsOfDay = remainder
        if millisecondsOfDay < 0 {
            days -= 1
            millisecondsOfDay += 86_400_000
        }
        let seconds = Int(millisecondsOfDay / 1000)
        let fraction = Int(millisecondsOfDay % 1000)
        let (year, month, day) = components(days: Int32(clamping: days))
        guard (0...9999).contains(year) else {
            var text = format(days: Int32(clamping: days)) + "T" + pad(seconds / 3600, 2) + ":"
            text += pad(seconds / 60 % 60, 2) + ":" + pad(seconds % 60, 2)
            if fraction != 0 { text += "." + pad(fraction, 3) }
            return text + "Z"
        }
        let length = fraction == 0 ? 20 : 24
        return String(unsafeUninitializedCapacity: length) { buffer in
            writeDate(year, month, day, into: buffer)
            buffer[10] = UInt8(ascii: "T")
            writeDigits(seconds / 3600, 2, into: buffer, at: 11)
            buffer[13] = UInt8(ascii: ":")
            writeDigits(seconds / 60 % 60, 2, into: buffer, at: 14)
            buffer[16] = UInt8(ascii: ":")
            writeDigits(seconds % 60, 2, into: buffer, at: 17)
            if fraction != 0 {
                buffer[19] = UInt8(ascii: ".")
                writeDigits(fraction, 3, into: buffer, at: 20)
            }
            buffer[length - 1] = UInt8(ascii: "Z")
            return length
        }
    }

    /// Writes `YYYY-MM-DD` (a year of 0 to 9999) at the start of `buffer`.
    private static func writeDate(_ year: Int, _ month: Int, _ day: Int, into buffer: UnsafeMutableBufferPointer<UInt8>)
    {
        writeDigits(year, 4, into: buffer, at: 0)
        buffer[4] = UInt8(ascii: "-")
        writeDigits(month, 2, into: buffer, at: 5)
        buffer[7] = UInt8(ascii: "-")
        writeDigits(day, 2, into: buffer, at: 8)
    }

    /// Writes the last `width` decimal digits of a non-negative value, zero-padded, at `start`.
    private static func writeDigits(
        _ value: Int,
        _ width: Int,
        into buffer: UnsafeMutableBufferPointer<UInt8>,
        at start: Int
    ) {
        var rest = value
        for position in stride(from: start + width - 1, through: start, by: -1) {
            buffer[position] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest % 10)
            rest /= 10
        }
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}

import Foundation
import Governance
import Testing
import TutelaCore

@Suite("Calendar dates")
struct CalendarDateTests {
    @Test("timestamps and dates format as Foundation's ISO 8601 formatter does (UTC), and parse back")
    func formatting() {
        let whole = ISO8601DateFormatter()
        whole.timeZone = TimeZone(identifier: "UTC")
        let fractional = ISO8601DateFormatter()
        fractional.timeZone = TimeZone(identifier: "UTC")
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var random = SplitMix64(seed: 3339)
        // 1600-01-01 to 9999-12-31, where Foundation's calendar is the proleptic Gregorian one.
        let low: Int64 = -11_676_096_000_000
        let high: Int64 = 253_402_300_799_999
        var samples: [Int64] = [0, -1, 86_399_999, 86_400_000, 951_782_400_000, 1_700_000_000_123, high]
        for _ in 0..<2000 {
            let value = low + Int64(random.next(below: Int(high - low)))
            samples.append(value)
            samples.append(value - value % 1000)
        }
        for milliseconds in samples {
            let date = Date(timeIntervalSince1970: Double(milliseconds) / 1000)
            let text = CalendarDate.formatTimestamp(milliseconds: milliseconds)
            let expected = milliseconds % 1000 == 0 ? whole.string(from: date) : fractional.string(from: date)
            #expect(text == expected)
            #expect(CalendarDate.parseTimestamp(Substring(text)) == milliseconds)
            let days = Int32((milliseconds - ((milliseconds % 86_400_000) + 86_400_000) % 86_400_000) / 86_400_000)
            #expect(CalendarDate.format(days: days) == String(expected.prefix(10)))
        }
        // A time outside the years a date may have is refused: one of 9223372036854775 Unix
        // seconds was stored, and read back as the year 5881580.
        for text in [
            "9223372036854775", "-9223372036854775", "253402300800", "-62135596801", "0001-01-01T00:00:00+00:01",
        ] {
            #expect(CalendarDate.parseTimestamp(Substring(text)) == nil, "\(text)")
        }
        for text in ["253402300799", "-62135596800", "9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z"] {
            let milliseconds = CalendarDate.parseTimestamp(Substring(text))
            #expect(milliseconds.map(CalendarDate.timestampRange.contains) == true, "\(text)")
        }
        #expect(
            CalendarDate.formatTimestamp(milliseconds: CalendarDate.timestampRange.lowerBound) == "0001-01-01T00:00:00Z"
        )
        // Years before 1000 keep four digits.
        #expect(CalendarDate.format(days: CalendarDate.days(year: 7, month: 3, day: 9) ?? 0) == "0007-03-09")
    }

    @Test("every field of a date or a time is ASCII digits; a signed field is refused, not read as a number")
    func signedFields() {
        // Each was taken before: `Int` reads "+1" as 1 and "-0" as 0, so "2024-+1-05" was
        // stored as the 5th of January.
        for text in ["2024-+1-05", "+024-01-05", "2024-01--5", "2024-01-+5"] {
            #expect(CalendarDate.parse(Substring(text)) == nil, "\(text)")
            #expect(CalendarDate.parseTimestamp(Substring(text + "T10:00:00Z")) == nil, "\(text)")
        }
        for text in [
            "2024-02-28T+1:00:00Z", "2024-02-28T10:-0:00Z", "2024-02-28T10:00:+0Z", "2024-02-28T10:00:00++1:00",
            "2024-02-28T10:00:00+01:+0", "2024-02-28T10:00:00--0:00",
        ] {
            #expect(CalendarDate.parseTimestamp(Substring(text)) == nil, "\(text)")
        }
        #expect(CalendarDate.parse("2024-01-05") == CalendarDate.days(year: 2024, month: 1, day: 5))
    }

    @Test("RFC 3339's lower-case 't' and 'z' read as the upper-case letters do")
    func lowerCaseSeparators() {
        let upper = CalendarDate.parseTimestamp("2024-02-28T10:00:00Z")
        #expect(upper == 1_709_114_400_000)
        #expect(CalendarDate.parseTimestamp("2024-02-28t10:00:00z") == upper)
        #expect(CalendarDate.parseTimestamp("2024-02-28t11:00:00+01:00") == upper)
    }
}

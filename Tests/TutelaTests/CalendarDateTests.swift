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
        // Years before 1000 keep four digits.
        #expect(CalendarDate.format(days: CalendarDate.days(year: 7, month: 3, day: 9) ?? 0) == "0007-03-09")
    }
}

import Testing
import TutelaCore

@Suite("CLOCK table")
struct ClockTableTests {
    @Test("when full, a value used since the hand passed stays and an unused one gives way")
    func displacement() {
        var table = ClockTable<String, Int>(capacity: 2)
        #expect(table.insert(1, for: "a") == nil)
        #expect(table.insert(2, for: "b") == nil)
        #expect(table.value(for: "a") == 1)
        #expect(table.insert(3, for: "c") == 2)
        #expect(table.count == 2)
        #expect(table.value(for: "b") == nil)
        #expect(table.value(for: "a") == 1)
        #expect(table.value(for: "c") == 3)
        // Replacing a key's value gives back the old one and displaces nothing else.
        #expect(table.insert(30, for: "c") == 3)
        #expect(table.count == 2)
        #expect(table.removeValue(for: "a") == 1)
        #expect(table.removeValue(for: "a") == nil)
        #expect(table.insert(4, for: "d") == nil)
        #expect(table.value(for: "d") == 4)
        #expect(table.value(for: "c") == 30)
    }

    @Test("a table of capacity 0 holds nothing")
    func empty() {
        var table = ClockTable<String, Int>(capacity: 0)
        #expect(table.insert(1, for: "a") == nil)
        #expect(table.value(for: "a") == nil)
        #expect(table.count == 0)
    }
}

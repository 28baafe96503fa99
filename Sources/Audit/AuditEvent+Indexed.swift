import Foundation
import GRDB
import TutelaCore

extension AuditEvent {
    /// The indexed fields of an event's canonical bytes, as their JSON text, read in one pass
    /// without building the event (decoding every event made `verify` a third slower).
    struct IndexedText {
        /// The time's digits.
        var time: ArraySlice<UInt8> = []
        var kind: ArraySlice<UInt8> = []
        var principal: ArraySlice<UInt8> = []
        var action: ArraySlice<UInt8> = []
        var purpose: ArraySlice<UInt8> = []
        var decision: ArraySlice<UInt8> = []
        /// The subject HMACs, each without its quotes.
        var subjects: [ArraySlice<UInt8>] = []

        /// The subjects, each once (the customer index holds a row per subject and entry).
        var distinctSubjects: [ArraySlice<UInt8>] {
            guard subjects.count > 1 else { return subjects }
            var seen: Set<ArraySlice<UInt8>> = []
            return subjects.filter { seen.insert($0).inserted }
        }

        /// Reads `bytes`, a flat JSON object of strings, integers and lists of strings as the
        /// canonical encoding writes it; nil when they are not, or lack an indexed field.
        init?(canonical bytes: [UInt8]) {
            let (quote, comma, colon) = (UInt8(ascii: "\""), UInt8(ascii: ","), UInt8(ascii: ":"))
            guard bytes.first == UInt8(ascii: "{") else { return nil }
            var index = 1
            var found = 0
            while index < bytes.count {
                guard bytes[index] == quote, let keyEnd = Self.stringEnd(bytes, from: index) else { return nil }
                let key = bytes[(index + 1)..<(keyEnd - 1)]
                index = keyEnd
                guard index < bytes.count, bytes[index] == colon else { return nil }
                index += 1
                guard index < bytes.count else { return nil }
                let start = index
                var elements: [ArraySlice<UInt8>] = []
                switch bytes[index] {
                case quote:
                    guard let end = Self.stringEnd(bytes, from: index) else { return nil }
                    index = end
                case UInt8(ascii: "["):
                    index += 1
                    while index < bytes.count, bytes[index] != UInt8(ascii: "]") {
                        guard bytes[index] == quote, let end = Self.stringEnd(bytes, from: index) else { return nil }
                        elements.append(bytes[(index + 1)..<(end - 1)])
                        index = end
                        if index < bytes.count, bytes[index] == comma { index += 1 }
                    }
                    guard index < bytes.count else { return nil }
                    index += 1
                default:
                    while index < bytes.count, bytes[index] == UInt8(ascii: "-") || (48...57).contains(bytes[index]) {
                        index += 1
                    }
                }
                let value = bytes[start..<index]
                if Self.same(key, "time_ms") {
                    (time, found) = (value, found + 1)
                } else if Self.same(key, "kind") {
                    (kind, found) = (value, found + 1)
                } else if Self.same(key, "principal") {
                    (principal, found) = (value, found + 1)
                } else if Self.same(key, "action") {
                    (action, found) = (value, found + 1)
                } else if Self.same(key, "purpose") {
                    (purpose, found) = (value, found + 1)
                } else if Self.same(key, "decision") {
                    (decision, found) = (value, found + 1)
                } else if Self.same(key, "subjects") {
                    (subjects, found) = (elements, found + 1)
                }
                guard index < bytes.count else { return nil }
                if bytes[index] == UInt8(ascii: "}") {
                    guard index == bytes.count - 1, found == 7 else { return nil }
                    return
                }
                guard bytes[index] == comma else { return nil }
                index += 1
            }
            return nil
        }

        /// Whether an entry's row holds this event's values in its search columns
        /// (`time_ms, kind, principal, action, purpose, decision`, from `first` on).
        ///
        /// The columns are what `audit search` finds entries by, and only the event is hashed
        /// and signed: a column changed in the database file would hide an entry from a search,
        /// or show it for another principal. They are compared as SQLite hands them over, with
        /// the event's JSON text, without making strings: a column of another type than its
        /// own is compared as SQLite's text of it.
        func matches(_ row: Row, from first: Int) throws -> Bool {
            func same(_ text: ArraySlice<UInt8>, _ index: Int, quoted: Bool) throws -> Bool {
                try row.withUnsafeData(atIndex: index) { data in
                    guard let data else { return false }
                    return data.withUnsafeBytes { column in
                        guard quoted else { return Self.same(text, column) }
                        let inner = text.dropFirst().dropLast()
                        // A string the encoding escaped is compared in its JSON form.
                        guard inner.contains(UInt8(ascii: "\\")) else { return Self.same(inner, column) }
                        var json = JSONWriter(capacity: column.count + 8)
                        json.append(string: String(decoding: column, as: UTF8.self))
                        return text.elementsEqual(json.bytes)
                    }
                }
            }
            return try same(time, first, quoted: false) && same(kind, first + 1, quoted: true)
                && same(principal, first + 2, quoted: true) && same(action, first + 3, quoted: true)
                && same(purpose, first + 4, quoted: true) && same(decision, first + 5, quoted: true)
        }

        /// Whether `bytes` are those of `other`, compared as memory (a byte-by-byte comparison
        /// through the collections' iterators took a third of `verify`'s time).
        private static func same(_ bytes: ArraySlice<UInt8>, _ other: UnsafeRawBufferPointer) -> Bool {
            guard bytes.count == other.count else { return false }
            guard let start = other.baseAddress, !bytes.isEmpty else { return true }
            return bytes.withUnsafeBytes { own in own.baseAddress.map { memcmp($0, start, other.count) == 0 } ?? false }
        }

        private static func same(_ bytes: ArraySlice<UInt8>, _ key: StaticString) -> Bool {
            key.withUTF8Buffer { same(bytes, UnsafeRawBufferPointer($0)) }
        }

        /// The index just past the string literal that starts at `start` (its closing quote
        /// included), or nil when it does not end.
        private static func stringEnd(_ bytes: [UInt8], from start: Int) -> Int? {
            var index = start + 1
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\\"): index += 2
                case UInt8(ascii: "\""): return index + 1
                default: index += 1
                }
            }
            return nil
        }
    }
}

/// The pairs of a subject HMAC and an entry number, as an order-free digest: the pairs the
/// entries list and the rows the customer index holds are each read once, in whatever order,
/// and compared without a lookup per pair.
///
/// The sum of the pairs' hashes under this process's random hash seed: rows changed to match
/// it would have to be chosen without knowing the seed.
struct SubjectPairs: Equatable {
    private var count = 0
    private var sum: UInt64 = 0

    mutating func add(_ subjects: [ArraySlice<UInt8>], entry: Int) {
        for subject in subjects { subject.withUnsafeBytes { add($0, entry: entry) } }
    }

    mutating func add(_ subject: UnsafeRawBufferPointer, entry: Int) {
        var hasher = Hasher()
        hasher.combine(entry)
        hasher.combine(bytes: subject)
        sum &+= UInt64(bitPattern: Int64(hasher.finalize()))
        count += 1
    }
}

import KeyManagement
import TutelaCore

/// The stored encoding of a record's fields.
///
/// Format 2, written since the sealed group: a format byte (2), a 16-bit field count, a 32-bit
/// length and the group ciphertext (empty when no field is sealed), then per field a one-byte
/// name length, the name and a kind byte: 0 = clear, followed by the value in `FieldValue`'s
/// binary form; 2 = sealed, its value being the next one in the group. The group is one envelope
/// ciphertext of the sealed fields' values, one after the other, bound to the record and to
/// those fields' names in their order.
///
/// Format 1, still read: the same entries without a group, and kind 1 = sealed on its own, a
/// 32-bit length and the field's envelope ciphertext.
public enum RecordPayload {
    /// One decoded entry.
    public enum Entry: Sendable, Hashable {
        case clear(FieldValue)
        /// Format 1: a field sealed on its own.
        case sealed([UInt8])
        /// Format 2: a field whose value is in the record's sealed group.
        case grouped
    }

    /// One entry as a view into the payload: a sealed value is not copied.
    public enum BorrowedEntry {
        case clear(FieldValue)
        case sealed(ArraySlice<UInt8>)
        case grouped
    }

    static let fieldFormat: UInt8 = 1
    static let groupFormat: UInt8 = 2

    /// Builds a format 2 payload entry by entry.
    ///
    /// Sealed values are gathered in their binary form and sealed together by `finish`, which
    /// zeroes them, sealed or not: nothing that can throw belongs between the first `append`
    /// and `finish`.
    public struct Writer {
        private var entries: [UInt8] = []
        private var count = 0
        private var sealedNames: [String] = []
        private var sealedValues: [UInt8] = []

        /// Starts an empty payload for up to `fields` fields (more are fine: the buffers grow).
        public init(capacity: Int = 256, fields: Int = 16) {
            entries.reserveCapacity(capacity)
            sealedValues.reserveCapacity(capacity)
            sealedNames.reserveCapacity(fields)
        }

        /// Appends a clear value.
        public mutating func append(_ name: String, clear value: FieldValue) {
            appendName(name, kind: 0)
            value.encode(into: &entries)
        }

        /// Appends a value to be sealed in the record's group.
        public mutating func append(_ name: String, sealed value: FieldValue) {
            appendName(name, kind: 2)
            sealedNames.append(name)
            value.encode(into: &sealedValues)
        }

        /// The finished payload.
        ///
        /// - Parameter seal: appends to its buffer the ciphertext of the sealed values (their
        ///   binary forms one after the other) for the given field names; not called when no
        ///   value is sealed.
        public mutating func finish(
            sealing seal: (_ values: [UInt8], _ names: [String], _ output: inout [UInt8]) throws -> Void
        ) throws -> [UInt8] {
            defer { EnvelopeCipher.zero(&sealedValues) }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(7 + 64 + sealedValues.count + entries.count)
            bytes.append(RecordPayload.groupFormat)
            bytes.append(UInt8(truncatingIfNeeded: count >> 8))
            bytes.append(UInt8(truncatingIfNeeded: count))
            FieldValue.append(UInt32(0), to: &bytes)
            if !sealedNames.isEmpty {
                try seal(sealedValues, sealedNames, &bytes)
                let length = UInt32(bytes.count - 7)
                for index in 0..<4 { bytes[3 + index] = UInt8(truncatingIfNeeded: length >> (24 - 8 * index)) }
            }
            bytes.append(contentsOf: entries)
            return bytes
        }

        private mutating func appendName(_ name: String, kind: UInt8) {
            count += 1
            entries.append(UInt8(name.utf8.count))
            entries.append(contentsOf: name.utf8)
            entries.append(kind)
        }
    }

    /// Encodes entries in the given order as format 1 (fields sealed one by one), the format
    /// earlier versions wrote; for tests that check such records still open.
    public static func encodeFieldFormat(_ entries: [(name: String, entry: Entry)]) -> [UInt8] {
        var bytes = [
            fieldFormat, UInt8(truncatingIfNeeded: entries.count >> 8), UInt8(truncatingIfNeeded: entries.count),
        ]
        for (name, entry) in entries {
            bytes.append(UInt8(name.utf8.count))
            bytes.append(contentsOf: name.utf8)
            switch entry {
            case .clear(let value):
                bytes.append(0)
                value.encode(into: &bytes)
            case .sealed(let ciphertext):
                bytes.append(1)
                FieldValue.append(UInt32(ciphertext.count), to: &bytes)
                bytes.append(contentsOf: ciphertext)
            case .grouped:
                preconditionFailure("format 1 has no sealed group")
            }
        }
        return bytes
    }

    /// Decodes a payload's entries (of either format).
    /// - Throws: `TutelaError` with code `.storage` when it is damaged.
    public static func decode(_ bytes: [UInt8]) throws -> [(name: String, entry: Entry)] {
        var entries: [(name: String, entry: Entry)] = []
        try forEach(in: bytes) { name, entry in
            let name = String(decoding: name, as: UTF8.self)
            switch entry {
            case .clear(let value): entries.append((name, .clear(value)))
            case .sealed(let bytes): entries.append((name, .sealed(Array(bytes))))
            case .grouped: entries.append((name, .grouped))
            }
        }
        return entries
    }

    /// Where a format 2 payload's group ciphertext lies; nil for format 1 or when no field is
    /// sealed.
    /// - Throws: `TutelaError` (`.storage`, or `.invalidInput` when truncated) when it is damaged.
    public static func groupRange(in bytes: [UInt8]) throws -> Range<Int>? {
        var reader = ByteReader(bytes: bytes)
        let format = try reader.byte()
        guard format == groupFormat else {
            guard format == fieldFormat else { throw TutelaError(.storage, "unknown record payload format") }
            return nil
        }
        _ = try reader.bytes(2)
        let length = Int(try reader.uint32())
        let start = reader.offset
        _ = try reader.bytes(length)
        return length == 0 ? nil : start..<(start + length)
    }

    /// Walks a payload without copying it: `body` gets each entry's name bytes and value.
    /// - Throws: `TutelaError` (`.storage`, or `.invalidInput` when truncated) when it is damaged,
    ///   or what `body` throws.
    public static func forEach(
        in bytes: [UInt8],
        _ body: (_ name: ArraySlice<UInt8>, _ entry: BorrowedEntry) throws -> Void
    ) throws {
        var reader = ByteReader(bytes: bytes)
        let format = try reader.byte()
        guard format == fieldFormat || format == groupFormat else {
            throw TutelaError(.storage, "unknown record payload format")
        }
        let count = Int(try reader.byte()) << 8 | Int(try reader.byte())
        if format == groupFormat { _ = try reader.bytes(Int(try reader.uint32())) }
        for _ in 0..<count {
            let name = try reader.bytes(Int(try reader.byte()))
            switch (try reader.byte(), format) {
            case (0, _):
                try body(name, .clear(try FieldValue.decode(from: &reader)))
            case (1, fieldFormat):
                try body(name, .sealed(try reader.bytes(Int(try reader.uint32()))))
            case (2, groupFormat):
                try body(name, .grouped)
            default:
                throw TutelaError(.storage, "unknown record payload entry kind")
            }
        }
        guard reader.isAtEnd else { throw TutelaError(.storage, "trailing bytes in a record payload") }
    }
}

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

    /// A field's name and its decoded entry.
    public typealias NamedEntry = (name: String, entry: Entry)

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
    /// - Parameter record: the record's `collection/id`, for the error.
    /// - Throws: `TutelaError` with code `.ciphertextTampered`, naming the record, when it is
    ///   damaged.
    public static func decode(_ bytes: [UInt8], record: @autoclosure () -> String) throws -> [NamedEntry] {
        var entries: [NamedEntry] = []
        try forEach(in: bytes, record: record()) { name, entry in
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
    /// - Parameter record: the record's `collection/id`, for the error.
    /// - Throws: `TutelaError` with code `.ciphertextTampered`, naming the record, when it is
    ///   damaged.
    public static func groupRange(in bytes: [UInt8], record: @autoclosure () -> String) throws -> Range<Int>? {
        var reader = ByteReader(bytes: bytes)
        return try reading(record) {
            let format = try reader.byte()
            guard format == groupFormat else {
                guard format == fieldFormat else { throw TutelaError(.storage, "its format is unknown") }
                return nil
            }
            _ = try reader.bytes(2)
            let length = Int(try reader.uint32())
            let start = reader.offset
            _ = try reader.bytes(length)
            return length == 0 ? nil : start..<(start + length)
        }
    }

    /// Walks a payload without copying it: `body` gets each entry's name bytes and value.
    /// - Parameter record: the record's `collection/id`, for the error.
    /// - Throws: `TutelaError` with code `.ciphertextTampered`, naming the record, when the
    ///   payload is damaged (cut short, an unknown format, entry kind or value tag, bytes past
    ///   the last entry), or what `body` throws, as it is.
    public static func forEach(
        in bytes: [UInt8],
        record: @autoclosure () -> String,
        _ body: (_ name: ArraySlice<UInt8>, _ entry: BorrowedEntry) throws -> Void
    ) throws {
        var reader = ByteReader(bytes: bytes)
        let (format, count) = try reading(record) { () throws -> (UInt8, Int) in
            let format = try reader.byte()
            guard format == fieldFormat || format == groupFormat else {
                throw TutelaError(.storage, "its format is unknown")
            }
            let count = Int(try reader.byte()) << 8 | Int(try reader.byte())
            if format == groupFormat { _ = try reader.bytes(Int(try reader.uint32())) }
            return (format, count)
        }
        for _ in 0..<count {
            // The entry is read first and handed over after: an error of `body` passes as it is.
            let (name, entry) = try reading(record) { () throws -> (ArraySlice<UInt8>, BorrowedEntry) in
                let name = try reader.bytes(Int(try reader.byte()))
                switch (try reader.byte(), format) {
                case (0, _): return (name, .clear(try FieldValue.decode(from: &reader)))
                case (1, fieldFormat): return (name, .sealed(try reader.bytes(Int(try reader.uint32()))))
                case (2, groupFormat): return (name, .grouped)
                default: throw TutelaError(.storage, "an entry has an unknown kind")
                }
            }
            try body(name, entry)
        }
        guard reader.isAtEnd else { throw damaged(record(), "bytes follow its last entry") }
    }

    /// Runs a step of reading a payload; its failure, the step's own or the reader's (bytes cut
    /// short, an unknown value tag), becomes the error that names the record.
    private static func reading<T>(_ record: () -> String, _ step: () throws -> T) throws -> T {
        do {
            return try step()
        } catch let error as TutelaError {
            throw damaged(record(), error.message)
        }
    }

    /// The error for a damaged payload.
    ///
    /// The message names the record and what does not parse, never a value.
    private static func damaged(_ record: String, _ reason: String) -> TutelaError {
        TutelaError(.ciphertextTampered, "the stored payload of \(record) is damaged or was altered: \(reason)")
    }
}

import TutelaCore

/// The stored encoding of a record's fields.
///
/// Layout: a format byte (1), a 16-bit field count, then per field: a one-byte name length, the
/// name, a kind byte (0 = clear value in `FieldValue`'s binary form, 1 = sealed: a 32-bit length
/// and an envelope ciphertext).
public enum RecordPayload {
    /// One decoded entry.
    public enum Entry: Sendable, Hashable {
        case clear(FieldValue)
        case sealed([UInt8])
    }

    /// One entry as a view into the payload: a sealed value is not copied.
    public enum BorrowedEntry {
        case clear(FieldValue)
        case sealed(ArraySlice<UInt8>)
    }

    static let format: UInt8 = 1

    /// Builds a payload entry by entry; sealed values are written in place.
    public struct Writer {
        private var bytes: [UInt8]
        private var count = 0

        /// Starts an empty payload.
        public init(capacity: Int = 512) {
            bytes = [RecordPayload.format, 0, 0]
            bytes.reserveCapacity(capacity)
        }

        /// Appends a clear value.
        public mutating func append(_ name: String, clear value: FieldValue) {
            appendName(name, kind: 0)
            value.encode(into: &bytes)
        }

        /// Appends a sealed value that `write` appends to the buffer it is given.
        ///
        /// When `write` throws, the payload is left as it was before the call.
        public mutating func append(_ name: String, sealedBy write: (inout [UInt8]) throws -> Void) rethrows {
            let (start, previousCount) = (bytes.count, count)
            appendName(name, kind: 1)
            let lengthAt = bytes.count
            FieldValue.append(UInt32(0), to: &bytes)
            do {
                try write(&bytes)
            } catch {
                bytes.removeSubrange(start...)
                count = previousCount
                throw error
            }
            let length = UInt32(bytes.count - lengthAt - 4)
            for index in 0..<4 { bytes[lengthAt + index] = UInt8(truncatingIfNeeded: length >> (24 - 8 * index)) }
        }

        /// The finished payload.
        public mutating func finish() -> [UInt8] {
            bytes[1] = UInt8(truncatingIfNeeded: count >> 8)
            bytes[2] = UInt8(truncatingIfNeeded: count)
            return bytes
        }

        private mutating func appendName(_ name: String, kind: UInt8) {
            count += 1
            bytes.append(UInt8(name.utf8.count))
            bytes.append(contentsOf: name.utf8)
            bytes.append(kind)
        }
    }

    /// Encodes entries in the given order.
    public static func encode(_ entries: [(name: String, entry: Entry)]) -> [UInt8] {
        var writer = Writer(capacity: 64 * entries.count)
        for (name, entry) in entries {
            switch entry {
            case .clear(let value): writer.append(name, clear: value)
            case .sealed(let ciphertext): writer.append(name) { $0.append(contentsOf: ciphertext) }
            }
        }
        return writer.finish()
    }

    /// Decodes a payload.
    /// - Throws: `TutelaError` with code `.storage` when it is damaged.
    public static func decode(_ bytes: [UInt8]) throws -> [(name: String, entry: Entry)] {
        var entries: [(name: String, entry: Entry)] = []
        try forEach(in: bytes) { name, entry in
            switch entry {
            case .clear(let value): entries.append((String(decoding: name, as: UTF8.self), .clear(value)))
            case .sealed(let bytes): entries.append((String(decoding: name, as: UTF8.self), .sealed(Array(bytes))))
            }
        }
        return entries
    }

    /// Walks a payload without copying it: `body` gets each entry's name bytes and value.
    /// - Throws: `TutelaError` (`.storage`, or `.invalidInput` when truncated) when it is damaged,
    ///   or what `body` throws.
    public static func forEach(
        in bytes: [UInt8],
        _ body: (_ name: ArraySlice<UInt8>, _ entry: BorrowedEntry) throws -> Void
    ) throws {
        var reader = ByteReader(bytes: bytes)
        guard try reader.byte() == format else { throw TutelaError(.storage, "unknown record payload format") }
        let count = Int(try reader.byte()) << 8 | Int(try reader.byte())
        for _ in 0..<count {
            let name = try reader.bytes(Int(try reader.byte()))
            switch try reader.byte() {
            case 0:
                try body(name, .clear(try FieldValue.decode(from: &reader)))
            case 1:
                try body(name, .sealed(try reader.bytes(Int(try reader.uint32()))))
            default:
                throw TutelaError(.storage, "unknown record payload entry kind")
            }
        }
        guard reader.isAtEnd else { throw TutelaError(.storage, "trailing bytes in a record payload") }
    }
}

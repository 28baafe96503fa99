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

    static let format: UInt8 = 1

    /// Encodes entries in the given order.
    public static func encode(_ entries: [(name: String, entry: Entry)]) -> [UInt8] {
        var bytes: [UInt8] = [format]
        bytes.reserveCapacity(64 * entries.count)
        FieldValue.append(UInt16(entries.count), to: &bytes)
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
            }
        }
        return bytes
    }

    /// Decodes a payload.
    /// - Throws: `TutelaError` with `.ciphertextTampered`-like `.storage` code when it is damaged.
    public static func decode(_ bytes: [UInt8]) throws -> [(name: String, entry: Entry)] {
        var reader = ByteReader(bytes: bytes)
        guard try reader.byte() == format else { throw TutelaError(.storage, "unknown record payload format") }
        let count = Int(try reader.byte()) << 8 | Int(try reader.byte())
        var entries: [(name: String, entry: Entry)] = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            let name = String(decoding: try reader.bytes(Int(try reader.byte())), as: UTF8.self)
            switch try reader.byte() {
            case 0:
                entries.append((name, .clear(try FieldValue.decode(from: &reader))))
            case 1:
                let length = Int(try reader.uint32())
                entries.append((name, .sealed(Array(try reader.bytes(length)))))
            default:
                throw TutelaError(.storage, "unknown record payload entry kind")
            }
        }
        guard reader.isAtEnd else { throw TutelaError(.storage, "trailing bytes in a record payload") }
        return entries
    }
}

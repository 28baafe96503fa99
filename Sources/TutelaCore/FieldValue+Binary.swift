/// A compact binary form of field values, used inside ciphertexts and stored rows.
///
/// Layout: one tag byte, then the value: strings as a 32-bit big-endian length and UTF-8 bytes,
/// integers and timestamps as 64-bit big-endian, doubles as their IEEE 754 bits, dates as 32 bits,
/// booleans as one byte.
extension FieldValue {
    private enum Tag: UInt8 {
        case null = 0
        case string = 1
        case int = 2
        case double = 3
        case bool = 4
        case date = 5
        case timestamp = 6
    }

    /// Appends the binary form to a buffer.
    public func encode(into buffer: inout [UInt8]) {
        switch self {
        case .null:
            buffer.append(Tag.null.rawValue)
        case .string(let text):
            buffer.append(Tag.string.rawValue)
            let utf8 = text.utf8
            Self.append(UInt32(utf8.count), to: &buffer)
            buffer.append(contentsOf: utf8)
        case .int(let value):
            buffer.append(Tag.int.rawValue)
            Self.append(UInt64(bitPattern: value), to: &buffer)
        case .double(let value):
            buffer.append(Tag.double.rawValue)
            Self.append(value.bitPattern, to: &buffer)
        case .bool(let value):
            buffer.append(Tag.bool.rawValue)
            buffer.append(value ? 1 : 0)
        case .date(let days):
            buffer.append(Tag.date.rawValue)
            Self.append(UInt32(bitPattern: days), to: &buffer)
        case .timestamp(let milliseconds):
            buffer.append(Tag.timestamp.rawValue)
            Self.append(UInt64(bitPattern: milliseconds), to: &buffer)
        }
    }

    /// Reads one value at `offset` and advances it.
    /// - Throws: `TutelaError` with code `.invalidInput` when the bytes are not a value.
    public static func decode(from bytes: [UInt8], at offset: inout Int) throws -> FieldValue {
        var reader = ByteReader(bytes: bytes, offset: offset)
        defer { offset = reader.offset }
        return try decode(from: &reader)
    }

    /// Reads one value from a reader.
    /// - Throws: `TutelaError` with code `.invalidInput` when the bytes are not a value.
    public static func decode(from reader: inout ByteReader) throws -> FieldValue {
        guard let tag = Tag(rawValue: try reader.byte()) else {
            throw TutelaError(.invalidInput, "unknown value tag")
        }
        switch tag {
        case .null: return .null
        case .string:
            let count = Int(try reader.uint32())
            return .string(String(decoding: try reader.bytes(count), as: UTF8.self))
        case .int: return .int(Int64(bitPattern: try reader.uint64()))
        case .double: return .double(Double(bitPattern: try reader.uint64()))
        case .bool: return .bool(try reader.byte() != 0)
        case .date: return .date(days: Int32(bitPattern: try reader.uint32()))
        case .timestamp: return .timestamp(milliseconds: Int64(bitPattern: try reader.uint64()))
        }
    }

    /// Steps over one value without reading it into a value.
    /// - Throws: `TutelaError` with code `.invalidInput` when the bytes are not a value.
    public static func skip(in reader: inout ByteReader) throws {
        guard let tag = Tag(rawValue: try reader.byte()) else {
            throw TutelaError(.invalidInput, "unknown value tag")
        }
        switch tag {
        case .null: break
        case .string: _ = try reader.bytes(Int(try reader.uint32()))
        case .int, .double, .timestamp: _ = try reader.bytes(8)
        case .bool: _ = try reader.bytes(1)
        case .date: _ = try reader.bytes(4)
        }
    }

    /// Appends an integer in big-endian order.
    @inlinable
    public static func append<T: FixedWidthInteger>(_ value: T, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { buffer.append(contentsOf: $0) }
    }
}

/// Reads big-endian integers and byte runs from a buffer, with bounds checks.
public struct ByteReader {
    /// The buffer.
    public let bytes: [UInt8]
    /// The index of the next byte to read.
    public var offset: Int

    /// Creates a reader at an offset from the buffer's start.
    public init(bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    /// Whether every byte was read.
    public var isAtEnd: Bool { offset >= bytes.count }

    /// Reads one byte.
    public mutating func byte() throws -> UInt8 {
        guard offset < bytes.count else { throw TutelaError(.invalidInput, "truncated data") }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// Reads `count` bytes.
    public mutating func bytes(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, count <= bytes.count - offset else { throw TutelaError(.invalidInput, "truncated data") }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }

    /// Reads a big-endian `UInt32`.
    public mutating func uint32() throws -> UInt32 {
        var value: UInt32 = 0
        for byte in try bytes(4) { value = value << 8 | UInt32(byte) }
        return value
    }

    /// Reads a big-endian `UInt64`.
    public mutating func uint64() throws -> UInt64 {
        var value: UInt64 = 0
        for byte in try bytes(8) { value = value << 8 | UInt64(byte) }
        return value
    }
}

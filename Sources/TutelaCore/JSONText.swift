/// JSON text written by hand where Foundation's encoder is too slow or not canonical (exports,
/// responses, audit events).
public enum JSONText {
    /// Appends a string literal: `"` and `\` escaped, newline, carriage return and tab as `\n`,
    /// `\r`, `\t`, other control characters and DEL as `\u00XX`, everything else literal UTF-8.
    public static func appendString(_ value: String, to output: inout String) {
        var writer = JSONWriter(capacity: value.utf8.count + 2)
        writer.append(string: value)
        output += writer.text
    }
}

/// Builds JSON text as UTF-8 bytes: appending bytes costs far less than appending to a
/// `String`, which a response or an audit event does a few dozen times.
public struct JSONWriter: Sendable {
    /// The text so far.
    public private(set) var bytes: [UInt8] = []

    /// Starts empty, with room for `capacity` bytes.
    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    /// The text so far as a string.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Appends literal JSON syntax such as `{"key":`; it is not escaped.
    public mutating func append(raw: StaticString) {
        raw.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// Appends a string literal, escaped as `JSONText.appendString` describes.
    public mutating func append(string value: String) {
        bytes.append(UInt8(ascii: "\""))
        // The string's own bytes when it has them in one piece (a native string always does),
        // read in place: `withUTF8` would need a mutable copy, and so a retain, per value.
        if value.utf8.withContiguousStorageIfAvailable({ appendEscaped($0) }) == nil {
            var contiguous = value
            contiguous.withUTF8 { appendEscaped($0) }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Appends UTF-8 bytes with the escapes of `append(string:)`, without the quotes.
    private mutating func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>) {
        // Most values need no escape at all: one scan of the bytes, one copy.
        guard utf8.contains(where: Self.needsEscape) else {
            bytes.append(contentsOf: utf8)
            return
        }
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "\""): append(raw: "\\\"")
            case UInt8(ascii: "\\"): append(raw: "\\\\")
            case UInt8(ascii: "\n"): append(raw: "\\n")
            case UInt8(ascii: "\r"): append(raw: "\\r")
            case UInt8(ascii: "\t"): append(raw: "\\t")
            case _ where Self.needsEscape(byte):
                // Other control characters and DEL; bytes of multi-byte characters are
                // 0x80 and above and pass through unchanged.
                append(raw: "\\u00")
                bytes.append(Self.hexDigits[Int(byte >> 4)])
                bytes.append(Self.hexDigits[Int(byte & 0x0f)])
            default: bytes.append(byte)
            }
        }
    }

    /// Appends an integer in decimal.
    public mutating func append(integer value: Int64) {
        guard value >= 0 else {
            bytes.append(contentsOf: String(value).utf8)
            return
        }
        // Digits least significant first, then turned around in place.
        let start = bytes.count
        var remaining = UInt64(value)
        repeat {
            bytes.append(UInt8(ascii: "0") + UInt8(remaining % 10))
            remaining /= 10
        } while remaining > 0
        var low = start
        var high = bytes.count - 1
        while low < high {
            bytes.swapAt(low, high)
            low += 1
            high -= 1
        }
    }

    /// Appends a number as Swift prints it, or `null` when it is not finite.
    public mutating func append(double value: Double) {
        guard value.isFinite else {
            append(raw: "null")
            return
        }
        bytes.append(contentsOf: String(value).utf8)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == 0x7F
    }
}

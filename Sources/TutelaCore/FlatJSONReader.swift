/// Reads JSON objects of field names to scalar values: the shape of an imported JSONL line and
/// of a record in a request body.
///
/// Strict JSON (RFC 8259), with two rules of its own: a value must be a string, number,
/// boolean or null (a nested object or array is refused), and a field name may appear once
/// per object. A number that is a whole value within the range of `Int64` (`5`, `5.0`, `1e3`)
/// keeps its exact integer. Errors say what is wrong and where, never a value.
///
/// It exists because decoding the same objects through `JSONDecoder` into a dictionary cost
/// about 20 µs per imported line here, most of an import's time.
public enum FlatJSONReader {
    /// One object; the whole input must be that object, with optional white space around it.
    /// - Throws: `TutelaError` with `.invalidInput`.
    public static func object(_ bytes: UnsafeRawBufferPointer) throws -> [String: RawFieldValue] {
        var cursor = Cursor(bytes)
        cursor.skipSpace()
        let object = try cursor.object()
        try cursor.expectEnd()
        return object
    }

    /// One object or an array of objects; the whole input must be that value.
    /// - Throws: `TutelaError` with `.invalidInput`.
    public static func objects(_ bytes: UnsafeRawBufferPointer) throws -> [[String: RawFieldValue]] {
        var cursor = Cursor(bytes)
        cursor.skipSpace()
        guard cursor.peek == UInt8(ascii: "[") else {
            let object = try cursor.object()
            try cursor.expectEnd()
            return [object]
        }
        cursor.index += 1
        var objects: [[String: RawFieldValue]] = []
        cursor.skipSpace()
        if cursor.peek == UInt8(ascii: "]") {
            cursor.index += 1
        } else {
            while true {
                cursor.skipSpace()
                objects.append(try cursor.object())
                cursor.skipSpace()
                let separator = cursor.peek
                cursor.index += 1
                if separator == UInt8(ascii: "]") { break }
                guard separator == UInt8(ascii: ",") else {
                    throw cursor.failure("expected ',' or ']' after an object", at: cursor.index - 1)
                }
            }
        }
        try cursor.expectEnd()
        return objects
    }

    private struct Cursor {
        let bytes: UnsafeRawBufferPointer
        var index = 0
        // Working memory for strings with escapes.
        var scratch: [UInt8] = []

        init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        /// The byte at the cursor, or 0 at the end (0 is never valid outside a string).
        var peek: UInt8 { index < bytes.count ? bytes[index] : 0 }

        func failure(_ reason: String, at offset: Int) -> TutelaError {
            TutelaError(.invalidInput, "not valid JSON: \(reason) (at byte \(offset + 1))")
        }

        mutating func skipSpace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        func expectEnd() throws {
            var end = self
            end.skipSpace()
            guard end.index == bytes.count else { throw failure("text after the value", at: end.index) }
        }

        mutating func object() throws -> [String: RawFieldValue] {
            guard peek == UInt8(ascii: "{") else {
                throw failure("expected an object of field names to values", at: index)
            }
            index += 1
            var object: [String: RawFieldValue] = [:]
            // Room for a row of the shipped collections without growing (a customer has 13 fields).
            object.reserveCapacity(16)
            skipSpace()
            if peek == UInt8(ascii: "}") {
                index += 1
                return object
            }
            while true {
                skipSpace()
                guard peek == UInt8(ascii: "\"") else { throw failure("expected a field name in quotes", at: index) }
                let nameOffset = index
                let name = try string()
                skipSpace()
                guard peek == UInt8(ascii: ":") else { throw failure("expected ':' after a field name", at: index) }
                index += 1
                skipSpace()
                guard object.updateValue(try value(), forKey: name) == nil else {
                    throw failure("a field name appears twice in one object", at: nameOffset)
                }
                skipSpace()
                let separator = peek
                index += 1
                if separator == UInt8(ascii: "}") { return object }
                guard separator == UInt8(ascii: ",") else {
                    throw failure("expected ',' or '}' after a value", at: index - 1)
                }
            }
        }

        mutating func value() throws -> RawFieldValue {
            switch peek {
            case UInt8(ascii: "\""): return .text(try string())
            case UInt8(ascii: "t"):
                try literal("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                throw failure("a value is an object or array; values are strings, numbers, booleans or null", at: index)
            default:
                throw failure("expected a string, number, boolean or null", at: index)
            }
        }

        mutating func literal(_ word: StaticString) throws {
            let start = index
            let count = word.utf8CodeUnitCount
            guard bytes.count - index >= count,
                word.withUTF8Buffer({ expected in
                    (0..<count).allSatisfy { bytes[start + $0] == expected[$0] }
                })
            else {
                throw failure("expected a string, number, boolean or null", at: start)
            }
            index += count
        }

        mutating func number() throws -> RawFieldValue {
            let start = index
            if peek == UInt8(ascii: "-") { index += 1 }
            guard peek.isASCIIDigit else { throw failure("a number without digits", at: start) }
            if peek == UInt8(ascii: "0") {
                index += 1
                if peek.isASCIIDigit { throw failure("a number with a leading zero", at: start) }
            } else {
                while peek.isASCIIDigit { index += 1 }
            }
            var isInteger = true
            if peek == UInt8(ascii: ".") {
                isInteger = false
                index += 1
                guard peek.isASCIIDigit else { throw failure("a number without digits after '.'", at: start) }
                while peek.isASCIIDigit { index += 1 }
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                isInteger = false
                index += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
                guard peek.isASCIIDigit else { throw failure("a number without exponent digits", at: start) }
                while peek.isASCIIDigit { index += 1 }
            }
            let lexeme = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            if isInteger, let integer = Int64(lexeme) {
                return .number(Double(integer), exactInteger: integer)
            }
            guard let value = Double(lexeme), value.isFinite else {
                throw failure("a number out of range", at: start)
            }
            // A whole value within Int64's range keeps its integer, as `5.0` or `1e3` for an int field.
            return .number(value, exactInteger: Int64(exactly: value))
        }

        /// A string at the cursor (which is on its opening quote).
        mutating func string() throws -> String {
            let open = index
            index += 1
            let start = index
            // Fast path: no escape before the closing quote. Bytes all below 0x80 are ASCII,
            // valid UTF-8 as they are: only other strings go through the (several times
            // slower) validating initializer.
            var bits: UInt8 = 0
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    index += 1
                    let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<index - 1])
                    if bits < 0x80 { return String(decoding: raw, as: UTF8.self) }
                    guard let text = String(validating: raw, as: UTF8.self) else {
                        throw failure("a string that is not valid UTF-8", at: open)
                    }
                    return text
                }
                bits |= byte
                if byte == UInt8(ascii: "\\") { break }
                if byte < 0x20 { throw failure("a control character inside a string", at: index) }
                index += 1
            }
            guard index < bytes.count else { throw failure("a string is never closed", at: open) }
            scratch.removeAll(keepingCapacity: true)
            scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    let text = scratch.withUnsafeBytes { String(validating: $0, as: UTF8.self) }
                    guard let text else { throw failure("a string that is not valid UTF-8", at: open) }
                    return text
                case UInt8(ascii: "\\"):
                    try escape()
                case 0..<0x20:
                    throw failure("a control character inside a string", at: index - 1)
                default:
                    scratch.append(byte)
                }
            }
            throw failure("a string is never closed", at: open)
        }

        /// One escape sequence, the backslash already read, appended to `scratch` as UTF-8.
        mutating func escape() throws {
            let at = index - 1
            let kind = peek
            index += 1
            switch kind {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scratch.append(kind)
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = UInt32(try hexQuad())
                if (0xD800...0xDBFF).contains(scalar) {
                    guard peek == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u")
                    else { throw failure("a lone surrogate in a \\u escape", at: at) }
                    index += 2
                    let low = UInt32(try hexQuad())
                    guard (0xDC00...0xDFFF).contains(low) else {
                        throw failure("a lone surrogate in a \\u escape", at: at)
                    }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let unicode = Unicode.Scalar(scalar) else {
                    throw failure("a lone surrogate in a \\u escape", at: at)
                }
                UTF8.encode(unicode) { scratch.append($0) }
            default:
                throw failure("an unknown escape in a string", at: at)
            }
        }

        mutating func hexQuad() throws -> UInt16 {
            guard bytes.count - index >= 4 else { throw failure("a \\u escape needs four hex digits", at: index) }
            var value: UInt16 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw failure("a \\u escape needs four hex digits", at: index)
                }
                value = value << 4 | UInt16(digit)
                index += 1
            }
            return value
        }
    }
}

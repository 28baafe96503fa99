extension Unicode.Scalar {
    /// Whether this is a control character: C0 (below U+0020), DEL or C1 (U+0080 to U+009F).
    ///
    /// Such a character in text that is stored, audited or printed could forge or hide lines, or
    /// make a terminal act on an escape sequence.
    public var isControlCharacter: Bool {
        value < 0x20 || (0x7F...0x9F).contains(value)
    }
}

extension String {
    /// This text with each control character written as `\u{…}` (its hexadecimal value), for a
    /// message that quotes a name read from storage: a damaged or altered name can then neither
    /// break the message's line nor reach a terminal as an escape sequence.
    public var escapingControlCharacters: String {
        guard unicodeScalars.contains(where: \.isControlCharacter) else { return self }
        var escaped = String.UnicodeScalarView()
        for scalar in unicodeScalars {
            if scalar.isControlCharacter {
                escaped.append(contentsOf: "\\u{\(String(scalar.value, radix: 16))}".unicodeScalars)
            } else {
                escaped.append(scalar)
            }
        }
        return String(escaped)
    }
}

/// JSON text written by hand where Foundation's encoder is too slow or not canonical (exports,
/// audit events).
public enum JSONText {
    /// Appends a string literal: `"` and `\` escaped, newline, carriage return and tab as `\n`,
    /// `\r`, `\t`, other control characters and DEL as `\u00XX`, everything else literal UTF-8.
    public static func appendString(_ value: String, to output: inout String) {
        output += "\""
        // Most values need no escape at all: one scan of the bytes, one append.
        let plain = value.utf8.allSatisfy { $0 >= 0x20 && $0 != 0x22 && $0 != 0x5C && $0 != 0x7F }
        if plain {
            output += value
            output += "\""
            return
        }
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        output += "\""
    }
}

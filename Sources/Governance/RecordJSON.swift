import TutelaCore

/// Renders records as one-line JSON objects with fields in schema order, without Foundation's
/// encoder (this runs for every exported record).
public enum RecordJSON {
    /// The JSON object of a record.
    public static func encode(_ record: Record, definition: CollectionDefinition) -> String {
        var output = "{"
        var first = true
        for field in definition.fields {
            guard let value = record.fields[field.name] else { continue }
            if !first { output += "," }
            first = false
            appendString(field.name, to: &output)
            output += ":"
            appendValue(value, to: &output)
        }
        return output + "}"
    }

    /// Appends a value in JSON form.
    public static func appendValue(_ value: FieldValue, to output: inout String) {
        switch value {
        case .null: output += "null"
        case .string(let text): appendString(text, to: &output)
        case .int(let number): output += String(number)
        case .double(let number): output += number.isFinite ? String(number) : "null"
        case .bool(let flag): output += flag ? "true" : "false"
        case .date, .timestamp: appendString(value.displayText, to: &output)
        }
    }

    /// Appends a string with JSON escaping.
    public static func appendString(_ text: String, to output: inout String) {
        JSONText.appendString(text, to: &output)
    }
}

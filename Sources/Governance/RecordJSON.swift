import TutelaCore

/// Renders records as one-line JSON objects with fields in schema order, without Foundation's
/// encoder (this runs for every exported record and every record a response carries).
public enum RecordJSON {
    /// The JSON object of a record.
    public static func encode(_ record: Record, definition: CollectionDefinition) -> String {
        var writer = JSONWriter(capacity: 512)
        encode(record, definition: definition, into: &writer)
        return writer.text
    }

    /// Appends the JSON object of a record.
    public static func encode(_ record: Record, definition: CollectionDefinition, into writer: inout JSONWriter) {
        writer.append(raw: "{")
        var first = true
        for index in definition.fields.indices {
            let name = definition.fields[index].name
            guard let value = record.fields[name] else { continue }
            if !first { writer.append(raw: ",") }
            first = false
            writer.append(string: name)
            writer.append(raw: ":")
            appendValue(value, to: &writer)
        }
        writer.append(raw: "}")
    }

    /// Appends a value in JSON form.
    public static func appendValue(_ value: FieldValue, to writer: inout JSONWriter) {
        switch value {
        case .null: writer.append(raw: "null")
        case .string(let text): writer.append(string: text)
        case .int(let number): writer.append(integer: number)
        case .double(let number): writer.append(double: number)
        case .bool(let flag): writer.append(raw: flag ? "true" : "false")
        case .date, .timestamp: writer.append(string: value.displayText)
        }
    }

    /// Appends a string with JSON escaping.
    public static func appendString(_ text: String, to output: inout String) {
        JSONText.appendString(text, to: &output)
    }
}

/// One record of a collection, in the clear, as it enters or leaves the store.
public struct Record: Sendable, Hashable {
    /// The collection name.
    public var collection: String
    /// The record id (the value of the collection's key field).
    public var id: String
    /// The data subject the record belongs to.
    public var subject: String
    /// Field values by field name; absent fields are null.
    public var fields: [String: FieldValue]
    /// Fields that hold a value which was not decrypted because the reader may not see it
    /// (see `EncryptedStore.open`); they are not in `fields`.
    public var withheld: Set<String> = []

    /// Creates a record.
    public init(collection: String, id: String, subject: String, fields: [String: FieldValue]) {
        self.collection = collection
        self.id = id
        self.subject = subject
        self.fields = fields
    }
}

extension CollectionDefinition {
    /// Builds a validated record from raw text or JSON values.
    ///
    /// - Parameter raw: values by field name; unknown names are an error.
    /// - Returns: the record with typed values.
    /// - Throws: `TutelaError` with code `.invalidInput` that names the field but never the value.
    public func makeRecord(from raw: [String: RawFieldValue]) throws -> Record {
        var fields: [String: FieldValue] = [:]
        fields.reserveCapacity(raw.count)
        // Each name is looked up once: the key, the subject and the required fields are
        // noted by position on the way.
        var id: String?
        var subject: String?
        var required = 0
        for (name, rawValue) in raw {
            guard let position = position(of: name) else {
                throw TutelaError(.invalidInput, "field '\(name)' is not declared in collection '\(self.name)'")
            }
            let type = types[position]
            guard let value = rawValue.typed(as: type) else {
                throw TutelaError(.invalidInput, "field '\(name)': expected \(type.expectation)")
            }
            guard !value.isNull else { continue }
            if let allowed = allowedValues[position], case .string(let text) = value, !allowed.contains(text) {
                let listed = self.fields[position].values?.joined(separator: ", ") ?? ""
                throw TutelaError(.invalidInput, "field '\(name)': expected one of \(listed)")
            }
            if let range = bounds[position] {
                let number: Double? =
                    switch value {
                    case .int(let integer): Double(integer)
                    case .double(let real): real
                    default: nil
                    }
                if let number, !range.contains(number) {
                    throw TutelaError(
                        .invalidInput,
                        "field '\(name)': expected \(self.fields[position].boundsExpectation)"
                    )
                }
            }
            fields[name] = value
            if isRequired[position] { required += 1 }
            if case .string(let text) = value {
                if position == keyPosition { id = text }
                if position == subjectPosition { subject = text }
            }
        }
        if required < requiredCount {
            for definition in self.fields where definition.required && fields[definition.name] == nil {
                throw TutelaError(.invalidInput, "field '\(definition.name)' is required")
            }
        }
        guard let id, !id.isEmpty else {
            throw TutelaError(.invalidInput, "field '\(keyField)': the record key must be a non-empty string")
        }
        guard let subject, !subject.isEmpty else {
            throw TutelaError(.invalidInput, "field '\(subjectField)': the subject must be a non-empty string")
        }
        try Record.checkIdentifier(id, named: "field '\(keyField)': the record key")
        if !keyPartPositions.isEmpty {
            // Required strings, checked above: each part is present.
            let expected = keyPartPositions.map { position -> String in
                if case .string(let text)? = fields[self.fields[position].name] { return text }
                return ""
            }
            .joined(separator: ":")
            guard id == expected else {
                throw TutelaError(
                    .invalidInput,
                    "field '\(keyField)': the record key must be \(keyParts.joined(separator: ":")) of the same record"
                )
            }
        }
        if subjectPosition != keyPosition {
            try Record.checkIdentifier(subject, named: "field '\(subjectField)': the subject")
        }
        return Record(collection: name, id: id, subject: subject, fields: fields)
    }
}

extension Record {
    /// The longest record key or subject, in UTF-8 bytes.
    public static let maximumIdentifierLength = 256

    /// Checks a record key or a subject: not empty, at most `maximumIdentifierLength` bytes,
    /// no white space at either end and no control character.
    ///
    /// Keys and subjects are stored and audited in the clear and printed one per line by
    /// `tutela audit search`: a line break or an escape sequence in one would forge or hide
    /// lines, and a blank one names nobody.
    /// - Parameter name: what the value is, for the message ("the subject").
    /// - Throws: `.invalidInput` naming it, never the value.
    public static func checkIdentifier(_ text: String, named name: String) throws {
        let utf8 = text.utf8
        guard !utf8.isEmpty, utf8.count <= maximumIdentifierLength else {
            throw TutelaError(.invalidInput, "\(name) must be 1 to \(maximumIdentifierLength) bytes long")
        }
        // Printable ASCII without spaces, as most keys are: nothing more to look at.
        if utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) { return }
        guard let first = text.unicodeScalars.first, let last = text.unicodeScalars.last,
            !first.properties.isWhitespace, !last.properties.isWhitespace
        else {
            throw TutelaError(.invalidInput, "\(name) must not begin or end with white space")
        }
        // Control characters: C0, DEL and C1, and the format controls that reorder text.
        for scalar in text.unicodeScalars
        where scalar.isControlCharacter || scalar.properties.generalCategory == .format {
            throw TutelaError(.invalidInput, "\(name) must not contain control characters")
        }
    }
}

/// A value as it arrives from a file or a request, before it is checked against the schema.
public enum RawFieldValue: Sendable, Hashable {
    case null
    case text(String)
    case number(Double, exactInteger: Int64?)
    case bool(Bool)

    /// The value converted to a field type, or nil when it does not fit.
    public func typed(as type: FieldType) -> FieldValue? {
        switch (self, type) {
        case (.null, _):
            return .null
        case (.text(let text), .string):
            return .string(text)
        case (.text(let text), _):
            let trimmed = text.trimmingWhitespace
            if trimmed.isEmpty { return .null }
            return Self.parse(trimmed, as: type)
        case (.number(_, let integer?), .int):
            return .int(integer)
        case (.number(let value, _), .double):
            return value.isFinite ? .double(value) : nil
        case (.number(_, let integer?), .timestamp):
            let (milliseconds, overflow) = integer.multipliedReportingOverflow(by: 1000)
            return overflow ? nil : .timestamp(milliseconds: milliseconds)
        case (.bool(let value), .bool):
            return .bool(value)
        default:
            return nil
        }
    }

    /// Whether a byte may appear in a number written in decimal notation (`-1.5e3`).
    private static func isDecimalNumberByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"): true
        default: byte.isASCIIDigit
        }
    }

    private static func parse(_ text: Substring, as type: FieldType) -> FieldValue? {
        switch type {
        case .string:
            return .string(String(text))
        case .int:
            return Int64(text).map(FieldValue.int)
        case .double:
            // Decimal notation only: `Double(_:)` also reads hexadecimal ("0x3" as 3, "0x1p1"
            // as 2), which no data set means as a number.
            guard text.utf8.allSatisfy(Self.isDecimalNumberByte), let value = Double(text), value.isFinite else {
                return nil
            }
            return .double(value)
        case .bool:
            switch text.lowercased() {
            case "true", "1", "yes": return .bool(true)
            case "false", "0", "no": return .bool(false)
            default: return nil
            }
        case .date:
            return CalendarDate.parse(text).map { FieldValue.date(days: $0) }
        case .timestamp:
            return CalendarDate.parseTimestamp(text).map { FieldValue.timestamp(milliseconds: $0) }
        }
    }
}

/// The data model Tutela stores: collections, their fields, and each field's classification.
///
/// A schema is loaded from `Policies/schema.yaml` by the `Policy` module and validated there; this
/// type only holds the result and answers questions about it.
public final class Schema: Sendable {
    /// The schema file's version number.
    public let version: Int
    /// Field classes by name, such as `pii.email`.
    public let classes: [String: FieldClass]
    /// Collections by name.
    public let collections: [String: CollectionDefinition]
    /// A SHA-256-style digest of the schema's content, hex encoded, set by the loader.
    public let digest: String

    /// Creates a schema from already validated parts.
    public init(
        version: Int,
        classes: [String: FieldClass],
        collections: [String: CollectionDefinition],
        digest: String
    ) {
        self.version = version
        self.classes = classes
        self.collections = collections
        self.digest = digest
    }

    /// The collection with the given name.
    /// - Throws: `TutelaError` with code `.notFound` when the schema has no such collection.
    public func collection(_ name: String) throws -> CollectionDefinition {
        guard let collection = collections[name] else {
            let known = collections.keys.sorted().joined(separator: ", ")
            throw TutelaError(.notFound, "unknown collection '\(name)' (the schema has: \(known))")
        }
        return collection
    }
}

/// A classification of fields, such as `pii.email` or `public`.
public struct FieldClass: Sendable, Hashable {
    /// The class name, dotted: `pii.email`, `quasi.zip`, `public`.
    public let name: String
    /// Whether values of this class are encrypted at rest.
    public let encrypted: Bool
    /// A sentence for administrators.
    public let summary: String

    /// Creates a field class.
    public init(name: String, encrypted: Bool, summary: String) {
        self.name = name
        self.encrypted = encrypted
        self.summary = summary
    }
}

/// The primitive type of a field.
public enum FieldType: String, Sendable, CaseIterable {
    case string
    case int
    case double
    case bool
    case date
    case timestamp

    /// A phrase for error messages, such as "a date YYYY-MM-DD".
    public var expectation: String {
        switch self {
        case .string: return "a string"
        case .int: return "an integer"
        case .double: return "a number"
        case .bool: return "true or false"
        case .date: return "a date YYYY-MM-DD"
        case .timestamp: return "an RFC 3339 timestamp or Unix seconds, in the years 1 to 9999"
        }
    }
}

/// How a value is normalized before it is looked up through a blind index.
public enum LookupNormalization: String, Sendable {
    /// Compared as given, after trimming white space.
    case exact
    /// Lowercased and trimmed.
    case email
    /// Digits only, with a leading `+` kept.
    case phone

    /// The normalized form of a value.
    public func normalize(_ value: String) -> String {
        normalizeASCII(value) ?? normalizeCharacters(value)
    }

    /// The normalized form of a value to index or look up; nil when nothing is left of it to
    /// match by (white space; a phone number without digits, such as "n/a").
    ///
    /// Such values all normalize alike: indexed, a lookup by any one of them ("-", "unknown")
    /// found every record holding another. They get no index entry, and a lookup is refused.
    public func indexable(_ value: String) -> String? {
        let normalized = normalize(value)
        switch self {
        case .exact, .email: return normalized.isEmpty ? nil : normalized
        case .phone: return normalized.isEmpty || normalized == "+" ? nil : normalized
        }
    }

    /// Why `indexable` found nothing to match by, for an error message.
    public var unindexableReason: String {
        switch self {
        case .exact, .email: return "it is empty or white space"
        case .phone: return "it has no digits"
        }
    }

    /// The normalization character by character, for any text.
    func normalizeCharacters(_ value: String) -> String {
        switch self {
        case .exact:
            return String(value.trimmingWhitespace)
        case .email:
            return String(value.trimmingWhitespace).lowercased()
        case .phone:
            let trimmed = value.trimmingWhitespace
            let digits = trimmed.filter { $0.isASCII && $0.isNumber }
            return trimmed.first == "+" ? "+" + digits : digits
        }
    }

    /// The same normalization on the UTF-8 bytes of an all-ASCII value, where characters and
    /// bytes coincide (most e-mail addresses and phone numbers); nil for any other value.
    func normalizeASCII(_ value: String) -> String? {
        var value = value
        return value.withUTF8 { bytes -> String? in
            guard bytes.allSatisfy({ $0 < 0x80 }) else { return nil }
            // Spaces, tabs, line feeds, vertical tabs, form feeds, carriage returns: the ASCII
            // characters that `Character.isWhitespace` accepts.
            func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0d).contains(byte) }
            guard let first = bytes.firstIndex(where: { !isSpace($0) }),
                let last = bytes.lastIndex(where: { !isSpace($0) })
            else { return "" }
            let trimmed = UnsafeBufferPointer(rebasing: bytes[first...last])
            switch self {
            case .exact:
                return String(decoding: trimmed, as: UTF8.self)
            case .email:
                return String(unsafeUninitializedCapacity: trimmed.count) { output in
                    for (index, byte) in trimmed.enumerated() {
                        output[index] = (0x41...0x5a).contains(byte) ? byte | 0x20 : byte
                    }
                    return trimmed.count
                }
            case .phone:
                return String(unsafeUninitializedCapacity: trimmed.count) { output in
                    var count = 0
                    for (index, byte) in trimmed.enumerated()
                    where (0x30...0x39).contains(byte) || (index == 0 && byte == 0x2b) {
                        output[count] = byte
                        count += 1
                    }
                    return count
                }
            }
        }
    }
}

/// One field of a collection.
public final class FieldDefinition: Sendable {
    /// The field name.
    public let name: String
    /// The value type.
    public let type: FieldType
    /// The classification.
    public let fieldClass: FieldClass
    /// Whether every record must carry a non-null value.
    public let required: Bool
    /// When set, a blind index makes exact lookups on this field possible without decryption.
    public let lookup: LookupNormalization?
    /// When set, the only values a string field may hold, in the schema's order.
    public let values: [String]?
    /// When set, the range a number field's values lie in (an open end is infinite).
    public let bounds: ClosedRange<Double>?

    /// Creates a field definition.
    public init(
        name: String,
        type: FieldType,
        fieldClass: FieldClass,
        required: Bool,
        lookup: LookupNormalization?,
        values: [String]? = nil,
        bounds: ClosedRange<Double>? = nil
    ) {
        self.name = name
        self.type = type
        self.fieldClass = fieldClass
        self.required = required
        self.lookup = lookup
        self.values = values
        self.bounds = bounds
    }

    /// What a value out of `bounds` was expected to be, for the error that refuses it.
    public var boundsExpectation: String {
        guard let bounds else { return "" }
        func text(_ number: Double) -> String {
            number.rounded() == number && number.magnitude < 1e15 ? String(Int64(number)) : String(number)
        }
        switch (bounds.lowerBound.isFinite, bounds.upperBound.isFinite) {
        case (true, true): return "a number from \(text(bounds.lowerBound)) to \(text(bounds.upperBound))"
        case (true, false): return "a number of at least \(text(bounds.lowerBound))"
        case (false, true): return "a number of at most \(text(bounds.upperBound))"
        case (false, false): return "a number"
        }
    }

    /// Whether the value is stored encrypted.
    public var isEncrypted: Bool { fieldClass.encrypted }
}

/// A collection of records, such as `customers`.
///
/// Immutable, and a class like `Schema` and `FieldDefinition`: every governed request reads
/// definitions several times, and each copy of a structure would retain every one of its arrays
/// and strings, from both cores at once.
public final class CollectionDefinition: Sendable {
    /// The collection name.
    public let name: String
    /// The field that identifies a record (stored in the clear as the record id).
    public let keyField: String
    /// The field that names the data subject (customer) the record belongs to.
    public let subjectField: String
    /// The fields in declaration order.
    public let fields: [FieldDefinition]
    /// When not empty, the fields whose values, joined by `:`, every record's key must be (a
    /// consent's id is its customer and its purpose).
    public let keyParts: [String]
    private let positions: [String: Int]
    // By position, for checking a record without looking its fields up by name again.
    let types: [FieldType]
    let isRequired: [Bool]
    let allowedValues: [Set<String>?]
    let bounds: [ClosedRange<Double>?]
    let requiredCount: Int
    let keyPosition: Int?
    let subjectPosition: Int?
    let keyPartPositions: [Int]

    /// Creates a collection; the key and subject fields, and the key's parts, must be among
    /// `fields`.
    public init(
        name: String,
        keyField: String,
        subjectField: String,
        fields: [FieldDefinition],
        keyParts: [String] = []
    ) {
        self.name = name
        self.keyField = keyField
        self.subjectField = subjectField
        self.fields = fields
        self.keyParts = keyParts
        var positions: [String: Int] = [:]
        for (index, field) in fields.enumerated() { positions[field.name] = index }
        self.positions = positions
        types = fields.map(\.type)
        isRequired = fields.map(\.required)
        allowedValues = fields.map { $0.values.map(Set.init) }
        bounds = fields.map(\.bounds)
        requiredCount = fields.count { $0.required }
        keyPosition = positions[keyField]
        subjectPosition = positions[subjectField]
        keyPartPositions = keyParts.compactMap { positions[$0] }
    }

    /// The field with the given name, if declared.
    public func field(_ name: String) -> FieldDefinition? {
        positions[name].map { fields[$0] }
    }

    /// The position of a field in `fields`, if declared.
    public func position(of name: String) -> Int? {
        positions[name]
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and line breaks.
    public var trimmingWhitespace: SubSequence {
        guard let first = firstIndex(where: { !$0.isWhitespace }) else { return self[endIndex...] }
        guard let last = lastIndex(where: { !$0.isWhitespace }) else { return self[endIndex...] }
        return self[first...last]
    }
}

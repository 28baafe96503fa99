import Crypto
import Foundation
import TutelaCore

/// Loads and validates `schema.yaml`: field classes and collections.
public enum SchemaLoader {
    /// Loads the schema file.
    /// - Throws: `TutelaError` with `.configurationInvalid` naming file, line and the problem.
    public static func load(file: String) throws -> Schema {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TutelaError(.configurationInvalid, "\(file): cannot be read (is --policies-dir right?)")
        }
        return try parse(try FileReading.text(data, of: file, code: .configurationInvalid), file: file)
    }

    /// Parses schema text.
    public static func parse(_ text: String, file: String = "schema.yaml") throws -> Schema {
        let root = try YAMLNode.parse(text, file: file)
        let top = try root.fields("the schema", allowed: ["version", "classes", "collections"])
        guard let versionNode = top["version"] else { throw root.error("the schema needs 'version: 1'") }
        let version = try versionNode.int("version")
        guard version == 1 else { throw versionNode.error("schema version \(version) is not supported (expected 1)") }

        guard let classesNode = top["classes"] else { throw root.error("the schema needs a 'classes' section") }
        var classes: [String: FieldClass] = [:]
        for (name, node) in try classesNode.mapping("classes") {
            let entry = try node.fields("class '\(name)'", allowed: ["encrypted", "summary"])
            guard let encryptedNode = entry["encrypted"] else {
                throw node.error("class '\(name)' must say 'encrypted: true' or 'encrypted: false'")
            }
            let encrypted = try encryptedNode.bool("encrypted")
            if !encrypted, name.hasPrefix("pii.") || name.hasPrefix("sensitive") {
                throw encryptedNode.error("class '\(name)' holds personal data and must be encrypted")
            }
            classes[name] = FieldClass(
                name: name,
                encrypted: encrypted,
                summary: try entry["summary"]?.string("summary") ?? ""
            )
        }

        guard let collectionsNode = top["collections"] else {
            throw root.error("the schema needs a 'collections' section")
        }
        var collections: [String: CollectionDefinition] = [:]
        for (name, node) in try collectionsNode.mapping("collections") {
            guard Self.isIdentifier(name) else {
                throw node.error(
                    "collection name '\(name)' must be 1 to 64 lowercase letters, digits and underscores, from a letter"
                )
            }
            collections[name] = try collection(name, node, classes: classes)
        }
        let digest = Hex.encode(SHA256.hash(data: Data(text.utf8)))
        return Schema(version: version, classes: classes, collections: collections, digest: digest)
    }

    private static func collection(
        _ name: String,
        _ node: YAMLNode,
        classes: [String: FieldClass]
    ) throws
        -> CollectionDefinition
    {
        let entry = try node.fields(
            "collection '\(name)'",
            allowed: ["key", "key_from", "subject", "fields", "summary"]
        )
        guard let keyNode = entry["key"], let subjectNode = entry["subject"], let fieldsNode = entry["fields"] else {
            throw node.error("collection '\(name)' needs 'key', 'subject' and 'fields'")
        }
        var fields: [FieldDefinition] = []
        for (fieldName, fieldNode) in try fieldsNode.mapping("fields of '\(name)'") {
            guard Self.isIdentifier(fieldName) else {
                throw fieldNode.error(
                    "field name '\(fieldName)' must be 1 to 64 lowercase letters, digits and underscores, from a letter"
                )
            }
            let spec = try fieldNode.fields(
                "field '\(name).\(fieldName)'",
                allowed: ["type", "class", "required", "lookup", "values", "min", "max", "summary"]
            )
            guard let typeNode = spec["type"], let classNode = spec["class"] else {
                throw fieldNode.error("field '\(name).\(fieldName)' needs 'type' and 'class'")
            }
            let typeName = try typeNode.string("type")
            guard let type = FieldType(rawValue: typeName) else {
                let known = FieldType.allCases.map(\.rawValue).joined(separator: ", ")
                throw typeNode.error("unknown type '\(typeName)' (known: \(known))")
            }
            let className = try classNode.string("class")
            guard let fieldClass = classes[className] else {
                throw classNode.error("unknown field class '\(className)' (declare it under 'classes')")
            }
            var lookup: LookupNormalization?
            if let lookupNode = spec["lookup"] {
                let lookupName = try lookupNode.string("lookup")
                guard let normalization = LookupNormalization(rawValue: lookupName) else {
                    throw lookupNode.error("unknown lookup '\(lookupName)' (known: exact, email, phone)")
                }
                guard type == .string else { throw lookupNode.error("only string fields can have a lookup") }
                lookup = normalization
            }
            var values: [String]?
            if let valuesNode = spec["values"] {
                values = try Self.values(valuesNode, field: "\(name).\(fieldName)", type: type)
            }
            fields.append(
                FieldDefinition(
                    name: fieldName,
                    type: type,
                    fieldClass: fieldClass,
                    required: try spec["required"]?.bool("required") ?? false,
                    lookup: lookup,
                    values: values,
                    bounds: try Self.bounds(
                        min: spec["min"],
                        max: spec["max"],
                        field: "\(name).\(fieldName)",
                        type: type
                    )
                )
            )
        }
        // Record payloads count their fields in 16 bits; no real collection comes near this.
        guard fields.count <= 1024 else { throw fieldsNode.error("collection '\(name)' has more than 1024 fields") }
        let keyParts =
            try entry["key_from"]?.sequence("key_from of '\(name)'").map { try $0.string("a key part") } ?? []
        let definition = CollectionDefinition(
            name: name,
            keyField: try keyNode.string("key"),
            subjectField: try subjectNode.string("subject"),
            fields: fields,
            keyParts: keyParts
        )
        for (role, node, fieldName) in [
            ("key", keyNode, definition.keyField), ("subject", subjectNode, definition.subjectField),
        ] {
            guard let field = definition.field(fieldName) else {
                throw node.error("the \(role) field '\(fieldName)' is not a field of '\(name)'")
            }
            guard field.type == .string, field.required else {
                throw node.error("the \(role) field '\(fieldName)' must be a required string")
            }
            guard !field.isEncrypted else {
                throw node.error(
                    "the \(role) field '\(fieldName)' is stored in the clear, so its class must not be encrypted"
                )
            }
        }
        if let partsNode = entry["key_from"] {
            try checkKeyParts(of: definition, at: partsNode)
        }
        return definition
    }

    /// Checks a collection's `key_from`: two or more distinct fields other than the key, each a
    /// required string stored in the clear (the key they make is stored in the clear).
    private static func checkKeyParts(of definition: CollectionDefinition, at node: YAMLNode) throws {
        let parts = definition.keyParts
        guard parts.count >= 2, Set(parts).count == parts.count else {
            throw node.error("'key_from' of '\(definition.name)' must list two or more distinct fields")
        }
        for part in parts {
            guard let field = definition.field(part), part != definition.keyField else {
                throw node.error("'key_from' of '\(definition.name)': '\(part)' is not a field other than the key")
            }
            guard field.type == .string, field.required, !field.isEncrypted else {
                throw node.error(
                    "'key_from' of '\(definition.name)': '\(part)' must be a required string stored in the clear"
                )
            }
        }
    }

    /// The range a number field is limited to by its `min` and `max` (either may be left out);
    /// nil when it has neither.
    private static func bounds(
        min: YAMLNode?,
        max: YAMLNode?,
        field: String,
        type: FieldType
    ) throws -> ClosedRange<Double>? {
        guard let given = min ?? max else { return nil }
        guard type == .int || type == .double else {
            throw given.error("only int and double fields can have 'min' and 'max'")
        }
        let lower = try min?.number("'min' of '\(field)'") ?? -.infinity
        let upper = try max?.number("'max' of '\(field)'") ?? .infinity
        guard lower <= upper else { throw given.error("'min' of '\(field)' is above its 'max'") }
        return lower...upper
    }

    /// The values a string field is limited to: 1 to 256 distinct, non-empty strings of at most
    /// 64 bytes without control characters (they are listed back in the error for a value that
    /// is not among them).
    private static func values(_ node: YAMLNode, field: String, type: FieldType) throws -> [String] {
        guard type == .string else { throw node.error("only string fields can have 'values'") }
        let items = try node.sequence("values of '\(field)'")
        guard (1...256).contains(items.count) else {
            throw node.error("'values' of '\(field)' must list 1 to 256 values")
        }
        var values: [String] = []
        for item in items {
            let value = try item.string("a value of '\(field)'")
            guard (1...64).contains(value.utf8.count),
                !value.unicodeScalars.contains(where: \.isControlCharacter)
            else {
                throw item.error("a value of '\(field)' must be 1 to 64 bytes without control characters")
            }
            guard !values.contains(value) else { throw item.error("'\(value)' is listed twice in '\(field)'") }
            values.append(value)
        }
        return values
    }

    /// Lowercase letters, digits and underscores, from a letter, at most 64 bytes: record
    /// payloads store a field name's length in one byte.
    private static func isIdentifier(_ name: String) -> Bool {
        guard name.utf8.count <= 64, let first = name.utf8.first,
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first)
        else { return false }
        return name.utf8.allSatisfy {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                || $0 == UInt8(ascii: "_")
        }
    }
}

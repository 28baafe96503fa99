import Foundation
import TutelaCore
import Yams

extension TutelaError.Code {
    /// A policy or schema file does not parse or does not validate.
    public static let configurationInvalid = Self("configuration_invalid")
}

/// A YAML node with the file it came from, so every complaint names file and line.
package struct YAMLNode {
    package let node: Node
    package let file: String

    /// Parses a YAML file.
    /// - Throws: `TutelaError` with `.configurationInvalid` naming the file and line.
    package static func load(file: String) throws -> YAMLNode {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TutelaError(.configurationInvalid, "\(file): cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TutelaError(.configurationInvalid, "\(file): is not UTF-8 text")
        }
        return try parse(text, file: file)
    }

    /// Parses YAML text.
    package static func parse(_ text: String, file: String) throws -> YAMLNode {
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw TutelaError(.configurationInvalid, "\(file): is empty")
            }
            return YAMLNode(node: node, file: file)
        } catch let error as YamlError {
            throw TutelaError(.configurationInvalid, "\(file): \(Self.describe(error))")
        }
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            return "line \(mark.line), column \(mark.column): \(problem)" + (context.map { " \($0.text)" } ?? "")
        case .composer(let context, let problem, let mark, _):
            return "line \(mark.line), column \(mark.column): \(problem)" + (context.map { " \($0.text)" } ?? "")
        case .duplicatedKeysInMapping(let duplicates, let context):
            // The mark is the first of the repeated keys.
            let keys = duplicates.sorted().map { "'\($0.escapingControlCharacters)'" }.joined(separator: ", ")
            return "line \(context.mark.line): \(keys) is given again later in the same mapping"
        default:
            return "not valid YAML"
        }
    }

    /// "file:line" for messages.
    package var location: String {
        "\(file):\(node.mark?.line ?? 0)"
    }

    /// An error at this node.
    package func error(_ explanation: String) -> TutelaError {
        TutelaError(.configurationInvalid, "\(location): \(explanation)")
    }

    /// The entries of a mapping, in file order.
    package func mapping(_ what: String) throws -> [(key: String, value: YAMLNode)] {
        guard let mapping = node.mapping else { throw error("\(what) must be a mapping") }
        return try mapping.map { key, value in
            guard let name = key.string else { throw YAMLNode(node: key, file: file).error("keys must be text") }
            return (name, YAMLNode(node: value, file: file))
        }
    }

    /// The mapping's entries by key, refusing keys outside `allowed` (which catches typos).
    package func fields(_ what: String, allowed: Set<String>) throws -> [String: YAMLNode] {
        var result: [String: YAMLNode] = [:]
        for (key, value) in try mapping(what) {
            guard allowed.contains(key) else {
                throw value.error(
                    "unknown key '\(key)' in \(what) (allowed: \(allowed.sorted().joined(separator: ", ")))"
                )
            }
            result[key] = value
        }
        return result
    }

    /// The items of a sequence.
    package func sequence(_ what: String) throws -> [YAMLNode] {
        guard let sequence = node.sequence else { throw error("\(what) must be a list") }
        return sequence.map { YAMLNode(node: $0, file: file) }
    }

    /// A scalar as text.
    package func string(_ what: String) throws -> String {
        guard case .scalar(let scalar) = node else { throw error("\(what) must be a single value") }
        return scalar.string
    }

    /// A scalar as an integer.
    package func int(_ what: String) throws -> Int {
        guard let value = node.int else { throw error("\(what) must be an integer") }
        return value
    }

    /// A scalar as a finite number.
    package func number(_ what: String) throws -> Double {
        guard let value = node.float, value.isFinite else { throw error("\(what) must be a finite number") }
        return value
    }

    /// A scalar as a boolean.
    package func bool(_ what: String) throws -> Bool {
        guard let value = node.bool else { throw error("\(what) must be true or false") }
        return value
    }
}

import TutelaCore

/// The value types of the condition language.
public enum ValueType: String, Sendable, Hashable {
    case string
    case int
    case bool
}

/// A condition over principal, request and context attributes: a small, typed, side-effect free
/// expression language, parsed and type-checked when policies load.
///
/// ```
/// condition := or
/// or        := and ("||" and)*
/// and       := not ("&&" not)*
/// not       := "!" not | compare
/// compare   := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand | "in" list)?
/// operand   := literal | path | "(" condition ")"
/// path      := ("principal" | "context" | "request") "." name
/// literal   := "text" | integer | true | false
/// list      := "[" literal ("," literal)* "]"
/// ```
///
/// `request.action`, `request.purpose`, `request.collection` and `principal.name` are strings;
/// other attributes are declared with their types in `attributes.yaml`.
indirect enum Expression: Sendable {
    case literal(AttributeValue)
    case path(Root, String, ValueType)
    case not(Expression)
    case and(Expression, Expression)
    case or(Expression, Expression)
    case compare(Comparison, Expression, Expression)
    case member(Expression, [AttributeValue])

    enum Root: String, Sendable {
        case principal
        case context
        case request
    }

    enum Comparison: String, Sendable {
        case equal = "=="
        case notEqual = "!="
        case less = "<"
        case lessOrEqual = "<="
        case greater = ">"
        case greaterOrEqual = ">="
    }

    /// Whether it reads an attribute of the request context.
    var readsContext: Bool {
        switch self {
        case .literal: false
        case .path(let root, _, _): root == .context
        case .not(let inner), .member(let inner, _): inner.readsContext
        case .and(let left, let right), .or(let left, let right), .compare(_, let left, let right):
            left.readsContext || right.readsContext
        }
    }

    /// Evaluates; nil when an attribute it reads is missing, so that callers can fail closed.
    func evaluate(_ request: AccessRequest) -> AttributeValue? {
        switch self {
        case .literal(let value):
            return value
        case .path(let root, let name, _):
            switch root {
            case .principal:
                if name == "name" { return request.principal.map { .string($0.name) } }
                return request.principal?.attributes[name]
            case .context:
                return request.context[name]
            case .request:
                switch name {
                case "action": return .string(request.action.rawValue)
                case "purpose": return .string(request.purpose)
                case "collection": return .string(request.collection)
                default: return nil
                }
            }
        case .not(let inner):
            guard case .bool(let value)? = inner.evaluate(request) else { return nil }
            return .bool(!value)
        case .and(let left, let right):
            let lhs = left.evaluate(request)
            if case .bool(false)? = lhs { return .bool(false) }
            let rhs = right.evaluate(request)
            if case .bool(false)? = rhs { return .bool(false) }
            guard case .bool(true)? = lhs, case .bool(true)? = rhs else { return nil }
            return .bool(true)
        case .or(let left, let right):
            let lhs = left.evaluate(request)
            if case .bool(true)? = lhs { return .bool(true) }
            let rhs = right.evaluate(request)
            if case .bool(true)? = rhs { return .bool(true) }
            guard case .bool(false)? = lhs, case .bool(false)? = rhs else { return nil }
            return .bool(false)
        case .compare(let comparison, let left, let right):
            guard let lhs = left.evaluate(request), let rhs = right.evaluate(request) else { return nil }
            return .bool(Self.compare(comparison, lhs, rhs))
        case .member(let inner, let list):
            guard let value = inner.evaluate(request) else { return nil }
            return .bool(list.contains(value))
        }
    }

    private static func compare(_ comparison: Comparison, _ lhs: AttributeValue, _ rhs: AttributeValue) -> Bool {
        switch comparison {
        case .equal: return lhs == rhs
        case .notEqual: return lhs != rhs
        default: break
        }
        let order: Int
        switch (lhs, rhs) {
        case (.int(let a), .int(let b)): order = a < b ? -1 : (a == b ? 0 : 1)
        case (.string(let a), .string(let b)): order = a < b ? -1 : (a == b ? 0 : 1)
        default: return false
        }
        switch comparison {
        case .less: return order < 0
        case .lessOrEqual: return order <= 0
        case .greater: return order > 0
        case .greaterOrEqual: return order >= 0
        case .equal, .notEqual: return false
        }
    }
}

/// Parses and type-checks conditions against declared attributes.
struct ExpressionParser {
    /// Declared attribute types per root.
    let principalAttributes: [String: ValueType]
    let contextAttributes: [String: ValueType]

    private enum Token: Equatable {
        case identifier(String)
        case string(String)
        case integer(Int64)
        case symbol(String)
        case end
    }

    private var tokens: [Token] = []
    private var position = 0
    // Parentheses and '!' open around the token being parsed, and operators parsed so far:
    // both bounded, so that neither parsing, evaluating nor freeing a condition recurses
    // deeper than a few hundred calls, whatever a policy file holds.
    private var nesting = 0
    private var operators = 0

    /// The most parentheses and '!' one condition may nest.
    static let maximumNesting = 32
    /// The most operators ('&&', '||', '!', comparisons and 'in') one condition may hold.
    static let maximumOperators = 64

    init(principalAttributes: [String: ValueType], contextAttributes: [String: ValueType]) {
        self.principalAttributes = principalAttributes
        self.contextAttributes = contextAttributes
    }

    /// Parses a boolean condition.
    /// - Throws: a plain explanation (the caller adds file and line).
    mutating func parseCondition(_ text: String) throws(ConditionError) -> Expression {
        tokens = try Self.tokenize(text)
        position = 0
        nesting = 0
        operators = 0
        let (expression, type) = try parseOr()
        guard tokens[position] == .end else { throw ConditionError("unexpected text after the condition") }
        guard type == .bool else {
            throw ConditionError("a condition must be true or false, this is a \(type.rawValue)")
        }
        return expression
    }

    private mutating func parseOr() throws(ConditionError) -> (Expression, ValueType) {
        var (left, type) = try parseAnd()
        while tokens[position] == .symbol("||") {
            position += 1
            try countOperator()
            let (right, rightType) = try parseAnd()
            guard type == .bool, rightType == .bool else { throw ConditionError("'||' joins conditions, not values") }
            left = .or(left, right)
            type = .bool
        }
        return (left, type)
    }

    private mutating func parseAnd() throws(ConditionError) -> (Expression, ValueType) {
        var (left, type) = try parseNot()
        while tokens[position] == .symbol("&&") {
            position += 1
            try countOperator()
            let (right, rightType) = try parseNot()
            guard type == .bool, rightType == .bool else { throw ConditionError("'&&' joins conditions, not values") }
            left = .and(left, right)
            type = .bool
        }
        return (left, type)
    }

    private mutating func parseNot() throws(ConditionError) -> (Expression, ValueType) {
        if tokens[position] == .symbol("!") {
            position += 1
            try countOperator()
            try enterNesting()
            defer { nesting -= 1 }
            let (inner, type) = try parseNot()
            guard type == .bool else { throw ConditionError("'!' applies to a condition, not a \(type.rawValue)") }
            return (.not(inner), .bool)
        }
        return try parseComparison()
    }

    private mutating func parseComparison() throws(ConditionError) -> (Expression, ValueType) {
        let (left, leftType) = try parseOperand()
        if case .identifier("in") = tokens[position] {
            position += 1
            try countOperator()
            let list = try parseList()
            for item in list where Self.type(of: item) != leftType {
                throw ConditionError(
                    "'in' compares a \(leftType.rawValue) with a list holding a \(Self.type(of: item).rawValue)"
                )
            }
            return (.member(left, list), .bool)
        }
        guard case .symbol(let symbol) = tokens[position], let comparison = Expression.Comparison(rawValue: symbol)
        else {
            return (left, leftType)
        }
        position += 1
        try countOperator()
        let (right, rightType) = try parseOperand()
        guard leftType == rightType else {
            throw ConditionError("'\(symbol)' compares a \(leftType.rawValue) with a \(rightType.rawValue)")
        }
        if leftType == .bool, comparison != .equal, comparison != .notEqual {
            throw ConditionError("'\(symbol)' does not order true and false")
        }
        return (.compare(comparison, left, right), .bool)
    }

    private mutating func parseOperand() throws(ConditionError) -> (Expression, ValueType) {
        let token = tokens[position]
        position += 1
        switch token {
        case .string(let text): return (.literal(.string(text)), .string)
        case .integer(let number): return (.literal(.int(number)), .int)
        case .identifier("true"): return (.literal(.bool(true)), .bool)
        case .identifier("false"): return (.literal(.bool(false)), .bool)
        case .symbol("("):
            try enterNesting()
            defer { nesting -= 1 }
            let inner = try parseOr()
            guard tokens[position] == .symbol(")") else { throw ConditionError("a '(' is never closed") }
            position += 1
            return inner
        case .identifier(let name):
            return try resolvePath(name)
        case .end:
            throw ConditionError("the condition ends too early")
        case .symbol(let symbol):
            throw ConditionError("unexpected '\(symbol)'")
        }
    }

    private mutating func countOperator() throws(ConditionError) {
        operators += 1
        guard operators <= Self.maximumOperators else {
            throw ConditionError(
                "the condition is too long: it may hold at most \(Self.maximumOperators) operators ('&&', '||', '!', comparisons and 'in')"
            )
        }
    }

    private mutating func enterNesting() throws(ConditionError) {
        nesting += 1
        guard nesting <= Self.maximumNesting else {
            throw ConditionError(
                "the condition nests too deeply: at most \(Self.maximumNesting) levels of '(' and '!'"
            )
        }
    }

    private func resolvePath(_ path: String) throws(ConditionError) -> (Expression, ValueType) {
        let parts = path.split(separator: ".", maxSplits: 1).map(String.init)
        guard parts.count == 2, let root = Expression.Root(rawValue: parts[0]) else {
            throw ConditionError("unknown name '\(path)': use principal.NAME, context.NAME or request.NAME")
        }
        let name = parts[1]
        let type: ValueType?
        switch root {
        case .principal: type = name == "name" ? .string : principalAttributes[name]
        case .context: type = contextAttributes[name]
        case .request: type = ["action", "purpose", "collection"].contains(name) ? .string : nil
        }
        guard let type else {
            throw ConditionError("unknown attribute '\(path)' (declare it in attributes.yaml)")
        }
        return (.path(root, name, type), type)
    }

    private mutating func parseList() throws(ConditionError) -> [AttributeValue] {
        guard tokens[position] == .symbol("[") else { throw ConditionError("'in' needs a list in [ ]") }
        position += 1
        var items: [AttributeValue] = []
        while true {
            switch tokens[position] {
            case .string(let text): items.append(.string(text))
            case .integer(let number): items.append(.int(number))
            case .identifier("true"): items.append(.bool(true))
            case .identifier("false"): items.append(.bool(false))
            default: throw ConditionError("a list holds literals only")
            }
            position += 1
            if tokens[position] == .symbol("]") {
                position += 1
                return items
            }
            guard tokens[position] == .symbol(",") else { throw ConditionError("list items are separated by ','") }
            position += 1
        }
    }

    private static func type(of value: AttributeValue) -> ValueType {
        switch value {
        case .string: return .string
        case .int: return .int
        case .bool: return .bool
        }
    }

    private static func tokenize(_ text: String) throws(ConditionError) -> [Token] {
        var tokens: [Token] = []
        let characters = Array(text.unicodeScalars)
        var index = 0
        while index < characters.count {
            let character = characters[index]
            if character.properties.isWhitespace {
                index += 1
            } else if character == "\"" {
                var value = ""
                index += 1
                while index < characters.count, characters[index] != "\"" {
                    value.unicodeScalars.append(characters[index])
                    index += 1
                }
                guard index < characters.count else { throw ConditionError("a string is never closed") }
                index += 1
                tokens.append(.string(value))
            } else if ("0"..."9").contains(character)
                || (character == "-" && index + 1 < characters.count
                    && ("0"..."9").contains(characters[index + 1]))
            {
                var digits = String(character)
                index += 1
                while index < characters.count, ("0"..."9").contains(characters[index]) {
                    digits.unicodeScalars.append(characters[index])
                    index += 1
                }
                guard let number = Int64(digits) else { throw ConditionError("the number \(digits) is too large") }
                tokens.append(.integer(number))
            } else if character.properties.isAlphabetic || character == "_" {
                var name = ""
                while index < characters.count,
                    characters[index].properties.isAlphabetic || characters[index] == "_" || characters[index] == "."
                        || ("0"..."9").contains(characters[index])
                {
                    name.unicodeScalars.append(characters[index])
                    index += 1
                }
                tokens.append(.identifier(name))
            } else {
                let two = index + 1 < characters.count ? String(character) + String(characters[index + 1]) : ""
                if ["==", "!=", "<=", ">=", "&&", "||"].contains(two) {
                    tokens.append(.symbol(two))
                    index += 2
                } else if "()[],<>!".unicodeScalars.contains(character) {
                    tokens.append(.symbol(String(character)))
                    index += 1
                } else {
                    throw ConditionError("unexpected character '\(character)'")
                }
            }
        }
        tokens.append(.end)
        return tokens
    }
}

/// Why a condition does not parse or type-check.
struct ConditionError: Error {
    let message: String

    init(_ message: String) {
        self.message = message
    }
}

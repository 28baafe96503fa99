import Foundation

/// One typed value of a record field.
public enum FieldValue: Sendable, Hashable {
    case null
    case string(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    /// A calendar date without time, as days since 1970-01-01.
    case date(days: Int32)
    /// An instant, as milliseconds since 1970-01-01T00:00:00Z.
    case timestamp(milliseconds: Int64)

    /// Whether the value is `null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}

extension FieldValue {
    /// The value rendered for output (JSON-compatible text form for dates and times).
    public var displayText: String {
        switch self {
        case .null: return "null"
        case .string(let value): return value
        case .int(let value): return String(value)
        case .double(let value): return String(value)
        case .bool(let value): return value ? "true" : "false"
        case .date(let days): return CalendarDate.format(days: days)
        case .timestamp(let milliseconds): return CalendarDate.formatTimestamp(milliseconds: milliseconds)
        }
    }
}

import Foundation
import GRDB
import TutelaCore

extension Row {
    /// The value at `index` as `Value`, or a `.storage` error naming `what` when the stored value
    /// has another type (a damaged or altered database).
    ///
    /// GRDB's typed subscript stops the process on such a value, and its own decoding error
    /// quotes the whole row; this error names the column's position only.
    package func stored<Value: DatabaseValueConvertible>(
        _ index: Int,
        of what: @autoclosure () -> String
    ) throws -> Value {
        do {
            return try decode(Value.self, atIndex: index)
        } catch {
            throw TutelaError(
                .storage,
                "\(what()) is damaged or was altered: its column \(index + 1) does not hold a value of its type"
            )
        }
    }

    /// The bytes of a blob or text column; empty for a value of any other type, which a damaged
    /// row may hold: no event parses from it and no hash matches it.
    package func storedBytes(_ index: Int) -> [UInt8] {
        let value: DatabaseValue = self[index]
        switch value.storage {
        case .blob(let data): return Array(data)
        case .string(let text): return Array(text.utf8)
        default: return []
        }
    }
}

extension Row {
    /// The value of an integer column; nil for a value of any other type.
    package func storedInteger(_ index: Int) -> Int64? {
        let value: DatabaseValue = self[index]
        guard case .int64(let integer) = value.storage else { return nil }
        return integer
    }
}

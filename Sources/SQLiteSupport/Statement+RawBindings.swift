import GRDB

extension Statement {
    /// Runs the statement with `arguments` bound straight to SQLite and resets it.
    ///
    /// A bulk write runs several statements per record; binding through GRDB's
    /// `StatementArguments` (an existential and a `DatabaseValue` per argument) cost more than
    /// SQLite's own work for each. The statement still comes from GRDB's cache and runs inside
    /// GRDB's transaction or snapshot.
    /// - Returns: whether it returned a row.
    @discardableResult
    package func run(binding arguments: [SQLitePointReader.Argument]) throws -> Bool {
        try run(binding: arguments) { _ in true } ?? false
    }

    /// Runs the statement with `arguments` bound straight to SQLite, decodes its first row if
    /// there is one, and resets it.
    package func run<T>(
        binding arguments: [SQLitePointReader.Argument],
        decode: (borrowing SQLitePointReader.Columns) throws -> T
    ) throws -> T? {
        try SQLitePointReader.run(sqliteStatement, arguments) { statement in
            guard try SQLitePointReader.step(statement) else { return nil }
            return try decode(SQLitePointReader.Columns(statement: statement))
        }
    }

    /// Runs the statement with the values `bind` gives bound straight to SQLite, in order, and
    /// resets it.
    /// - Returns: whether it returned a row.
    @discardableResult
    package func run(bindingWith bind: (inout SQLitePointReader.Binder) -> Void) throws -> Bool {
        try SQLitePointReader.run(sqliteStatement, binding: bind) { try SQLitePointReader.step($0) }
    }
}

import GRDB
import GRDBSQLite
import TutelaCore

extension Statement {
    /// Runs the statement with `arguments` bound straight to SQLite and resets it.
    ///
    /// A bulk write runs several statements per record; binding through GRDB's
    /// `StatementArguments` (an existential and a `DatabaseValue` per argument) cost more than
    /// SQLite's own work for each. The statement still comes from GRDB's cache and runs inside
    /// GRDB's transaction or snapshot.
    /// - Returns: whether it returned a row.
    @discardableResult
    func run(binding arguments: [SQLitePointReader.Argument]) throws -> Bool {
        try run(binding: arguments) { _ in true } ?? false
    }

    /// Runs the statement with `arguments` bound straight to SQLite, decodes its first row if
    /// there is one, and resets it.
    func run<T>(
        binding arguments: [SQLitePointReader.Argument],
        decode: (borrowing SQLitePointReader.Columns) throws -> T
    ) throws -> T? {
        let statement = sqliteStatement
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        let bound = SQLitePointReader.Argument.bind(arguments, to: statement)
        guard bound == SQLITE_OK else { throw failure(bound) }
        switch sqlite3_step(statement) {
        case SQLITE_DONE: return nil
        case SQLITE_ROW: return try decode(SQLitePointReader.Columns(statement: statement))
        case let code: throw failure(code)
        }
    }

    /// SQLite's message for a failed call; it names the failure, never a bound value.
    private func failure(_ code: Int32) -> TutelaError {
        let message = sqlite3_db_handle(sqliteStatement).flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
        return TutelaError(.storage, "the database statement failed: SQLite error \(code): \(message ?? "unknown")")
    }
}

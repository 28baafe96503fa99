import Foundation
import GRDB
import SQLiteSupport
import Testing
import TutelaCore

@Suite("SQLite bindings")
struct SQLiteBindingTests {
    @Test("text is bound byte for byte: empty, non-ASCII and with an embedded NUL; empty text is not NULL")
    func textRoundTrip() throws {
        let path = Self.scratchPath()
        defer { Self.remove(path) }
        let pool = try DatabasePool(path: path)
        let texts = ["", "plain", "Zoë · 東京 · 😀", "a\u{0}b", String(repeating: "x", count: 5000)]
        try pool.write { db in
            try db.execute(sql: "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
            let insert = try db.cachedStatement(sql: "INSERT INTO t (k, v) VALUES (?, ?)")
            for (index, text) in texts.enumerated() { try insert.run(binding: [.int(index), .text(text)]) }
        }
        let reader = SQLitePointReader(path: path)
        for (index, text) in texts.enumerated() {
            let stored = try reader.fetchOne(
                "SELECT v, v IS NULL, length(CAST(v AS BLOB)) FROM t WHERE k = ?",
                [.int(index)]
            ) {
                ($0.text(0), $0.int(1), $0.int(2))
            }
            #expect(stored?.0 == text)
            #expect(stored?.1 == 0)
            #expect(stored?.2 == text.utf8.count)
            // Bound as a query argument too.
            let found = try reader.fetchOne("SELECT k FROM t WHERE v = ?", [.text(text)]) { $0.int(0) }
            #expect(found == index)
        }
    }

    @Test("values bound one by one keep their kinds; a failed bind throws and leaves the statement usable")
    func binderKindsAndFailure() throws {
        let path = Self.scratchPath()
        defer { Self.remove(path) }
        let pool = try DatabasePool(path: path)
        try pool.write { db in
            try db.execute(sql: "CREATE TABLE t (k INTEGER PRIMARY KEY, v)")
            let insert = try db.cachedStatement(sql: "INSERT INTO t (k, v) VALUES (?, ?)")
            try insert.run {
                $0.int(1)
                $0.blob([])
            }
            try insert.run {
                $0.int(2)
                $0.blob([0, 255, 7])
            }
            try insert.run {
                $0.int(3)
                $0.null()
            }
            try insert.run {
                $0.int(4)
                $0.text("zoë")
            }
            try insert.run {
                $0.int(5)
                $0.bind(.int(-9))
            }
            // A third value for two parameters: SQLite refuses it, nothing is inserted.
            let failed = #expect(throws: TutelaError.self) {
                try insert.run {
                    $0.int(6)
                    $0.int(6)
                    $0.int(6)
                }
            }
            #expect(failed?.code == .storage)
            try insert.run {
                $0.int(7)
                $0.int(70)
            }
        }
        let rows = try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT k, typeof(v), length(v) FROM t ORDER BY k").map {
                [$0[0] as Int, $0[1] as String, $0[2] as Int?] as [Any?]
            }
        }
        #expect(rows.map { $0[0] as? Int } == [1, 2, 3, 4, 5, 7])
        #expect(rows.map { $0[1] as? String } == ["blob", "blob", "null", "text", "integer", "integer"])
        #expect(rows.map { $0[2] as? Int } == [0, 3, nil, 3, 2, 2])
    }

    /// A database path in the temporary directory, not yet used.
    private static func scratchPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("tutela-bind-\(UUID().uuidString).sqlite").path
    }

    /// Removes a database and the files SQLite keeps beside it.
    private static func remove(_ path: String) {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }
}

import Foundation
import GRDB
import SQLiteSupport
import Testing

@Suite("SQLite bindings")
struct SQLiteBindingTests {
    @Test("text is bound byte for byte: empty, non-ASCII and with an embedded NUL; empty text is not NULL")
    func textRoundTrip() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tutela-bind-\(UUID().uuidString).sqlite"
        )
        .path
        defer { try? FileManager.default.removeItem(atPath: path) }
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
}

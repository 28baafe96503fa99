import Foundation
import SQLiteSupport
import Testing

@Suite("Rows inserted a chunk per statement")
struct RowChunkTests {
    @Test("rows are cut into chunks of 64, then by the binary digits of the rest, in order and without gaps")
    func split() {
        let chunks = RowChunk.split(5..<(5 + 64 * 2 + 37))
        #expect(chunks.map(\.rows.count) == [64, 64, 32, 4, 1])
        #expect(chunks.allSatisfy { $0.rows.count == 1 << $0.shift })
        #expect(chunks.first?.rows.lowerBound == 5)
        #expect(chunks.last?.rows.upperBound == 5 + 64 * 2 + 37)
        #expect(zip(chunks, chunks.dropFirst()).allSatisfy { $0.rows.upperBound == $1.rows.lowerBound })
        #expect(RowChunk.split(3..<3).isEmpty)
    }

    @Test("statement n lists 2^n rows")
    func statements() {
        let statements = RowChunk.statements(row: "(?, ?)") { "INSERT INTO t (a, b) VALUES \($0)" }
        #expect(statements.count == RowChunk.largestShift + 1)
        #expect(statements[0] == "INSERT INTO t (a, b) VALUES (?, ?)")
        #expect(statements[2] == "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?), (?, ?)")
        #expect(statements[6].components(separatedBy: "(?, ?)").count - 1 == 64)
    }
}

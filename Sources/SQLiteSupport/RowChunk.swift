/// Rows inserted a chunk per statement.
///
/// A statement's fixed cost (its program started, the cursors of its table and indexes opened,
/// its reset) is then paid once per chunk instead of once per row. A chunk holds a power of two
/// of rows, so that one cached statement per size serves every count.
package struct RowChunk: Sendable {
    /// Which rows.
    package let rows: Range<Int>
    /// The shift of the row count (`rows.count == 1 << shift`): the index of its statement.
    package let shift: Int

    /// The most rows one statement inserts: 2^6 = 64.
    package static let largestShift = 6

    /// Cuts `rows` into chunks of the largest size, then the rest by its binary digits.
    package static func split(_ rows: Range<Int>) -> [RowChunk] {
        var chunks: [RowChunk] = []
        var start = rows.lowerBound
        var shift = largestShift
        while start < rows.upperBound {
            while rows.upperBound - start < 1 << shift { shift -= 1 }
            chunks.append(RowChunk(rows: start..<start + (1 << shift), shift: shift))
            start += 1 << shift
        }
        return chunks
    }

    /// One statement per chunk size, index n for 2^n rows: `make` is given the list of that many
    /// copies of `row`, separated by commas, to put after `VALUES`.
    package static func statements(row: String, _ make: (String) -> String) -> [String] {
        (0...largestShift).map { make(repeatElement(row, count: 1 << $0).joined(separator: ", ")) }
    }
}

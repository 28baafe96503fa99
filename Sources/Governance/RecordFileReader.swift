import Foundation
import TutelaCore

/// The formats `tutela data import` reads.
public enum RecordFileFormat: String, Sendable, CaseIterable {
    /// Comma-separated values with a header row of field names (RFC 4180 quoting).
    case csv
    /// One JSON object per line.
    case jsonl

    /// The format a file name suggests, if any.
    public init?(fileName: String) {
        let lowercased = fileName.lowercased()
        if lowercased.hasSuffix(".csv") {
            self = .csv
        } else if lowercased.hasSuffix(".jsonl") || lowercased.hasSuffix(".ndjson") {
            self = .jsonl
        } else {
            return nil
        }
    }
}

/// One row of an input file with the line it starts on.
public struct RawRow: Sendable {
    /// The 1-based line number.
    public var line: Int
    /// Values by field name.
    public var values: [String: RawFieldValue]
}

/// Parses CSV and JSONL input into raw rows.
///
/// Errors name the line, never a value.
public enum RecordFileReader {
    /// The largest input accepted, so a mistaken path cannot exhaust memory.
    public static let maximumBytes = 1 << 30

    /// Reads all rows of a file.
    public static func read(_ data: Data, format: RecordFileFormat) throws -> [RawRow] {
        var rows: [RawRow] = []
        var file = try RecordFile(data, format: format)
        try file.scan { rows.append($0) }
        return rows
    }

    /// The number of rows a file holds at most (its non-blank lines, less a CSV header), for
    /// progress before the rows are read; a CSV value with line breaks makes it an overestimate.
    public static func estimatedRowCount(of data: Data, format: RecordFileFormat) -> Int {
        data.withUnsafeBytes { bytes in
            var count = 0
            var blank = true
            for byte in bytes {
                switch byte {
                case UInt8(ascii: "\n"):
                    if !blank { count += 1 }
                    blank = true
                case 0x20, 0x09, 0x0D: continue
                default: blank = false
                }
            }
            if !blank { count += 1 }
            return format == .csv ? max(0, count - 1) : count
        }
    }
}

/// An input file read in two passes: `scan` reads every row once, checking it and remembering
/// where it is; `row(_:)` reads one of them again.
///
/// An import validates the whole file before it writes anything, then writes it; keeping where
/// each row is, a few bytes a row, instead of every parsed row keeps its memory near the file's
/// own size.
public struct RecordFile: Sendable {
    /// The file's format.
    public let format: RecordFileFormat
    private let data: Data
    // The CSV header's column names, and where the first row starts.
    private let names: [String]
    private let firstRow: Int
    private let firstLine: Int
    // Per scanned row: where it starts in `data`, and its line number.
    private var spans: [(start: Int, line: Int)] = []

    /// Opens a file's content; a CSV header is read and checked here.
    /// - Throws: `TutelaError` with `.invalidInput` for an oversized file or a bad header.
    public init(_ data: Data, format: RecordFileFormat) throws {
        guard data.count <= RecordFileReader.maximumBytes else {
            throw TutelaError(.invalidInput, "the file is larger than \(RecordFileReader.maximumBytes >> 20) MiB")
        }
        self.format = format
        self.data = data
        guard format == .csv else {
            // A byte order mark, as some editors write at the start of a UTF-8 file, is not part
            // of the first line (the CSV parser skips it too).
            (names, firstRow, firstLine) = ([], data.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0, 1)
            return
        }
        let (header, afterHeader, nextLine) = try data.withUnsafeBytes { bytes in
            var parser = CSVParser(bytes: bytes)
            do {
                return (try parser.nextRecord()?.1, parser.position, parser.line)
            } catch let error as CSVParser.NotUTF8 {
                throw error.reported(names: [])
            }
        }
        guard let header else {
            (names, firstRow, firstLine) = ([], data.count, 1)
            return
        }
        let names = header.map { String($0.trimmingWhitespace) }
        var seen: Set<String> = []
        for name in names {
            guard !name.isEmpty else { throw TutelaError(.invalidInput, "line 1: the header has an empty column name") }
            guard seen.insert(name).inserted else {
                throw TutelaError(.invalidInput, "line 1: column '\(name)' appears twice in the header")
            }
        }
        (self.names, firstRow, firstLine) = (names, afterHeader, nextLine)
    }

    /// The number of rows `scan` found.
    public var rowCount: Int { spans.count }

    /// Reads every row in file order, calling `body` with each; blank lines are skipped.
    /// - Throws: the first error of the file or of `body`, naming the line.
    public mutating func scan(_ body: (RawRow) throws -> Void) throws {
        spans.removeAll()
        var position = firstRow
        var line = firstLine
        while position < data.count {
            let start = position
            let startLine = line
            guard let row = try read(from: &position, line: &line) else { continue }
            spans.append((start, startLine))
            try body(RawRow(line: startLine, values: row))
        }
    }

    /// Whether a JSONL line holds only spaces, tabs and carriage returns (it is skipped).
    private static func isBlank(_ line: UnsafeRawBufferPointer) -> Bool {
        line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }

    /// Finds the rows of a JSONL file without reading them: each line that is not blank.
    mutating func locateLines() {
        spans.removeAll()
        data.withUnsafeBytes { bytes in
            var start = firstRow
            var line = firstLine
            while start < bytes.count {
                var end = start
                while end < bytes.count, bytes[end] != UInt8(ascii: "\n") { end += 1 }
                if !Self.isBlank(UnsafeRawBufferPointer(rebasing: bytes[start..<end])) { spans.append((start, line)) }
                start = end + 1
                line += 1
            }
        }
    }

    /// Row `index` of the last scan, read again.
    public func row(_ index: Int) throws -> RawRow {
        let span = spans[index]
        var position = span.start
        var line = span.line
        guard let values = try read(from: &position, line: &line) else {
            throw TutelaError(.invalidState, "line \(span.line) no longer holds a row")
        }
        return RawRow(line: span.line, values: values)
    }

    /// Reads the row at `position` and moves past it; nil for a blank line.
    private func read(from position: inout Int, line: inout Int) throws -> [String: RawFieldValue]? {
        try data.withUnsafeBytes { bytes in try read(bytes, from: &position, line: &line) }
    }

    private func read(
        _ bytes: UnsafeRawBufferPointer,
        from position: inout Int,
        line: inout Int
    ) throws -> [String: RawFieldValue]? {
        switch format {
        case .jsonl:
            var end = position
            while end < bytes.count, bytes[end] != UInt8(ascii: "\n") { end += 1 }
            let text = UnsafeRawBufferPointer(rebasing: bytes[position..<end])
            let number = line
            position = end + 1
            line += 1
            if Self.isBlank(text) { return nil }
            do {
                return try FlatJSONReader.object(text)
            } catch let error as TutelaError {
                throw TutelaError(.invalidInput, "line \(number): \(error.message)")
            }
        case .csv:
            var parser = CSVParser(bytes: bytes, position: position, line: line)
            defer { (position, line) = (parser.position, parser.line) }
            let record: (Int, [String])?
            do {
                record = try parser.nextRecord()
            } catch let error as CSVParser.NotUTF8 {
                throw error.reported(names: names)
            }
            guard let (number, cells) = record else { return nil }
            if cells.count == 1, cells[0].isEmpty { return nil }
            guard cells.count == names.count else {
                throw TutelaError(
                    .invalidInput,
                    "line \(number): \(cells.count) column\(cells.count == 1 ? "" : "s"), the header has \(names.count)"
                )
            }
            var values: [String: RawFieldValue] = [:]
            values.reserveCapacity(names.count)
            for (name, cell) in zip(names, cells) {
                values[name] = cell.isEmpty ? .null : .text(cell)
            }
            return values
        }
    }
}

/// A streaming RFC 4180 parser: quoted fields may hold commas, quotes (doubled) and line breaks.
struct CSVParser {
    let bytes: UnsafeRawBufferPointer
    var position = 0
    var line = 1

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }
    }

    /// A parser that starts at a record found by an earlier pass.
    init(bytes: UnsafeRawBufferPointer, position: Int, line: Int) {
        self.bytes = bytes
        self.position = position
        self.line = line
    }

    /// The next record and the line it starts on, or nil at the end.
    mutating func nextRecord() throws -> (Int, [String])? {
        guard position < bytes.count else { return nil }
        let startLine = line
        var cells: [String] = []
        var cell: [UInt8] = []
        var quoted = false
        var wasQuoted = false
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            if quoted {
                if byte == UInt8(ascii: "\"") {
                    if position < bytes.count, bytes[position] == UInt8(ascii: "\"") {
                        cell.append(byte)
                        position += 1
                    } else {
                        quoted = false
                    }
                } else {
                    if byte == UInt8(ascii: "\n") { line += 1 }
                    cell.append(byte)
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                guard cell.isEmpty, !wasQuoted else {
                    throw TutelaError(.invalidInput, "line \(line): a quote inside an unquoted field")
                }
                quoted = true
                wasQuoted = true
            case UInt8(ascii: ","):
                cells.append(try Self.text(cell, column: cells.count + 1, line: startLine))
                cell.removeAll(keepingCapacity: true)
                wasQuoted = false
            case UInt8(ascii: "\r"):
                continue
            case UInt8(ascii: "\n"):
                line += 1
                cells.append(try Self.text(cell, column: cells.count + 1, line: startLine))
                return (startLine, cells)
            default:
                guard !wasQuoted else {
                    throw TutelaError(.invalidInput, "line \(line): text after a closing quote")
                }
                cell.append(byte)
            }
        }
        guard !quoted else { throw TutelaError(.invalidInput, "line \(startLine): a quoted field is never closed") }
        cells.append(try Self.text(cell, column: cells.count + 1, line: startLine))
        return (startLine, cells)
    }

    /// A cell that is not UTF-8, from a file saved as Latin-1 for example.
    ///
    /// Refused rather than stored with its characters replaced; the reader names the cell's field.
    struct NotUTF8: Error {
        /// The line its record starts on.
        var line: Int
        /// Its column, from 1.
        var column: Int

        /// The error to report, naming the column's field when `names` has it.
        func reported(names: [String]) -> TutelaError {
            let place = names.indices.contains(column - 1) ? "field \(names[column - 1])" : "column \(column)"
            return TutelaError(.invalidInput, "line \(line): \(place) is not valid UTF-8 (save the file as UTF-8)")
        }
    }

    private static func text(_ cell: [UInt8], column: Int, line: Int) throws -> String {
        guard let text = String(validating: cell, as: UTF8.self) else { throw NotUTF8(line: line, column: column) }
        return text
    }
}

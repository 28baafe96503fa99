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
        try forEachRow(in: data, format: format) { rows.append($0) }
        return rows
    }

    /// Calls `body` with each row in file order, so that a caller converting rows as they come
    /// never holds the whole file's rows at once.
    public static func forEachRow(
        in data: Data,
        format: RecordFileFormat,
        _ body: (RawRow) throws -> Void
    ) throws {
        guard data.count <= maximumBytes else {
            throw TutelaError(.invalidInput, "the file is larger than \(maximumBytes >> 20) MiB")
        }
        switch format {
        case .csv: try forEachCSVRow(Array(data), body)
        case .jsonl: try forEachJSONLine(data, body)
        }
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

    private static func forEachJSONLine(_ data: Data, _ body: (RawRow) throws -> Void) throws {
        try data.withUnsafeBytes { bytes in
            var line = 0
            var start = 0
            while start < bytes.count {
                line += 1
                var end = start
                while end < bytes.count, bytes[end] != UInt8(ascii: "\n") { end += 1 }
                let text = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
                start = end + 1
                if text.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }) { continue }
                let values: [String: RawFieldValue]
                do {
                    values = try FlatJSONReader.object(text)
                } catch let error as TutelaError {
                    throw TutelaError(.invalidInput, "line \(line): \(error.message)")
                }
                try body(RawRow(line: line, values: values))
            }
        }
    }

    private static func forEachCSVRow(_ bytes: [UInt8], _ body: (RawRow) throws -> Void) throws {
        var parser = CSVParser(bytes: bytes)
        guard let (_, header) = try parser.nextRecord() else { return }
        let names = header.map { String($0.trimmingWhitespace) }
        var seen: Set<String> = []
        for name in names {
            guard !name.isEmpty else { throw TutelaError(.invalidInput, "line 1: the header has an empty column name") }
            guard seen.insert(name).inserted else {
                throw TutelaError(.invalidInput, "line 1: column '\(name)' appears twice in the header")
            }
        }
        while let (line, cells) = try parser.nextRecord() {
            if cells.count == 1, cells[0].isEmpty { continue }
            guard cells.count == names.count else {
                throw TutelaError(.invalidInput, "line \(line): \(cells.count) columns, the header has \(names.count)")
            }
            var values: [String: RawFieldValue] = [:]
            values.reserveCapacity(names.count)
            for (name, cell) in zip(names, cells) {
                values[name] = cell.isEmpty ? .null : .text(cell)
            }
            try body(RawRow(line: line, values: values))
        }
    }
}

/// A streaming RFC 4180 parser: quoted fields may hold commas, quotes (doubled) and line breaks.
struct CSVParser {
    let bytes: [UInt8]
    var position = 0
    var line = 1

    init(bytes: [UInt8]) {
        self.bytes = bytes
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }
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
                cells.append(String(decoding: cell, as: UTF8.self))
                cell.removeAll(keepingCapacity: true)
                wasQuoted = false
            case UInt8(ascii: "\r"):
                continue
            case UInt8(ascii: "\n"):
                line += 1
                cells.append(String(decoding: cell, as: UTF8.self))
                return (startLine, cells)
            default:
                guard !wasQuoted else {
                    throw TutelaError(.invalidInput, "line \(line): text after a closing quote")
                }
                cell.append(byte)
            }
        }
        guard !quoted else { throw TutelaError(.invalidInput, "line \(startLine): a quoted field is never closed") }
        cells.append(String(decoding: cell, as: UTF8.self))
        return (startLine, cells)
    }
}

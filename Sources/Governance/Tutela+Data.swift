import Audit
import Foundation
import KeyManagement
import Policy
import Store
import TutelaCore

/// What an import stored.
public struct ImportReport: Sendable, Codable {
    /// The collection.
    public var collection: String
    /// How many records were written.
    public var records: Int
    /// How many distinct subjects they belong to.
    public var subjects: Int
    /// How many rows were left out because their subject was erased (only when asked to).
    public var skippedRecords = 0
    /// How many erased subjects those rows belong to.
    public var skippedSubjects = 0

    enum CodingKeys: String, CodingKey {
        case collection, records, subjects
        case skippedRecords = "skipped_records"
        case skippedSubjects = "skipped_subjects"
    }
}

/// The phases of an import, for progress output.
public enum ImportPhase: String, Sendable {
    case parsing
    case validating
    case writing
}

extension Tutela {
    /// Imports a CSV or JSONL file into a collection.
    ///
    /// Every row is validated against the schema
    /// before anything is written; then all rows are written in one transaction. A bad row is
    /// reported with its line and field, and nothing is stored.
    ///
    /// A row of an erased subject cannot be written: the import is refused before anything is
    /// written, naming the first such row's line, or, with `skipErased`, such rows are left out
    /// and counted in the report (a file exported again from a system that still holds erased
    /// customers).
    /// - Parameters:
    ///   - collection: the target collection.
    ///   - data: the file's content.
    ///   - format: CSV or JSONL.
    ///   - skipErased: whether rows of erased subjects are left out rather than refused.
    ///   - progress: called with the phase, rows done and rows in all.
    public func importRecords(
        into collection: String,
        data: Data,
        format: RecordFileFormat,
        skipErased: Bool = false,
        progress: @escaping @Sendable (ImportPhase, Int, Int) -> Void = { _, _, _ in }
    ) async throws -> ImportReport {
        let definition = try schema.collection(collection)
        progress(.parsing, 0, 0)
        // First pass: every row checked; only ids (for repeats) and subjects are kept. The
        // second pass, the write, reads each row again as its batch is sealed.
        var file = try RecordFile(data, format: format)
        let estimate = RecordFileReader.estimatedRowCount(of: data, format: format)
        let step = max(1, estimate / 20)
        let found = try await file.check(as: definition, validate: consentCheck(for: collection)) { done in
            // Row by row from a CSV file, a chunk of thousands at a time from a JSONL file.
            if format == .jsonl || done % step == 0 { progress(.validating, done, max(estimate, done)) }
        }
        progress(.validating, file.rowCount, file.rowCount)
        // Refused or left out before the write, which would refuse them too, after sealing.
        let erased = try await store.backend.erasedSubjects(among: Set(found.subjects))
        var rowsToWrite: [Int]?
        var subjects = found.subjects
        // Subjects are listed in the order they first appear: the first erased one is on the
        // earliest line.
        if let first = found.subjects.firstIndex(where: erased.contains) {
            guard skipErased else {
                throw TutelaError(
                    .subjectErased,
                    "line \(found.firstLines[first]): subject \(found.subjects[first]) was erased; its data cannot be "
                        + "written again (--skip-erased leaves out the rows of erased subjects); nothing was imported"
                )
            }
            let isErased = found.subjects.map(erased.contains)
            rowsToWrite = found.rowSubjects.indices.filter { !isErased[Int(found.rowSubjects[$0])] }
            subjects = found.subjects.filter { !erased.contains($0) }
        }
        let count = rowsToWrite?.count ?? file.rowCount
        progress(.writing, 0, count)
        let started = event(
            kind: "data.import",
            principal: configuration.operatorName,
            requestID: newRequestID(),
            action: .write,
            resource: collection,
            outcome: "started",
            count: count,
            subjects: subjects
        )
        let rows = file
        let kept = rowsToWrite
        do {
            let written: (()) -> Int = { _ in count }
            let total = count
            try await audited(started, count: written) {
                try await store.put(count: total) {
                    try rows.record(kept?[$0] ?? $0, as: definition)
                } written: { done in
                    progress(.writing, done, total)
                }
            }
        } catch let error as TutelaError {
            throw TutelaError(error.code, "\(error.message); nothing was imported", cause: error)
        }
        return ImportReport(
            collection: collection,
            records: count,
            subjects: subjects.count,
            skippedRecords: file.rowCount - count,
            skippedSubjects: erased.count
        )
    }

    /// The number of records in a collection.
    public func recordCount(collection: String) async throws -> Int {
        _ = try schema.collection(collection)
        return try await store.backend.count(collection: collection)
    }

    /// One record in the clear, for local administration; audited as the operator's read.
    public func record(collection: String, id: String) async throws -> Record {
        let record = try await store.get(collection: collection, id: id)
        try await audit.append(
            event(
                kind: "admin.read",
                principal: configuration.operatorName,
                requestID: newRequestID(),
                action: .read,
                resource: collection,
                outcome: "ok",
                count: 1,
                subjects: [record.subject]
            )
        )
        return record
    }

    /// Records found by exact value through a blind index, for local administration; audited.
    public func find(collection: String, field: String, value: String) async throws -> [Record] {
        let found = try await store.find(collection: collection, field: field, value: value)
        try await audit.append(
            event(
                kind: "admin.lookup",
                principal: configuration.operatorName,
                requestID: newRequestID(),
                action: .lookup,
                resource: collection,
                outcome: "ok",
                count: found.count,
                subjects: found.map(\.subject)
            )
        )
        return found
    }

    /// Streams a whole collection in id order, a page at a time.
    /// - Parameter emit: called with each page.
    /// - Returns: how many records were emitted.
    @discardableResult
    public func exportRecords(
        collection: String,
        pageSize: Int = 1000,
        emit: ([Record]) throws -> Void
    ) async throws -> Int {
        var after: String?
        var total = 0
        let requestID = newRequestID()
        while true {
            let page = try await store.page(collection: collection, after: after, limit: pageSize)
            guard let last = page.last else { break }
            try await audit.append(
                event(
                    kind: "admin.export",
                    principal: configuration.operatorName,
                    requestID: requestID,
                    action: .export,
                    resource: collection,
                    outcome: "ok",
                    count: page.count,
                    subjects: page.map(\.subject)
                )
            )
            try emit(page)
            total += page.count
            after = last.id
        }
        return total
    }

    /// Erases a data subject (crypto-shredding): see `EncryptedStore.erase(subject:at:)`.
    public func erase(subject: String, now: Int64) async throws -> ErasureReport {
        try Self.requireSubject(subject)
        let started = event(
            kind: "data.erase",
            principal: configuration.operatorName,
            requestID: newRequestID(),
            action: .erase,
            outcome: "started",
            subjects: [subject]
        )
        let removed: (ErasureReport) -> Int = { $0.recordsRemoved }
        return try await audited(started, count: removed) {
            try await store.erase(subject: subject, at: now)
        }
    }
}

extension Tutela {
    /// Refuses an empty subject, which names nobody; any other is erased as given (even one a
    /// record key may no longer be, as earlier versions stored it), so that no rule added later
    /// can stand between a customer and their erasure.
    /// - Throws: `.invalidInput`.
    static func requireSubject(_ subject: String) throws {
        guard !subject.isEmpty else { throw TutelaError(.invalidInput, "the subject to erase is empty") }
    }

    /// For the consents collection, a check that each consent is to a purpose of purposes.yaml
    /// (one to any other would be stored and never read); for other collections, none.
    func consentCheck(for collection: String) -> @Sendable (Record) throws -> Void {
        guard collection == "consents" else { return { _ in } }
        let purposes = Set(policies.purposes.keys)
        return { record in
            guard case .string(let purpose)? = record.fields["purpose"], purposes.contains(purpose) else {
                throw TutelaError(.invalidInput, "field 'purpose': not a purpose declared in purposes.yaml")
            }
        }
    }

    /// The purposes a customer has consented to, for local administration and tests.
    public func consentsGranted(customer: String) async throws -> [String] {
        var granted: [String] = []
        for purpose in policies.purposes.keys.sorted() where await hasConsented(customer, to: purpose) {
            granted.append(purpose)
        }
        return granted
    }
}

extension RecordFile {
    /// An import's first pass: every row made into a record of `definition`, which checks it
    /// against the schema, and record ids checked for repeats; only the subjects are kept.
    ///
    /// The rows of a JSONL file (one a line) are checked in chunks on every core, and the
    /// chunks' ids and subjects taken in file order; a CSV file, whose rows may span lines,
    /// is read in order. Either way the error reported is the first in the file.
    /// - Parameters:
    ///   - validate: a check beyond the schema's, of each record; its error is reported with
    ///     the row's line.
    ///   - progress: called with the rows checked so far, as the check proceeds.
    /// - Returns: the rows' subjects.
    /// - Throws: `TutelaError` naming the line, ending in "nothing was imported".
    public mutating func check(
        as definition: CollectionDefinition,
        validate: @escaping @Sendable (Record) throws -> Void = { _ in },
        progress: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> FileSubjects {
        guard format == .jsonl else {
            return try checkInOrder(as: definition, validate: validate, progress: progress)
        }
        locateLines()
        let file = self
        let count = rowCount
        let chunkSize = 4096
        let chunks = (count + chunkSize - 1) / chunkSize
        var seen = SeenRecords()
        try await withThrowingTaskGroup(of: (Int, CheckedRows).self) { group in
            // A few chunks ahead of the ones taken in order, so that memory stays bounded.
            var started = 0
            func startNext() {
                guard started < chunks else { return }
                let rows = started * chunkSize..<min((started + 1) * chunkSize, count)
                let index = started
                group.addTask { (index, file.checkRows(rows, as: definition, validate: validate)) }
                started += 1
            }
            for _ in 0..<2 * ProcessInfo.processInfo.activeProcessorCount { startNext() }
            var waiting: [Int: CheckedRows] = [:]
            var taken = 0
            for try await (index, checked) in group {
                waiting[index] = checked
                while let rows = waiting.removeValue(forKey: taken) {
                    for row in rows.rows { try seen.add(id: row.id, subject: row.subject, line: row.line) }
                    if let failure = rows.failure { throw failure }
                    taken += 1
                    progress(min(taken * chunkSize, count))
                    startNext()
                }
            }
        }
        return seen.subjects
    }

    /// The ids and subjects of the rows checked so far.
    private struct SeenRecords {
        private var firstLine: [String: Int] = [:]
        private(set) var subjects = FileSubjects()

        /// Notes a row's record, the rows being noted in file order.
        /// - Throws: when its id was on an earlier line.
        mutating func add(id: String, subject: String, line: Int) throws {
            if let earlier = firstLine.updateValue(line, forKey: id) {
                throw TutelaError(
                    .invalidInput,
                    "line \(line): record id repeats the one on line \(earlier); nothing was imported"
                )
            }
            subjects.add(subject, line: line)
        }
    }

    /// A row as a record of `definition`.
    /// - Throws: the schema's complaint, naming the row's line.
    private static func record(
        of row: RawRow,
        as definition: CollectionDefinition,
        validate: (Record) throws -> Void
    ) throws -> Record {
        do {
            let record = try definition.makeRecord(from: row.values)
            try validate(record)
            return record
        } catch let error as TutelaError {
            throw TutelaError(error.code, "line \(row.line): \(error.message); nothing was imported")
        }
    }

    /// The rows of a chunk checked: id, subject and line of each, up to the first that fails.
    private struct CheckedRows: Sendable {
        var rows: [(id: String, subject: String, line: Int)] = []
        var failure: TutelaError?
    }

    private func checkRows(
        _ indices: Range<Int>,
        as definition: CollectionDefinition,
        validate: (Record) throws -> Void
    ) -> CheckedRows {
        var checked = CheckedRows()
        checked.rows.reserveCapacity(indices.count)
        do {
            for index in indices {
                // A row that is not valid JSON fails in `row`, naming its line.
                let row = try row(index)
                let record = try Self.record(of: row, as: definition, validate: validate)
                checked.rows.append((record.id, record.subject, row.line))
            }
        } catch {
            checked.failure =
                error as? TutelaError ?? TutelaError(.invalidInput, "a row could not be read; nothing was imported")
        }
        return checked
    }

    /// The first pass in file order, a row at a time.
    private mutating func checkInOrder(
        as definition: CollectionDefinition,
        validate: (Record) throws -> Void,
        progress: (Int) -> Void
    ) throws -> FileSubjects {
        var seen = SeenRecords()
        var count = 0
        try scan { row in
            let record = try Self.record(of: row, as: definition, validate: validate)
            try seen.add(id: record.id, subject: record.subject, line: row.line)
            count += 1
            progress(count)
        }
        return seen.subjects
    }

    /// Row `index` of the last scan as a record of `definition`: an import's second pass.
    public func record(_ index: Int, as definition: CollectionDefinition) throws -> Record {
        try definition.makeRecord(from: try row(index).values)
    }
}

/// The subjects of a file's rows, as an import's first pass finds them.
public struct FileSubjects: Sendable {
    /// The distinct subjects, in the order they first appear.
    public private(set) var subjects: [String] = []
    /// The line on which each of `subjects` first appears.
    public private(set) var firstLines: [Int] = []
    /// Each row's subject, as a position in `subjects` (four bytes a row).
    public private(set) var rowSubjects: [Int32] = []
    private var positions: [String: Int32] = [:]

    /// Notes the next row's subject.
    mutating func add(_ subject: String, line: Int) {
        if let position = positions[subject] {
            rowSubjects.append(position)
            return
        }
        let position = Int32(subjects.count)
        positions[subject] = position
        subjects.append(subject)
        firstLines.append(line)
        rowSubjects.append(position)
    }
}

import Foundation
import GRDB
import Governance
import KeyManagement
import Policy
import SQLiteSupport
import Store
import TutelaCore

/// Encrypted store against a plaintext SQLite table, same rows, same batches, same run.
///
/// The baseline is what a team without Tutela would write: one table with a column per field,
/// in a GRDB database pool with the same settings, rows inserted with prepared statements in
/// transactions of the same size, and read back one at a time by id into the same record type.
///
/// Each comparison runs in `rounds` rounds and reports medians; within a round, baseline and
/// ours take turns a few milliseconds of work at a time (see `interleaved`), so that the
/// machine's drifting speed falls on both alike.
struct StoreBenchmark {
    let rows: Int
    let batch: Int
    let rounds: Int
    let directory: String
    let policies: String

    func run(into report: BenchReport) async throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let schema = try SchemaLoader.load(file: policies + "/schema.yaml")
        let definition = try schema.collection("customers")
        let dataset = SampleDataset.generate(customers: rows, interactionsPerCustomer: 0)
        let raw = try RecordFileReader.read(Data(dataset.customersCSV.utf8), format: .csv)
        let records = try raw.map { try definition.makeRecord(from: $0.values) }
        let batches = stride(from: 0, to: records.count, by: batch).map {
            Array(records[$0..<min($0 + batch, records.count)])
        }
        let keyring = Keyring.generate(now: 0)
        report.record("store", "rows", Double(records.count))
        report.record("store", "rounds", Double(rounds))

        // Inserts: a fresh table and a fresh store per round; the first round's are read below.
        var stores: [(PlaintextTable, EncryptedStore)] = []
        var inserts = Comparison()
        for round in 0..<rounds {
            let baseline = try PlaintextTable(path: directory + "/plaintext-\(round).sqlite", definition: definition)
            // Keeping no sealed rows: every encrypted read searches the database, as the
            // plaintext table's does; rows kept between commits are the gateway's to measure.
            let store = EncryptedStore(
                backend: try SQLiteRecordStore(path: directory + "/encrypted-\(round).sqlite", keptRecords: 0),
                schema: schema,
                keyring: keyring,
                tenant: "bench"
            )
            let (plain, encrypted) = try await interleaved(
                batches,
                block: 1,
                baseline: { for chunk in $0 { try await baseline.insert(chunk) } },
                ours: { for chunk in $0 { try await store.put(chunk) } }
            )
            inserts.add(baseline: plain, ours: encrypted)
            stores.append((baseline, store))
        }
        inserts.report(into: report, count: records.count, baseline: "insert_plaintext", ours: "insert_encrypted")
        inserts.recordRatio(into: report, as: "insert_ratio")
        try await insertSteps(schema: schema, keyring: keyring, batches: batches, into: report)

        let (baseline, store) = stores[0]
        var random = SplitMix64(seed: 7)
        let ids = (0..<min(records.count, 20_000)).map { _ in records[random.next(below: records.count)].id }
        // The same records through a store that keeps no unwrapped data keys: every read unwraps.
        let uncached = EncryptedStore(
            backend: store.backend,
            schema: schema,
            keyring: keyring,
            tenant: "bench",
            cachedDataKeys: 0
        )
        var reads = Comparison()
        var uncachedReads = Comparison()
        func readTimes(_ side: EncryptedStore) async throws -> (baseline: Double, ours: Double) {
            try await interleaved(
                ids,
                block: 250,
                baseline: { for id in $0 { _ = try await baseline.get(id) } },
                ours: { for id in $0 { _ = try await side.get(collection: "customers", id: id) } }
            )
        }
        // One untimed pass first, as a running server has read its customers before: every
        // timed round of `read_ratio` then finds the keys kept (while the read set fits in the
        // cache, as at the default row count; the two figures below tell), rather than the first
        // unwrapping them (that case is `read_uncached_ratio`), and both sides' pages are in memory.
        _ = try await readTimes(store)
        for _ in 0..<rounds {
            let kept = try await readTimes(store)
            reads.add(baseline: kept.baseline, ours: kept.ours)
            let unwrapping = try await readTimes(uncached)
            uncachedReads.add(baseline: unwrapping.baseline, ours: unwrapping.ours)
        }
        reads.report(into: report, count: ids.count, baseline: "read_plaintext", ours: "read_encrypted")
        reads.recordRatio(into: report, as: "read_ratio")
        report.record("store", "read_distinct_subjects", Double(Set(ids).count))
        report.record("store", "read_cached_data_keys", Double(store.cachedDataKeyCount))
        uncachedReads.report(into: report, count: ids.count, baseline: nil, ours: "read_uncached")
        uncachedReads.recordRatio(into: report, as: "read_uncached_ratio")
        try await readSteps(uncached, keyring: keyring, ids: Array(ids.prefix(5000)), into: report)

        let emails: [String] = (0..<min(records.count, 5000)).compactMap {
            if case .string(let email)? = records[$0 * records.count / min(records.count, 5000)].fields["email"] {
                return email
            }
            return nil
        }
        func lookupTimes() async throws -> (baseline: Double, ours: Double) {
            try await interleaved(
                emails,
                block: 250,
                baseline: { for email in $0 { _ = try await baseline.find("email", email) } },
                ours: {
                    for email in $0 { _ = try await store.find(collection: "customers", field: "email", value: email) }
                }
            )
        }
        // Untimed first, like the reads: the looked-up customers' keys are kept in every round.
        _ = try await lookupTimes()
        var lookups = Comparison()
        for _ in 0..<rounds {
            let (plain, blind) = try await lookupTimes()
            lookups.add(baseline: plain, ours: blind)
        }
        lookups.report(into: report, count: emails.count, baseline: "lookup_plaintext", ours: "lookup_blind_index")
        lookups.recordRatio(into: report, as: "lookup_ratio")
        try await importJSONL(schema: schema, keyring: keyring, into: report)
    }

    /// An import as `tutela data import` runs it, less its audit event: about `rows` JSONL
    /// interactions read and validated, then sealed and written in one streamed transaction into a
    /// store that holds their customers' data keys already.
    func importJSONL(schema: Schema, keyring: Keyring, into report: BenchReport) async throws {
        let dataset = SampleDataset.generate(customers: max(1, rows / 10), interactionsPerCustomer: 10)
        let text = Data(dataset.interactionsJSONL.utf8)
        let interactions = try schema.collection("interactions")
        let customers = try schema.collection("customers")
        let store = EncryptedStore(
            backend: try SQLiteRecordStore(path: directory + "/import.sqlite", keptRecords: 0),
            schema: schema,
            keyring: keyring,
            tenant: "bench"
        )
        let owners = try RecordFileReader.read(Data(dataset.customersCSV.utf8), format: .csv)
        try await store.put(try owners.map { try customers.makeRecord(from: $0.values) })
        var count = 0
        let seconds = try await measureAsync {
            // Both passes of the import: rows checked first, then read again as they are sealed.
            var file = try RecordFile(text, format: .jsonl)
            _ = try await file.check(as: interactions)
            count = file.rowCount
            let rows = file
            try await store.put(count: count) { try rows.record($0, as: interactions) }
        }
        report.record("store", "import_jsonl_rows", Double(count))
        report.record("store", "import_jsonl_per_s", Double(count) / seconds)
    }
}

/// Times `baseline` and `ours` over the same items, a block at a time, the side that goes first
/// alternating from block to block.
///
/// - Returns: each side's total seconds. This machine's speed drifts by a fifth within seconds;
///   blocks of a few milliseconds put that drift on both sides alike, where two whole passes one
///   after the other would each take a different share of it.
func interleaved<Item>(
    _ items: [Item],
    block: Int,
    baseline: (ArraySlice<Item>) async throws -> Void,
    ours: (ArraySlice<Item>) async throws -> Void
) async throws -> (baseline: Double, ours: Double) {
    var times = (baseline: 0.0, ours: 0.0)
    for (number, start) in stride(from: 0, to: items.count, by: block).enumerated() {
        let part = items[start..<min(start + block, items.count)]
        if number % 2 == 0 {
            times.baseline += try await measureAsync { try await baseline(part) }
            times.ours += try await measureAsync { try await ours(part) }
        } else {
            times.ours += try await measureAsync { try await ours(part) }
            times.baseline += try await measureAsync { try await baseline(part) }
        }
    }
    return times
}

/// The times of one comparison over several rounds.
struct Comparison {
    private var baselines: [Double] = []
    private var ours: [Double] = []
    private var ratios: [Double] = []

    /// Adds one round's times, in seconds.
    mutating func add(baseline: Double, ours time: Double) {
        baselines.append(baseline)
        ours.append(time)
        ratios.append(time / baseline)
    }

    /// Records the median of the rounds' ratios (ours / baseline) as `name`, and the lowest and
    /// highest as `name_min` and `name_max`: how far the machine's drift moved one round from
    /// another.
    func recordRatio(into report: BenchReport, as name: String) {
        report.record("store", name, Self.median(ratios))
        report.record("store", name + "_min", ratios.min() ?? 0)
        report.record("store", name + "_max", ratios.max() ?? 0)
    }

    /// Records both sides' median throughput as `NAME_per_s`; a nil baseline name leaves the
    /// baseline out (when another comparison reported it).
    func report(into report: BenchReport, count: Int, baseline: String?, ours name: String) {
        if let baseline { report.record("store", baseline + "_per_s", Double(count) / Self.median(baselines)) }
        report.record("store", name + "_per_s", Double(count) / Self.median(ours))
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        return sorted.count % 2 == 1
            ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}

extension StoreBenchmark {
    /// Where an encrypted insert's time goes, on a second store: sealing (data keys looked up,
    /// made and wrapped, fields sealed, blind indexes computed) and writing the sealed batches.
    func insertSteps(
        schema: Schema,
        keyring: Keyring,
        batches: [[TutelaCore.Record]],
        into report: BenchReport
    ) async throws {
        let store = EncryptedStore(
            backend: try SQLiteRecordStore(path: directory + "/steps.sqlite", keptRecords: 0),
            schema: schema,
            keyring: keyring,
            tenant: "bench"
        )
        // Sealing is repeated `rounds` times and the least time kept: it only reads the database
        // (no data key exists yet), so every pass does the same work, and the least is the one
        // this machine's drift disturbed least.
        var sealed: [WriteBatch] = []
        var sealSeconds = Double.infinity
        var sealCPU = Double.infinity
        for _ in 0..<max(1, rounds) {
            var pass: [WriteBatch] = []
            let cpuBefore = processCPUSeconds()
            let seconds = try await measureAsync {
                for chunk in batches { pass.append(try await store.seal(chunk)) }
            }
            sealCPU = min(sealCPU, processCPUSeconds() - cpuBefore)
            sealSeconds = min(sealSeconds, seconds)
            sealed = pass
        }
        // Writing the sealed batches: `rounds` passes, each into a database of its own, the least
        // time kept as for sealing.
        var writeSeconds = Double.infinity
        for round in 0..<max(1, rounds) {
            let backend = try SQLiteRecordStore(path: directory + "/steps-write-\(round).sqlite")
            writeSeconds = min(
                writeSeconds,
                try await measureAsync {
                    for batch in sealed { try await backend.apply(batch) }
                }
            )
        }
        let rows = Double(max(1, batches.reduce(0) { $0 + $1.count }))
        report.record("store", "insert_step_seal_ns", sealSeconds / rows * 1e9)
        // Sealing runs on every core: its processor time per row, beside its wall time.
        report.record("store", "insert_step_seal_cpu_ns", sealCPU / rows * 1e9)
        report.record("store", "insert_step_write_ns", writeSeconds / rows * 1e9)
    }

    /// Where an encrypted read's time goes when its data key is not kept: fetching the sealed
    /// row with its wrapped data key, unwrapping the key, and opening the fields into a record
    /// (`EncryptedStore.open` of a store that keeps no keys is the last two together).
    func readSteps(_ store: EncryptedStore, keyring: Keyring, ids: [String], into report: BenchReport) async throws {
        var stored: [(StoredRecord, WrappedDataKey?)] = []
        let fetch = try await measureAsync {
            for id in ids {
                if let found = try await store.backend.record(collection: "customers", id: id) { stored.append(found) }
            }
        }
        let cipher = EnvelopeCipher(keyring: keyring, tenant: "bench", cachedDataKeys: 0)
        let unwrap = try measure {
            for (record, key) in stored {
                if let key { _ = try cipher.unwrap(key, subject: record.subject) }
            }
        }
        let open = try measure {
            for (record, key) in stored { _ = try store.open(record, key: key) }
        }
        let count = Double(max(stored.count, 1))
        report.record("store", "read_step_fetch_ns", fetch / count * 1e9)
        report.record("store", "read_step_unwrap_ns", unwrap / count * 1e9)
        report.record("store", "read_step_open_fields_ns", max(0, open - unwrap) / count * 1e9)
    }
}

/// The baseline: customers in a plain SQLite table, one column per field.
///
/// It has an index on each field the store can look up (email, phone), so that both sides
/// offer the same lookups. Reads
/// by id go through the same raw read-only connections as the store's, so that the read ratio
/// compares encryption, not database access layers.
private struct PlaintextTable {
    let pool: DatabasePool
    let reader: SQLitePointReader
    let definition: CollectionDefinition
    let insertSQL: String
    let selectSQL: String
    let columnList: String

    init(path: String, definition: CollectionDefinition) throws {
        var configuration = Configuration()
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA secure_delete = ON") }
        pool = try DatabasePool(path: path, configuration: configuration)
        // As durable as the store it is compared with.
        try pool.requireDurableCommits()
        reader = SQLitePointReader(path: path)
        self.definition = definition
        let columns = definition.fields.map(\.name)
        try pool.write { db in
            try db.execute(
                sql:
                    "CREATE TABLE customers (\(columns.map { $0 == definition.keyField ? "\($0) TEXT PRIMARY KEY" : $0 }.joined(separator: ", "))) WITHOUT ROWID"
            )
            for field in definition.fields where field.lookup != nil {
                try db.execute(sql: "CREATE INDEX customers_by_\(field.name) ON customers(\(field.name))")
            }
        }
        columnList = columns.joined(separator: ", ")
        insertSQL =
            "INSERT OR REPLACE INTO customers (\(columns.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"
        selectSQL = "SELECT \(columns.joined(separator: ", ")) FROM customers WHERE \(definition.keyField) = ?"
    }

    func insert(_ records: [TutelaCore.Record]) async throws {
        let definition = definition
        let insertSQL = insertSQL
        try await pool.write { db in
            let statement = try db.cachedStatement(sql: insertSQL)
            for record in records {
                let values: [(any DatabaseValueConvertible)?] = definition.fields.map {
                    Self.databaseValue(record.fields[$0.name])
                }
                try statement.execute(arguments: StatementArguments(values))
            }
        }
    }

    func get(_ id: String) async throws -> TutelaCore.Record? {
        try reader.fetchOne(selectSQL, [.text(id)]) { try Self.record($0, definition) }
    }

    func find(_ field: String, _ value: String) async throws -> [TutelaCore.Record] {
        let sql = "SELECT \(columnList) FROM customers WHERE \(field) = ?"
        return try reader.fetchAll(sql, [.text(value)]) { try Self.record($0, definition) }
    }

    private static func record(
        _ row: borrowing SQLitePointReader.Columns,
        _ definition: CollectionDefinition
    ) throws -> TutelaCore.Record {
        var fields: [String: FieldValue] = [:]
        for (offset, field) in definition.fields.enumerated() {
            let index = Int32(offset)
            switch (row.kind(index), field.type) {
            case (.null, _), (.blob, _): continue
            case (.text, _): fields[field.name] = .string(row.text(index))
            case (.integer, .date): fields[field.name] = .date(days: Int32(truncatingIfNeeded: row.int(index)))
            case (.integer, .timestamp): fields[field.name] = .timestamp(milliseconds: Int64(row.int(index)))
            case (.integer, .bool): fields[field.name] = .bool(row.int(index) != 0)
            case (.integer, _): fields[field.name] = .int(Int64(row.int(index)))
            case (.real, _): fields[field.name] = .double(row.double(index))
            }
        }
        let id = fields[definition.keyField]?.displayText ?? ""
        return TutelaCore.Record(collection: definition.name, id: id, subject: id, fields: fields)
    }

    private static func databaseValue(_ value: FieldValue?) -> (any DatabaseValueConvertible)? {
        switch value {
        case .none, .null?: return nil
        case .string(let text)?: return text
        case .int(let number)?: return number
        case .double(let number)?: return number
        case .bool(let flag)?: return flag
        case .date(let days)?: return Int64(days)
        case .timestamp(let milliseconds)?: return milliseconds
        }
    }
}

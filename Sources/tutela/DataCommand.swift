import ArgumentParser
import Foundation
import Governance
import Store
import TutelaCore

struct DataCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Import, read, find, export and erase customer data (local administration).",
        subcommands: [Import.self, Get.self, Find.self, Export.self, Erase.self, Sample.self]
    )

    /// Output options shared by the commands that print records.
    struct RecordOutput: ParsableArguments {
        @Option(name: .customLong("as"), help: "Read as this principal: the policies decide and mask.")
        var principal: String?
        @Option(help: "The purpose of use (with --as).") var purpose: String?
        @Option(name: .customLong("context"), help: "NAME=VALUE of the request context (with --as, repeatable).")
        var context: [String] = []
        @Flag(
            name: .customLong("insecure-plaintext"),
            help: "Print classified fields in the clear instead of their class (for local administration only)."
        )
        var plaintext = false

        /// The caller when reading through the policies, nil for local administration.
        func caller() throws -> Caller? {
            guard let principal else {
                guard purpose == nil, context.isEmpty else {
                    throw TutelaError(.invalidInput, "--purpose and --context go with --as PRINCIPAL")
                }
                return nil
            }
            guard !plaintext else { throw TutelaError(.invalidInput, "--insecure-plaintext does not go with --as") }
            guard let purpose else { throw TutelaError(.invalidInput, "--as needs --purpose") }
            return Caller(principal: principal, purpose: purpose, context: try keyValuePairs(context, what: "context"))
        }

        func render(_ record: Record, _ definition: CollectionDefinition) -> String {
            guard !plaintext, principal == nil else { return RecordJSON.encode(record, definition: definition) }
            var redacted = record
            for field in definition.fields where field.isEncrypted && redacted.fields[field.name] != nil {
                redacted.fields[field.name] = .string("[\(field.fieldClass.name)]")
            }
            return RecordJSON.encode(redacted, definition: definition)
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import a CSV or JSONL file; every row is validated first and a bad row stores nothing."
        )
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The collection, such as customers.") var collection: String
        @Argument(help: "The file (.csv, .jsonl).") var file: String
        @Option(help: "csv or jsonl (default: from the file name).") var format: String?
        @Flag(help: "Leave out the rows of erased customers instead of refusing the file.") var skipErased = false

        func run() async throws {
            try await Console.run(json: options.json) {
                // Read first, so that a missing file is reported as missing rather than for its name.
                let data = try FileReading.contents(of: file)
                guard let format = try format.map(parseFormat) ?? RecordFileFormat(fileName: file) else {
                    throw TutelaError(
                        .invalidInput,
                        "cannot tell the format of \(file); pass --format csv or --format jsonl"
                    )
                }
                let tutela = try await Tutela.open(options.configuration)
                let progress = Console.Progress()
                let report = try await tutela.importRecords(
                    into: collection,
                    data: data,
                    format: format,
                    skipErased: skipErased
                ) { phase, done, total in
                    if phase != .parsing { progress.report(phase.rawValue, done, total) }
                }
                progress.finish()
                if options.json { return try Console.printJSON(report) }
                print(
                    "Imported \(counted(report.records, "record")) of \(counted(report.subjects, "subject")) into \(report.collection)."
                )
                if report.skippedRecords > 0 {
                    print(
                        "Left out \(counted(report.skippedRecords, "row")) of \(counted(report.skippedSubjects, "erased subject"))."
                    )
                }
            }
        }

        private func parseFormat(_ text: String) throws -> RecordFileFormat {
            guard let format = RecordFileFormat(rawValue: text) else {
                throw TutelaError(.invalidInput, "unknown format '\(text)' (csv or jsonl)")
            }
            return format
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print one record as JSON.")
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: RecordOutput
        @Argument(help: "The collection.") var collection: String
        @Argument(help: "The record id.") var id: String

        func run() async throws {
            try await Console.run(json: options.json) {
                let tutela = try await Tutela.open(options.configuration)
                let record: Record
                if let caller = try output.caller() {
                    record = try await tutela.governedRecord(caller, collection: collection, id: id)
                } else {
                    record = try await tutela.record(collection: collection, id: id)
                }
                print(output.render(record, try tutela.schema.collection(collection)))
            }
        }
    }

    struct Find: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Find records by exact value of an indexed field (such as email or phone) through its blind index."
        )
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: RecordOutput
        @Argument(help: "The collection.") var collection: String
        @Argument(help: "The indexed field.") var field: String
        @Argument(help: "The value to look for.") var value: String

        func run() async throws {
            try await Console.run(json: options.json) {
                let tutela = try await Tutela.open(options.configuration)
                let definition = try tutela.schema.collection(collection)
                let records: [Record]
                if let caller = try output.caller() {
                    records = try await tutela.governedFind(caller, collection: collection, field: field, value: value)
                } else {
                    records = try await tutela.find(collection: collection, field: field, value: value)
                }
                for record in records { print(output.render(record, definition)) }
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Export a collection as JSONL, one record per line.")
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: RecordOutput
        @Argument(help: "The collection.") var collection: String
        @Option(help: "Write to this file (created with mode 0600) instead of standard output.") var out: String?
        @OptionGroup var replacing: OverwriteOption

        func run() async throws {
            try await Console.run(json: options.json) {
                let existing = try out.map { try replacing.existing(at: $0, configuration: options.configuration) }
                let tutela = try await Tutela.open(options.configuration)
                let definition = try tutela.schema.collection(collection)
                let sink = try DurableFileWriter(path: out, existing: existing ?? .refuse)
                let total = try await tutela.recordCount(collection: collection)
                let progress = Console.Progress()
                var done = 0
                let caller = try output.caller()
                do {
                    let emit: ([Record]) throws -> Void = { page in
                        var text = ""
                        for record in page { text += output.render(record, definition) + "\n" }
                        try sink.write(text)
                        done += page.count
                        if out != nil { progress.report("export", done, total) }
                    }
                    if let caller {
                        try await tutela.governedExport(caller, collection: collection, emit: emit)
                    } else {
                        try await tutela.exportRecords(collection: collection, emit: emit)
                    }
                    try sink.finish()
                } catch {
                    sink.abandon()
                    throw error
                }
                progress.finish()
                if let out { Console.printError("Exported \(counted(done, "record")) to \(out).") }
            }
        }
    }

    struct Erase: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Erase a customer for good: destroy their data key (crypto-shredding) and remove their records."
        )
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The subject (customer id).") var subject: String
        @Flag(name: .customLong("irreversibly-erase"), help: "Confirm that this cannot be undone.") var confirmed =
            false

        func run() async throws {
            try await Console.run(json: options.json) {
                guard confirmed else {
                    throw TutelaError(.invalidInput, "erasing a customer cannot be undone; add --irreversibly-erase")
                }
                let report = try await Tutela.open(options.configuration).erase(subject: subject, now: Console.now)
                if options.json { return try Console.printJSON(report) }
                guard report.dataKeyDestroyed || report.recordsRemoved > 0 else {
                    print(
                        report.alreadyErased
                            ? "Subject \(subject) was erased before; nothing was left to remove."
                            : "Subject \(subject) had no data; it is recorded as erased."
                    )
                    return
                }
                print(
                    "Erased \(subject): data key destroyed, \(counted(report.recordsRemoved, "record")) and \(counted(report.lookupsRemoved, "index entry", "index entries")) removed."
                )
            }
        }
    }

    struct Sample: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a synthetic marketing data set (customers, interactions, conversations, consents)."
        )
        @Option(help: "The directory to write to.") var out = "sample-data"
        @Option(help: "Number of customers.") var customers = 1000
        @Option(help: "Random seed.") var seed: UInt64 = 42
        @OptionGroup var replacing: OverwriteOption

        func validate() throws {
            try requireWithin(1...1_000_000, customers, "--customers")
        }

        func run() async throws {
            try await Console.run(json: false) {
                let dataset = SampleDataset.generate(customers: customers, seed: seed)
                do {
                    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
                } catch {
                    throw TutelaError(.io, "cannot create the directory \(out) for the sample data")
                }
                // Every file is checked before the first is written: a refusal leaves none of them.
                let files = try dataset.files.map { file in
                    let path = out + "/" + file.fileName
                    return (file.content, path, try replacing.existing(at: path, configuration: nil))
                }
                for (content, path, existing) in files {
                    try DurableFileWriter.write(content, to: path, existing: existing)
                }
                for (collection, name, _) in dataset.files { print("\(collection)\t\(out)/\(name)") }
            }
        }
    }
}

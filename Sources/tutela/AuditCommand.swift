import ArgumentParser
import Audit
import Foundation
import Governance
import TutelaCore

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Review and verify the tamper-evident audit log.",
        subcommands: [
            Tail.self, Search.self, Show.self, Verify.self, Prove.self, CheckpointCommand.self, Export.self,
            Archive.self, Compact.self, Stress.self,
        ]
    )

    static func line(_ event: AuditEvent) -> String {
        var parts = [
            String(event.sequence), CalendarDate.formatTimestamp(milliseconds: event.time), event.kind, event.principal,
        ]
        if event.action != "-" { parts.append(event.action) }
        if event.resource != "-" { parts.append(event.resource) }
        if event.purpose != "-" { parts.append("for \(event.purpose)") }
        if event.decision != "-" { parts.append(event.decision + (event.denial.map { "(\($0))" } ?? "")) }
        parts.append(event.outcome)
        if event.count > 0 { parts.append(counted(event.count, "record")) }
        if let record = event.record { parts.append("[\(record)]") }
        return visible(parts.joined(separator: "  "))
    }

    /// Text with its control characters (C0, DEL and C1) written as `\u{1B}`: an event's fields
    /// hold what callers sent (a path, a header), and a terminal must not act on them.
    static func visible(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: \.isControlCharacter) else { return text }
        var shown = ""
        for scalar in text.unicodeScalars {
            if scalar.isControlCharacter {
                shown += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            } else {
                shown.unicodeScalars.append(scalar)
            }
        }
        return shown
    }

    static func print(_ events: [AuditEvent], json: Bool) {
        for event in events {
            Swift.print(json ? String(decoding: event.canonicalBytes, as: UTF8.self) : line(event))
        }
    }

    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The latest events, oldest first.")
        @OptionGroup var options: GlobalOptions
        @Option(name: .shortAndLong, help: "How many events.") var number = 20

        func validate() throws {
            try requireAtLeast(1, number, "--number")
        }

        func run() async throws {
            try await Console.run(json: options.json) {
                let tutela = try await Tutela.open(options.configuration)
                AuditCommand.print(
                    try await tutela.auditSearch(AuditFilter(), limit: number).reversed(),
                    json: options.json
                )
            }
        }
    }

    struct Search: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Events by principal, action, decision, purpose, kind, time range or customer, newest first."
        )
        @OptionGroup var options: GlobalOptions
        @Option(help: "The principal's name.") var principal: String?
        @Option(help: "The action, such as read or export.") var action: String?
        @Option(help: "allow or deny.") var decision: String?
        @Option(help: "The purpose.") var purpose: String?
        @Option(help: "The kind, such as data.read or keys.rotate.") var kind: String?
        @Option(help: "From this time (RFC 3339 or Unix seconds).") var since: String?
        @Option(help: "Before this time (RFC 3339 or Unix seconds).") var until: String?
        @Option(help: "A customer id; matched through its HMAC, never stored.") var customer: String?
        @Option(help: "At most this many events.") var limit = 100

        func validate() throws {
            try requireAtLeast(1, limit, "--limit")
            // Values events never hold would find nothing, as if nothing had happened.
            if let decision, decision != "allow", decision != "deny" {
                throw ValidationError("--decision takes allow or deny")
            }
            if let action, Action(rawValue: action) == nil {
                throw ValidationError(
                    "--action takes one of \(Action.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            if customer?.isEmpty == true { throw ValidationError("--customer takes a customer id") }
            let bounds = try [since, until].map { text in
                try text.map { text in
                    guard let time = CalendarDate.parseTimestamp(Substring(text)) else {
                        throw ValidationError(
                            "'\(text)' is not an RFC 3339 time or Unix seconds in the years 1 to 9999"
                        )
                    }
                    return time
                }
            }
            if let start = bounds[0], let end = bounds[1], start >= end {
                throw ValidationError("--since \(since ?? "") is not before --until \(until ?? "")")
            }
        }

        func run() async throws {
            try await Console.run(json: options.json) {
                var filter = AuditFilter()
                filter.principal = principal
                filter.action = action
                filter.decision = decision
                filter.purpose = purpose
                filter.kind = kind
                filter.since = try since.map(Self.time)
                filter.until = try until.map(Self.time)
                let tutela = try await Tutela.open(options.configuration)
                let found = try await tutela.auditSearch(filter, customer: customer, limit: limit)
                AuditCommand.print(found, json: options.json)
                // A kind no entry has (a typo, or a kind of another version) finds nothing, as
                // if nothing of that kind had happened: say which kinds the log holds.
                guard found.isEmpty else { return }
                if let kind {
                    let kinds = try await tutela.audit.kinds()
                    if !kinds.contains(kind) {
                        let held = kinds.joined(separator: ", ")
                        return Console.printError(
                            AuditCommand.visible(
                                "note: no entry has kind '\(kind)'; the log's entries have kinds \(held)"
                            )
                        )
                    }
                }
                // Text output would be empty: say that nothing matched.
                if !options.json { Console.printError("no entry matches") }
            }
        }

        static func time(_ text: String) throws -> Int64 {
            guard let milliseconds = CalendarDate.parseTimestamp(Substring(text)) else {
                throw TutelaError(
                    .invalidInput,
                    "'\(text)' is not an RFC 3339 time or Unix seconds in the years 1 to 9999"
                )
            }
            return milliseconds
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One event in full; with --customer, its sealed detail is opened if the customer still exists."
        )
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The event's sequence number.") var sequence: Int
        @Option(help: "The customer the detail belongs to.") var customer: String?

        func run() async throws {
            try await Console.run(json: options.json) {
                let tutela = try await Tutela.open(options.configuration)
                let event = try await tutela.audit.entry(sequence)
                let text = String(decoding: event.canonicalBytes, as: UTF8.self)
                var detail: String?
                if let customer, event.detail != nil {
                    detail = try await tutela.auditDetail(event, customer: customer)
                }
                guard options.json else {
                    Swift.print(text)
                    if let detail { Swift.print("detail: " + detail) }
                    return
                }
                // The event as stored, and its opened detail beside it when asked for.
                guard let detail else { return Swift.print(text) }
                var line = "{\"event\":" + text + ",\"detail\":"
                JSONText.appendString(detail, to: &line)
                Swift.print(line + "}")
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Check every entry against the signed checkpoints (and one kept elsewhere); names the first bad entry."
        )
        @OptionGroup var options: GlobalOptions
        @Option(help: "A checkpoint file saved earlier with 'tutela audit checkpoint --out'.") var checkpoint: String?
        @Option(help: "Check this file from 'tutela audit archive' or 'tutela audit export' against the log instead.")
        var archive: String?

        func run() async throws {
            try await Console.run(json: options.json) {
                let tutela = try await Tutela.open(options.configuration)
                if let archive {
                    try await checkArchive(archive, tutela: tutela)
                    return
                }
                var external: Checkpoint?
                if let checkpoint {
                    let text = String(
                        decoding: try FileReading.contents(of: checkpoint, role: "the checkpoint"),
                        as: UTF8.self
                    )
                    external = try tutela.checkpoint(fromText: text)
                }
                let progress = Console.Progress()
                var result = try await tutela.audit.verify(against: external) { done, total in
                    progress.report("verifying", done, total)
                }
                progress.finish()
                if let problem = tutela.publishedAuditKeyProblem() { result.problems.append(problem) }
                if options.json {
                    try Console.printJSON(result)
                    if !result.isValid { throw ExitCode(1) }
                    return
                }
                if result.isValid {
                    Swift.print(
                        "OK: \(counted(result.entries, "entry", "entries")), checked against \(counted(result.checkpoints, "signed checkpoint"))."
                    )
                    if result.archivedEntries > 0 {
                        let archived =
                            result.archivedEntries == 1 ? "entry is" : "\(result.archivedEntries) entries are"
                        Swift.print(
                            "The oldest \(archived) archived: their hashes were checked here, their events are in archive files ('tutela audit verify --archive FILE')."
                        )
                    }
                    if result.unsignedEntries > 0 {
                        let unsigned =
                            result.unsignedEntries == 1
                            ? "entry awaits" : "\(result.unsignedEntries) entries await"
                        Swift.print(
                            "The newest \(unsigned) the next checkpoint; 'tutela audit checkpoint' signs them now."
                        )
                    }
                    return
                }
                Swift.print("TAMPERED" + (result.firstBadEntry.map { ": first bad entry \($0)" } ?? ""))
                for problem in result.problems { Swift.print("  \(problem)") }
                throw ExitCode(1)
            }
        }

        private func checkArchive(_ path: String, tutela: Tutela) async throws {
            let result = try await tutela.audit.checkArchive(at: path)
            if options.json {
                try Console.printJSON(result)
            } else if result.isValid {
                Swift.print(
                    "OK: \(path) holds entries \(result.from) to \(result.to - 1) (\(counted(result.entries, "event"))), each proved by its signed checkpoint and matching the hash the log keeps."
                )
            } else {
                Swift.print("TAMPERED: \(path)")
                for problem in result.problems { Swift.print("  \(problem)") }
            }
            if !result.isValid { throw ExitCode(1) }
        }
    }

    struct Prove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "An inclusion proof of one entry, or with --from and --to a consistency proof between two sizes."
        )
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The entry's sequence number.") var sequence: Int?
        @Option(help: "The tree size (default: the whole log).") var size: Int?
        @Option(help: "Older tree size, for a consistency proof.") var from: Int?
        @Option(help: "Newer tree size, for a consistency proof.") var to: Int?

        func run() async throws {
            try await Console.run(json: options.json) {
                let tutela = try await Tutela.open(options.configuration)
                if let from, let to {
                    let proof = try await tutela.audit.consistencyProof(from: from, to: to)
                    if options.json {
                        return try Console.printJSON(
                            JSONReports.ConsistencyReport(
                                from: from,
                                to: to,
                                oldRoot: Hex.encode(proof.oldRoot),
                                newRoot: Hex.encode(proof.newRoot),
                                path: proof.path.map { Hex.encode($0) }
                            )
                        )
                    }
                    Swift.print("consistency \(from) -> \(to)")
                    Swift.print("old root: \(Hex.encode(proof.oldRoot))")
                    Swift.print("new root: \(Hex.encode(proof.newRoot))")
                    for hash in proof.path { Swift.print("  \(Hex.encode(hash))") }
                    return
                }
                guard let sequence else {
                    throw TutelaError(.invalidInput, "give a sequence number, or --from and --to")
                }
                let proof = try await tutela.audit.inclusionProof(sequence: sequence, size: size)
                if options.json {
                    return try Console.printJSON(
                        JSONReports.InclusionReport(
                            sequence: proof.sequence,
                            size: proof.size,
                            leaf: Hex.encode(proof.leaf),
                            root: Hex.encode(proof.root),
                            path: proof.path.map { Hex.encode($0) },
                            verified: proof.isValid
                        )
                    )
                }
                Swift.print("entry \(proof.sequence) in a tree of \(proof.size)")
                Swift.print("leaf: \(Hex.encode(proof.leaf))")
                Swift.print("root: \(Hex.encode(proof.root))")
                for hash in proof.path { Swift.print("  \(Hex.encode(hash))") }
                Swift.print(proof.isValid ? "verified" : "DOES NOT VERIFY")
            }
        }
    }

    struct CheckpointCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "checkpoint",
            abstract: "Print the latest signed checkpoint, or save it to a file to keep elsewhere."
        )
        @OptionGroup var options: GlobalOptions
        @Option(help: "Write it to this file.") var out: String?
        @OptionGroup var replacing: OverwriteOption

        func run() async throws {
            try await Console.run(json: options.json) {
                let existing = try out.map { try replacing.existing(at: $0, configuration: options.configuration) }
                let tutela = try await Tutela.open(options.configuration)
                let checkpoint = try await tutela.audit.latestCheckpoint()
                if let out {
                    try DurableFileWriter.write(checkpoint.text, to: out, existing: existing ?? .refuse)
                    Console.printError(
                        "Saved the checkpoint of \(counted(checkpoint.size, "entry", "entries")) to \(out)."
                    )
                } else if options.json {
                    try Console.printJSON(JSONReports.CheckpointReport(checkpoint))
                } else {
                    Swift.print(checkpoint.text, terminator: "")
                }
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every entry not archived as JSONL with its inclusion proof, then the signed checkpoint."
        )
        @OptionGroup var options: GlobalOptions
        @Option(help: "Write to this file instead of standard output.") var out: String?
        @OptionGroup var replacing: OverwriteOption

        func run() async throws {
            try await Console.run(json: options.json) {
                let existing = try out.map { try replacing.existing(at: $0, configuration: options.configuration) }
                let tutela = try await Tutela.open(options.configuration)
                let sink = try DurableFileWriter(path: out, existing: existing ?? .refuse)
                do {
                    var lines = 0
                    let checkpoint = try await tutela.audit.export { line in
                        try sink.write(line + "\n")
                        lines += 1
                    }
                    try sink.finish()
                    if let out {
                        Console.printError(
                            "Exported \(counted(lines - 1, "entry", "entries")) with proofs against the checkpoint of \(checkpoint.size) to \(out)."
                        )
                    }
                } catch {
                    sink.abandon()
                    throw error
                }
            }
        }
    }

    struct Archive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move the events older than a time to an archive file; the log keeps their hashes.",
            discussion: """
                The file holds each archived event with its leaf hash and inclusion proof, then the \
                signed checkpoint they refer to, like 'tutela audit export', and is synced before \
                anything leaves the log. The log keeps every archived entry's sequence number, time \
                and hash: it still verifies and proves inclusion, while search, tail and show no \
                longer find archived events. Keep the file as long as your retention rules say.
                """
        )
        @OptionGroup var options: GlobalOptions
        @Option(help: "Archive the events before this time (RFC 3339 or Unix seconds).") var before: String
        @Option(help: "The archive file to create; an existing file is never overwritten.") var out: String

        func run() async throws {
            try await Console.run(json: options.json) {
                let cutoff = try Search.time(before)
                guard !FileManager.default.fileExists(atPath: out) else {
                    throw TutelaError(.alreadyExists, "\(out) exists; an archive is never written over")
                }
                // Known before the log is read and hashed, which takes a while for a large one.
                let folder = (out as NSString).deletingLastPathComponent
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: folder.isEmpty ? "." : folder, isDirectory: &isDirectory),
                    isDirectory.boolValue
                else {
                    throw TutelaError(.io, "cannot create \(out): no such directory")
                }
                let tutela = try await Tutela.open(options.configuration)
                // Nothing to archive leaves no file.
                let progress = Console.Progress()
                let archive = try await tutela.archiveAudit(
                    before: cutoff,
                    progress: { phase, done, total in progress.report(phase.rawValue, done, total) },
                    file: { _ in out }
                )
                progress.finish()
                if options.json {
                    try Console.printJSON(archive)
                } else if archive.entries == 0 {
                    Swift.print("Nothing to archive: no event before \(before) that is not archived already.")
                } else {
                    Swift.print(
                        "Archived entries \(archive.from) to \(archive.to - 1) (\(counted(archive.entries, "event"))) to \(out); the log keeps their hashes."
                    )
                    let storage = try await tutela.audit.storage
                    if archive.releasedBytes > 0 {
                        Swift.print(
                            "The log's file gave back \(Compact.size(archive.releasedBytes)); it is \(Compact.size(storage.bytes))."
                        )
                    } else if !storage.releasesFreePages, storage.freePages > 0 {
                        Swift.print(
                            "The log's file keeps \(Compact.size(storage.freeBytes)) of free pages for later events; 'tutela audit compact --convert' gives them back."
                        )
                    }
                }
            }
        }
    }

    struct Compact: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give the free pages of the audit log's file (those of archived events) back to the file system.",
            discussion: """
                A log created by this version does so a few megabytes per transaction, also while \
                the server runs, and 'tutela audit archive' does it after each archive. A log \
                created before needs --convert once: the file is rewritten (it needs free disk \
                space the size of the log, and a running server refuses audited requests until the \
                rewrite ends), and releases free pages from then on.
                """
        )
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Rewrite a log created before this version once, so that it can give pages back.")
        var convert = false

        func run() async throws {
            try await Console.run(json: options.json) {
                let tutela = try await Tutela.open(options.configuration)
                let progress = Console.Progress()
                let compaction = try await tutela.compactAudit(convert: convert) { done, total in
                    progress.report("releasing", done, total)
                }
                progress.finish()
                if options.json {
                    try Console.printJSON(compaction)
                } else if !compaction.after.releasesFreePages, compaction.after.freePages > 0 {
                    Swift.print(
                        "The log's file keeps \(Self.size(compaction.after.freeBytes)) of free pages: it was created before it could give pages back; 'tutela audit compact --convert' rewrites it once."
                    )
                } else {
                    Swift.print(
                        "Gave back \(Self.size(compaction.releasedBytes))\(compaction.converted ? " (the file was rewritten once)" : ""); the log's file is \(Self.size(compaction.after.bytes))."
                    )
                }
            }
        }

        /// Bytes in the largest unit that keeps a number of at least 1, with one decimal.
        static func size(_ bytes: Int) -> String {
            let units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
            var value = Double(bytes)
            var unit = 0
            while value >= 1024, unit < units.count - 1 {
                value /= 1024
                unit += 1
            }
            return unit == 0 ? "\(bytes) bytes" : "\(String(format: "%.1f", value)) \(units[unit])"
        }
    }

    struct Stress: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append synthetic events from several writers, printing each acknowledged sequence number.",
            discussion: "For durability drills: kill the process at any moment, then run 'tutela audit verify'.",
            shouldDisplay: false
        )
        @OptionGroup var options: GlobalOptions
        @Option(help: "Events to append.") var count = 1000
        @Option(help: "Concurrent writers.") var writers = 8

        func run() async throws {
            try await Console.run(json: options.json) {
                let tutela = try await Tutela.open(options.configuration)
                try await tutela.stressAudit(count: count, writers: writers) { sequence in
                    FileHandle.standardOutput.write(Data("\(sequence)\n".utf8))
                }
            }
        }
    }
}

import ArgumentParser
import Foundation
import Governance
import TutelaCore

/// The `tutela` command line: administration of keys, data, and the benchmark.
@main
struct TutelaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tutela",
        abstract: "Privacy-focused customer data governance: encrypted store, keys, policies, audit.",
        version: Tutela.version,
        subcommands: [
            InitCommand.self, KeysCommand.self, DataCommand.self, PrincipalsCommand.self, RolesCommand.self,
            PolicyCommand.self, AuditCommand.self, APIKeysCommand.self, ServeCommand.self, BenchCommand.self,
        ]
    )
}

/// Options every command that touches a data directory takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "The data directory (env TUTELA_DATA_DIR, default ./tutela-data).")
    var dataDirectory: String?

    @Option(name: .customLong("keys-dir"), help: "The keys directory (env TUTELA_KEYS_DIR, default ./Keys).")
    var keysDirectory: String?

    @Option(
        name: .customLong("policies-dir"),
        help: "The policies directory (env TUTELA_POLICIES_DIR, default ./Policies)."
    )
    var policiesDirectory: String?

    @Flag(name: .long, help: "Print machine-readable JSON on standard output.")
    var json = false

    var configuration: TutelaConfiguration {
        let environment = ProcessInfo.processInfo.environment
        return TutelaConfiguration(
            dataDirectory: dataDirectory ?? environment["TUTELA_DATA_DIR"] ?? TutelaConfiguration.defaultDataDirectory,
            keysDirectory: keysDirectory ?? environment["TUTELA_KEYS_DIR"] ?? TutelaConfiguration.defaultKeysDirectory,
            policiesDirectory: policiesDirectory ?? environment["TUTELA_POLICIES_DIR"]
                ?? TutelaConfiguration.defaultPoliciesDirectory,
            environment: environment
        )
    }
}

/// Error reporting, progress and output shared by the commands.
enum Console {
    /// Runs a command body, turning Tutela's errors into a message on stderr and exit code 1.
    ///
    /// With `json`, the message is one line of JSON shaped as the gateway's error bodies,
    /// `{"error":{"code":"not_found","message":"..."}}`, so that a script reads the stable code
    /// rather than matching the wording.
    static func run(json: Bool, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as TutelaError {
            printError(errorReport(error, json: json))
            throw ExitCode(1)
        }
    }

    /// The line `run` writes for `error`.
    static func errorReport(_ error: TutelaError, json: Bool) -> String {
        // A message may quote what the user typed (an id that names no record): a control
        // character in it is written out, never sent to the terminal as an escape sequence
        // (JSON's escapes leave the C1 controls as they are).
        let message = error.message.escapingControlCharacters
        guard json else { return "error: \(message)" }
        var report = JSONWriter(capacity: message.utf8.count + 64)
        report.append(raw: "{\"error\":{\"code\":")
        report.append(string: error.code.rawValue)
        report.append(raw: ",\"message\":")
        report.append(string: message)
        report.append(raw: "}}")
        return report.text
    }

    /// Writes a line to standard error.
    static func printError(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// Writes a value as pretty JSON to standard output.
    static func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// Milliseconds since the epoch.
    static var now: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// A progress line on stderr: rewritten in place on a terminal; otherwise one line per quarter
    /// for long work and one at the end.
    final class Progress: @unchecked Sendable {
        // Called one report at a time: a command's phases run one after another (an import's
        // writing phase reports from the database writer's thread, after validation ended).
        private let isTerminal = isatty(STDERR_FILENO) == 1
        private var lastDecile = -1
        private var lastLabel = ""

        func report(_ label: String, _ done: Int, _ total: Int) {
            if label != lastLabel {
                if !lastLabel.isEmpty, isTerminal { FileHandle.standardError.write(Data("\n".utf8)) }
                lastLabel = label
                lastDecile = -1
            }
            let percent = total > 0 ? done * 100 / total : 100
            if isTerminal {
                FileHandle.standardError.write(Data("\r\(label) \(percent)% (\(done)/\(total))".utf8))
            } else if percent / 25 != lastDecile, total >= 5000 || done == total {
                lastDecile = percent / 25
                Console.printError("\(label) \(percent)% (\(done)/\(total))")
            }
        }

        func finish() {
            if isTerminal, !lastLabel.isEmpty { FileHandle.standardError.write(Data("\n".utf8)) }
            lastLabel = ""
        }
    }
}

/// Refuses a number option below `minimum`, as ArgumentParser reports a usage error (exit 64).
func requireAtLeast(_ minimum: Int, _ value: Int, _ option: String) throws {
    guard value >= minimum else { throw ValidationError("\(option) must be at least \(minimum), not \(value)") }
}

/// For counts of generated rows, which are held in memory: refuses one that could not be,
/// before any work starts.
func requireWithin(_ range: ClosedRange<Int>, _ value: Int, _ option: String) throws {
    guard range.contains(value) else {
        throw ValidationError("\(option) must be from \(range.lowerBound) to \(range.upperBound), not \(value)")
    }
}

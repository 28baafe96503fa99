import ArgumentParser
import Foundation
import Governance
import KeyManagement
import TutelaCore

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "List, rotate, re-wrap, disable, enable and destroy key-encryption-key versions.",
        subcommands: [List.self, Rotate.self, Rewrap.self, Disable.self, Enable.self, Destroy.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show key versions, states and data-key counts.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await Console.run(json: options.json) {
                let status = try await Tutela.open(options.configuration).keyStatus()
                if options.json { return try Console.printJSON(status) }
                print("VERSION  STATE         DATA KEYS  CREATED")
                for entry in status {
                    let state = entry.state.padding(toLength: 12, withPad: " ", startingAt: 0)
                    let count = String(entry.dataKeys).padding(toLength: 9, withPad: " ", startingAt: 0)
                    print(
                        "\(String(entry.version).padding(toLength: 7, withPad: " ", startingAt: 0))  \(state)  \(count)  \(entry.createdAt)"
                    )
                }
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a new active version; older versions stay readable (decrypt-only)."
        )
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await Console.run(json: options.json) {
                let version = try await Tutela.open(options.configuration).rotateKey(now: Console.now)
                if options.json { return try Console.printJSON(["active_version": version]) }
                print("Key version \(version) is now active. Run 'tutela keys rewrap' to move data keys onto it.")
            }
        }
    }

    struct Rewrap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-wrap every data key under the newest version, in batches; safe to re-run after a crash."
        )
        @OptionGroup var options: GlobalOptions
        @Option(help: "Data keys per atomic batch.") var batchSize = 500

        func validate() throws {
            try requireAtLeast(1, batchSize, "--batch-size")
        }

        func run() async throws {
            try await Console.run(json: options.json) {
                let progress = Console.Progress()
                let count = try await Tutela.open(options.configuration).rewrapAll(batchSize: batchSize) {
                    done,
                    total in
                    progress.report("rewrap", done, total)
                }
                progress.finish()
                if options.json { return try Console.printJSON(["rewrapped": count]) }
                print("Re-wrapped \(count) data keys.")
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Disable a decrypt-only version: data keys under it become unreadable until enabled."
        )
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The key version.") var version: Int

        func run() async throws {
            try await Console.run(json: options.json) {
                try await Tutela.open(options.configuration).changeKey(version: version, .disable)
                if options.json {
                    return try Console.printJSON(JSONReports.KeyVersionReport(version: version, state: "disabled"))
                }
                print("Key version \(version) is disabled.")
            }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled version again (decrypt-only).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The key version.") var version: Int

        func run() async throws {
            try await Console.run(json: options.json) {
                try await Tutela.open(options.configuration).changeKey(version: version, .enable)
                if options.json {
                    return try Console.printJSON(JSONReports.KeyVersionReport(version: version, state: "decrypt_only"))
                }
                print("Key version \(version) is decrypt-only again.")
            }
        }
    }

    struct Destroy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Destroy a version's key material for good; refused while any data key is wrapped under it."
        )
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The key version.") var version: Int
        @Flag(name: .customLong("irreversibly-destroy-key-material"), help: "Confirm that this cannot be undone.")
        var confirmed = false

        func run() async throws {
            try await Console.run(json: options.json) {
                guard confirmed else {
                    throw TutelaError(
                        .invalidInput,
                        "destroying a key version cannot be undone; add --irreversibly-destroy-key-material"
                    )
                }
                try await Tutela.open(options.configuration).destroyKeyVersion(version)
                if options.json {
                    return try Console.printJSON(JSONReports.KeyVersionReport(version: version, state: "destroyed"))
                }
                print("Key version \(version) was destroyed.")
            }
        }
    }
}

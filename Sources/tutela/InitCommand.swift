import ArgumentParser
import Foundation
import Governance

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create the data directory, the master key (unless TUTELA_MASTER_KEY is set) and the keyring."
    )

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        try await Console.run(json: options.json) {
            let report = try await Tutela.initialize(options.configuration, now: Console.now)
            if options.json {
                try Console.printJSON(report)
                return
            }
            print("Initialized \(report.dataDirectory)")
            print("  keyring:    \(report.keyringPath)")
            print("  master key: \(report.masterKeyPath ?? "from TUTELA_MASTER_KEY")")
            if report.masterKeyPath != nil {
                print("Keep the master key secret and backed up: without it no data can be read.")
            }
        }
    }
}

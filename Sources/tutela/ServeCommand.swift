import ArgumentParser
import Foundation
import Gateway
import Governance
import Hummingbird
import TutelaCore

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the HTTP API on the data directory of 'tutela init' until SIGTERM or SIGINT."
    )

    @OptionGroup var options: GlobalOptions
    @Option(help: "Address to bind (env TUTELA_HOST).") var host: String?
    @Option(help: "Port (env TUTELA_PORT).") var port: Int?
    @Option(help: "Largest request body in bytes.") var maxBodyBytes = 1 << 20
    @Option(help: "Requests per second per API key.") var rateLimit = 100.0
    @Option(help: "Burst size per API key.") var burst = 200.0
    @Option(help: "Seconds before a request times out.") var timeout = 10
    @Option(help: "Requests in flight before new ones get 503.") var maxConcurrent = 256

    func run() async throws {
        try await Console.run {
            let environment = ProcessInfo.processInfo.environment
            let tutela = try await Tutela.open(options.configuration)
            let configuration = GatewayConfiguration(
                host: host ?? environment["TUTELA_HOST"] ?? "127.0.0.1",
                port: port ?? environment["TUTELA_PORT"].flatMap(Int.init) ?? 8080,
                maxBodyBytes: maxBodyBytes,
                requestsPerSecond: rateLimit,
                burst: burst,
                requestTimeout: .seconds(timeout),
                maxConcurrentRequests: maxConcurrent
            )
            Console.printError(
                "Serving on http://\(configuration.host):\(configuration.port) (Ctrl-C stops gracefully)"
            )
            try await buildApplication(tutela: tutela, configuration: configuration).runService()
        }
    }
}

struct APIKeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apikeys",
        abstract: "Create, list and revoke API keys; a key is shown once and stored only as a hash.",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key for a principal and print it once.")
        @OptionGroup var options: GlobalOptions
        @Option(help: "The principal the key authenticates.") var principal: String
        @Option(help: "Expiry: RFC 3339 time, or a duration such as 30d or 12h.") var expires: String?

        func run() async throws {
            try await Console.run {
                let tutela = try await Tutela.open(options.configuration)
                let expiry = try expires.map(Self.expiry)
                let (id, token) = try await tutela.createAPIKey(principal: principal, expiresAt: expiry)
                if options.json { return try Console.printJSON(["id": id, "token": token]) }
                print(token)
                Console.printError("Key \(id) for \(principal). It is shown only now; keep it secret.")
            }
        }

        static func expiry(_ text: String) throws -> Int64 {
            let units: [Character: Int64] = ["d": 86_400_000, "h": 3_600_000, "m": 60_000]
            if let unit = text.last.flatMap({ units[$0] }), let count = Int64(text.dropLast()), count > 0 {
                return Console.now + count * unit
            }
            guard let time = CalendarDate.parseTimestamp(Substring(text)) else {
                throw TutelaError(.invalidInput, "--expires takes an RFC 3339 time or a duration like 30d, 12h, 15m")
            }
            return time
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never their secrets).")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await Console.run {
                let keys = try await Tutela.open(options.configuration).listAPIKeys()
                if options.json { return try Console.printJSON(keys) }
                for key in keys {
                    print(
                        "\(key.id)  \(key.principal)  \(key.state)  created \(key.createdAt)"
                            + (key.expiresAt.map { "  expires \($0)" } ?? "")
                    )
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a key; it is refused from the next request on."
        )
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The key id.") var id: String

        func run() async throws {
            try await Console.run {
                try await Tutela.open(options.configuration).revokeAPIKey(id: id)
                print("Key \(id) is revoked.")
            }
        }
    }
}

import Crypto
import Foundation
import Governance
import KeyManagement
import Policy
import TutelaCore

/// A temporary Tutela installation for one test: its own data and keys directories, the
/// repository's shipped policies, and a master key passed through the environment.
public struct TestEnvironment: Sendable {
    /// The root of the temporary tree.
    public let root: String
    /// The configuration pointing into it.
    public let configuration: TutelaConfiguration

    /// The repository's root folder.
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The shipped `Policies/` folder.
    public static var policiesDirectory: String { repositoryRoot + "/Policies" }

    /// Creates an empty temporary tree; nothing is initialized yet.
    /// - Parameter masterKeyInEnvironment: pass the master key through `TUTELA_MASTER_KEY`
    ///   rather than a key file.
    public init(masterKeyInEnvironment: Bool = false) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("tutela-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var environment: [String: String] = [:]
        if masterKeyInEnvironment {
            environment["TUTELA_MASTER_KEY"] = Self.encodedMasterKey(SymmetricKey(size: .bits256))
        }
        configuration = TutelaConfiguration(
            dataDirectory: root + "/data",
            keysDirectory: root + "/keys",
            policiesDirectory: Self.policiesDirectory,
            environment: environment
        )
    }

    /// The textual form of a master key, as `TUTELA_MASTER_KEY` takes it.
    public static func encodedMasterKey(_ key: SymmetricKey) -> String {
        "tutela-mk1:" + key.withUnsafeBytes { Data($0).base64EncodedString() }
    }

    /// Initializes and opens Tutela here.
    public func start() async throws -> Tutela {
        _ = try await Tutela.initialize(configuration, now: 1_700_000_000_000)
        return try await Tutela.open(configuration)
    }

    /// Initializes, opens and imports a generated sample data set.
    public func startWithSample(customers: Int = 40) async throws -> (Tutela, SampleDataset) {
        let tutela = try await start()
        let dataset = SampleDataset.generate(customers: customers, items: 50, interactionsPerCustomer: 3)
        for (collection, name, content) in dataset.files {
            _ = try await tutela.importRecords(
                into: collection,
                data: Data(content.utf8),
                format: RecordFileFormat(fileName: name) ?? .csv
            )
        }
        return (tutela, dataset)
    }

    /// The shipped schema.
    public static func schema() throws -> Schema {
        try SchemaLoader.load(file: policiesDirectory + "/schema.yaml")
    }

    /// The `--data-dir`, `--keys-dir` and `--policies-dir` arguments that point a `tutela`
    /// command at this installation.
    public var pathArguments: [String] {
        [
            "--data-dir", configuration.dataDirectory, "--keys-dir", configuration.keysDirectory,
            "--policies-dir", configuration.policiesDirectory,
        ]
    }

    /// Removes the temporary tree.
    public func remove() {
        try? FileManager.default.removeItem(atPath: root)
    }
}

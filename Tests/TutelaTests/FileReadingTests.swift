import Foundation
import Gateway
import Testing
import TutelaCore

@Suite("Reading the files a command is given")
struct FileReadingTests {
    @Test("a file is read whole; a missing file or a directory is refused with the reason, in the code asked for")
    func reasons() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tutela-reading-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/rows.csv"
        try Data("customer_id\nc1\n".utf8).write(to: URL(fileURLWithPath: file))
        #expect(try FileReading.contents(of: file) == Data("customer_id\nc1\n".utf8))

        let missing = #expect(throws: TutelaError.self) { try FileReading.contents(of: directory + "/nope.csv") }
        #expect(missing?.code == .io)
        #expect(missing?.message == "cannot read \(directory)/nope.csv: no such file or directory")

        let folder = #expect(throws: TutelaError.self) { try FileReading.requireReadable(directory) }
        #expect(folder?.message == "cannot read \(directory): it is a directory")

        // The configuration file of `tutela serve` is named as such, with its own code for a missing file.
        let configuration = #expect(throws: TutelaError.self) {
            try ServeSettings.load(file: directory + "/serve.yaml")
        }
        #expect(configuration?.code == .notFound)
        #expect(
            configuration?.message
                == "cannot read the configuration file \(directory)/serve.yaml: no such file or directory"
        )
    }
}

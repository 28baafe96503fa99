import Foundation
import Gateway
import Testing
import TutelaCore

@Suite("Reading and writing the files a command is given")
struct FileReadingTests {
    @Test("a file is read whole; a missing file or a directory is refused with the reason, in the code asked for")
    func reasons() throws {
        let directory = try Self.scratchDirectory()
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

    @Test("an output file is made private, appears whole when finished, and a bad place is named with the reason")
    func durableWriter() throws {
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/export.jsonl"
        let writer = try DurableFileWriter(path: path)
        try writer.write("{\"a\":1}\n")
        #expect(!FileManager.default.fileExists(atPath: path))
        try writer.finish()
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "{\"a\":1}\n")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["export.jsonl"])

        // Two writers of one path, and one that fails: each writes a file of its own, the last
        // to finish is in place whole, and the failed one leaves nothing behind.
        let first = try DurableFileWriter(path: path)
        let second = try DurableFileWriter(path: path)
        let abandoned = try DurableFileWriter(path: path)
        try first.write("first\n")
        try second.write("second\n")
        try abandoned.write("never\n")
        try first.write("first again\n")
        try second.finish()
        try first.finish()
        abandoned.abandon()
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "first\nfirst again\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["export.jsonl"])
        // A whole file at once.
        try DurableFileWriter.write("whole\n", to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "whole\n")

        let nowhere = #expect(throws: TutelaError.self) {
            _ = try DurableFileWriter(path: directory + "/missing/export.jsonl")
        }
        #expect(nowhere?.message == "cannot create \(directory)/missing/export.jsonl: no such file or directory")
    }

    /// A new empty directory; the test removes it.
    private static func scratchDirectory() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tutela-files-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }
}

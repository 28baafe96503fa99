import Foundation

/// Runs a program to its end and keeps what it printed.
public struct ChildProcess: Sendable {
    /// The exit status.
    public let status: Int32
    /// Standard output, with standard error when they were merged.
    public let output: String
    /// Standard error; empty when it was merged into the output.
    public let errors: String

    /// The `tutela` binary that `Scripts/test.sh` builds before the tests.
    public static let tutela = TestEnvironment.repositoryRoot + "/.build/debug/tutela"

    /// The `tutela` binary's path.
    /// - Throws: when it has not been built, saying how to build it.
    public static func builtTutela() throws -> String {
        guard FileManager.default.isExecutableFile(atPath: tutela) else {
            throw MissingBinary(description: "build the tutela product first (Scripts/test.sh does): \(tutela)")
        }
        return tutela
    }

    /// The error of `builtTutela`.
    public struct MissingBinary: Error, CustomStringConvertible {
        public let description: String
    }

    /// Runs `executable` with `arguments`.
    /// - Parameters:
    ///   - environment: the child's environment; nil inherits this process's.
    ///   - mergingErrors: send standard error into the same pipe as standard output.
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        mergingErrors: Bool = false
    ) throws -> ChildProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = mergingErrors ? output : errors
        try process.run()
        // Standard error drains on its own thread, so that neither pipe fills and stops the child.
        let errorDrain = mergingErrors ? nil : PipeDrain(errors)
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ChildProcess(
            status: process.terminationStatus,
            output: String(decoding: data, as: UTF8.self),
            errors: errorDrain.map { String(decoding: $0.wait(), as: UTF8.self) } ?? ""
        )
    }
}

/// Reads a pipe to its end on a thread of its own.
private final class PipeDrain: @unchecked Sendable {
    // Written by the reading thread before it signals, read only after the wait.
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ pipe: Pipe) {
        Thread {
            self.data = pipe.fileHandleForReading.readDataToEndOfFile()
            self.done.signal()
        }.start()
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}

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

    /// Runs `executable` with `arguments` to its end.
    ///
    /// The wait happens on a thread of its own, not on one of Swift's cooperative threads: on
    /// two cores there are two of those, and tests that blocked them while a child ran (a
    /// benchmark, the walkthrough) held up every other test's timers for as long.
    /// - Parameters:
    ///   - environment: the child's environment; nil inherits this process's.
    ///   - mergingErrors: send standard error into the same pipe as standard output.
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        mergingErrors: Bool = false
    ) async throws -> ChildProcess {
        try await onOwnThread {
            try runBlocking(executable, arguments, environment: environment, mergingErrors: mergingErrors)
        }
    }

    /// Waits for a running process to end, on a thread of its own (see `run`).
    public static func waitForExit(_ process: Process) async {
        let _: Void? = try? await onOwnThread { process.waitUntilExit() }
    }

    /// Runs `body` on a new thread and returns its result.
    private static func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, any Error>, Never>) in
            Thread { continuation.resume(returning: Result { try body() }) }.start()
        }
        return try result.get()
    }

    private static func runBlocking(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]?,
        mergingErrors: Bool
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

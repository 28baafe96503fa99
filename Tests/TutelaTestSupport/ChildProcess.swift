import Foundation

/// Runs a program to its end and keeps what it printed.
public struct ChildProcess: Sendable {
    /// The exit status, or 128 plus the number of the signal that ended the program.
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

    /// Runs `executable` with `arguments` to its end (started as a `SpawnedProcess`).
    ///
    /// The wait happens on a thread of its own, not on one of Swift's cooperative threads: on
    /// two cores there are two of those, and tests that blocked them while a child ran (a
    /// benchmark, the walkthrough) held up every other test's timers for as long.
    /// - Parameters:
    ///   - environment: the child's environment; nil inherits this process's.
    ///   - mergingErrors: send standard error into the same pipe as standard output.
    /// - Returns: the outcome; `status` is the exit status, or 128 plus the number of the
    ///   signal that ended the child.
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        mergingErrors: Bool = false
    ) async throws -> ChildProcess {
        let output = try SpawnedProcess.pipe()
        var errors = output
        let child: SpawnedProcess
        do {
            if !mergingErrors { errors = try SpawnedProcess.pipe() }
            child = try SpawnedProcess(
                executable,
                arguments,
                environment: environment,
                standardOutput: output.write,
                standardError: errors.write
            )
        } catch {
            for descriptor in Set([output.read, output.write, errors.read, errors.write]) { close(descriptor) }
            throw error
        }
        // Only the child writes now, so each pipe ends when the child is done with it.
        close(output.write)
        if !mergingErrors { close(errors.write) }
        // Both pipes drain at once, so that neither fills and stops the child.
        let errorDrain = mergingErrors ? nil : PipeDrain(errors.read)
        let data = await PipeDrain(output.read).data()
        let termination = await child.termination()
        let errorData = await errorDrain?.data() ?? Data()
        let status: Int32 =
            switch termination {
            case .exited(let status): status
            case .signalled(let signal): 128 + signal
            }
        return ChildProcess(
            status: status,
            output: String(decoding: data, as: UTF8.self),
            errors: String(decoding: errorData, as: UTF8.self)
        )
    }
}

/// Reads a pipe to its end on a thread of its own, and closes it.
private struct PipeDrain: Sendable {
    private let task: Task<Data, Never>

    init(_ descriptor: Int32) {
        task = Task {
            await onOwnThread {
                FileHandle(fileDescriptor: descriptor, closeOnDealloc: true).readDataToEndOfFile()
            }
        }
    }

    func data() async -> Data {
        await task.value
    }
}

import Foundation
import TutelaCore

#if canImport(Glibc)
import Glibc
#endif

/// A program a test starts, signals and waits for.
///
/// Children are started with `posix_spawn` here rather than Foundation's `Process`. On Linux,
/// `Process.run()` lists `/proc/self/fd` to close the parent's descriptors in the child, and
/// copies the whole 256-byte name field of every entry it reads. When the listing fills its
/// buffer (about 1,360 descriptors open; the test process holds up to 1,700 while its suites
/// run in parallel, mostly database files), that copy reads past the buffer's end, and now and
/// then into an unmapped page: the whole test run died of it twice (a segfault in libc's
/// `memmove` under `Process.run()`). Here the child drops every inherited descriptor above
/// standard error with one `closefrom` action, and nothing lists the directory.
public final class SpawnedProcess: Sendable {
    /// How a child ended.
    public enum Termination: Equatable, Sendable {
        /// It exited with this status.
        case exited(Int32)
        /// A signal with this number ended it.
        case signalled(Int32)
    }

    /// The child's process identifier.
    public let identifier: pid_t

    /// Starts `executable` with `arguments`.
    /// - Parameters:
    ///   - environment: the child's environment; nil passes this process's on.
    ///   - standardOutput: a descriptor the child writes its standard output to (it gets a copy;
    ///     the caller keeps and closes its own); nil discards the output.
    ///   - standardError: the same for standard error.
    /// - Throws: when the program cannot be started, with the reason.
    public init(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        standardOutput: Int32? = nil,
        standardError: Int32? = nil
    ) throws {
        var actions = posix_spawn_file_actions_t()
        try Self.check(posix_spawn_file_actions_init(&actions), "prepare")
        defer { posix_spawn_file_actions_destroy(&actions) }
        try Self.check(posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0), "prepare")
        for (target, source) in [(Int32(1), standardOutput), (2, standardError)] {
            if let source {
                try Self.check(posix_spawn_file_actions_adddup2(&actions, source, target), "prepare")
            } else {
                try Self.check(posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0), "prepare")
            }
        }
        guard let addCloseFrom = Self.addCloseFrom else {
            throw SpawnError(description: "this C library cannot close descriptors in a spawned child (glibc 2.34 can)")
        }
        try Self.check(addCloseFrom(&actions, 3), "prepare")

        // A child starts with every signal at its default action and none blocked, whatever
        // this process ignores or blocks (a server in it ignores SIGTERM to catch it otherwise).
        var attributes = posix_spawnattr_t()
        try Self.check(posix_spawnattr_init(&attributes), "prepare")
        defer { posix_spawnattr_destroy(&attributes) }
        var allSignals = sigset_t()
        var noSignals = sigset_t()
        sigfillset(&allSignals)
        sigemptyset(&noSignals)
        try Self.check(posix_spawnattr_setsigdefault(&attributes, &allSignals), "prepare")
        try Self.check(posix_spawnattr_setsigmask(&attributes, &noSignals), "prepare")
        try Self.check(
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)),
            "prepare"
        )

        let argumentList = ([executable] + arguments).map { strdup($0) } + [nil]
        let environmentList =
            environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer {
            for item in argumentList { free(item) }
            for item in environmentList ?? [] { free(item) }
        }
        var identifier = pid_t()
        let result: Int32 =
            if let environmentList {
                posix_spawn(&identifier, executable, &actions, &attributes, argumentList, environmentList)
            } else {
                posix_spawn(&identifier, executable, &actions, &attributes, argumentList, environ)
            }
        try Self.check(result, "start \(executable)")
        self.identifier = identifier
    }

    /// Sends the child `signal` (by default a request to stop).
    public func signal(_ signal: Int32 = SIGTERM) {
        kill(identifier, signal)
    }

    /// Waits for the child to end and collects it; call it once.
    ///
    /// The wait holds a thread of its own, not a cooperative one (see `ChildProcess.run`).
    public func termination() async -> Termination {
        let identifier = identifier
        return await onOwnThread {
            var status: Int32 = 0
            while waitpid(identifier, &status, 0) == -1 && errno == EINTR {}
            // The wait status's layout: the low 7 bits are the ending signal, or 0 for an exit
            // whose status is in the next 8.
            let signal = status & 0x7f
            return signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
        }
    }

    /// A pipe whose ends no child inherits unless handed on as its `standardOutput` or
    /// `standardError` (every child closes the rest; the ends are close-on-exec as well).
    public static func pipe() throws -> (read: Int32, write: Int32) {
        var ends: [Int32] = [-1, -1]
        guard Glibc.pipe(&ends) == 0 else {
            throw SpawnError(description: "cannot make a pipe: \(FileReading.reason(errno))")
        }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        return (ends[0], ends[1])
    }

    /// The error of a child that could not be started.
    public struct SpawnError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The signature of `posix_spawn_file_actions_addclosefrom_np`.
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later), which its header
    /// declares only for GNU sources: the module Swift imports does not show it.
    private static let addCloseFrom: AddCloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map {
        unsafeBitCast($0, to: AddCloseFrom.self)
    }

    private static func check(_ result: Int32, _ step: String) throws {
        guard result != 0 else { return }
        throw SpawnError(description: "cannot \(step): \(FileReading.reason(result))")
    }
}

/// Runs `body` on a new thread and returns its result, so that a blocking wait holds no
/// cooperative thread.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

import Foundation
import Testing
import TutelaTestSupport

@Suite("Children started by the tests")
struct SpawnedProcessTests {
    @Test("a child inherits standard input, output and error only")
    func descriptors() async throws {
        // A descriptor that would pass to a child started with a plain exec.
        let inheritable = open("/dev/null", O_RDONLY)
        try #require(inheritable > 2)
        defer { close(inheritable) }
        let run = try await ChildProcess.run("/bin/sh", ["-c", "ls /proc/$$/fd"])
        #expect(run.status == 0)
        #expect(run.output.split(separator: "\n") == ["0", "1", "2"])
    }

    @Test("exit statuses, ending signals, standard error and a missing program are reported")
    func outcomes() async throws {
        let failed = try await ChildProcess.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"])
        #expect(failed.status == 3 && failed.output == "out\n" && failed.errors == "err\n")
        let merged = try await ChildProcess.run("/bin/sh", ["-c", "echo out; echo err >&2"], mergingErrors: true)
        #expect(merged.output == "out\nerr\n" && merged.errors.isEmpty)
        let killed = try await ChildProcess.run("/bin/sh", ["-c", "kill -KILL $$"])
        #expect(killed.status == 128 + SIGKILL)
        let environment = try await ChildProcess.run("/usr/bin/env", [], environment: ["ONLY": "this"])
        #expect(environment.output == "ONLY=this\n")

        let sleeper = try SpawnedProcess("/bin/sleep", ["30"])
        sleeper.signal()
        #expect(await sleeper.termination() == .signalled(SIGTERM))
        let missing = #expect(throws: SpawnedProcess.SpawnError.self) {
            _ = try SpawnedProcess("/nonexistent/program", [])
        }
        #expect(missing?.description == "cannot start /nonexistent/program: no such file or directory")
    }
}

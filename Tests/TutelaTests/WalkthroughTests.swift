import Foundation
import Testing
import TutelaTestSupport

@Suite("README walkthrough")
struct WalkthroughTests {
    @Test("the README's HTTP walkthrough, run by Scripts/walkthrough.sh against a live server, passes every check")
    func readmeWalkthrough() throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: AuditCrashTests.binary),
            "build the tutela product first (Scripts/test.sh does): \(AuditCrashTests.binary)"
        )
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["bash", TestEnvironment.repositoryRoot + "/Scripts/walkthrough.sh"]
        var environment = ProcessInfo.processInfo.environment
        environment["TUTELA"] = AuditCrashTests.binary
        for name in ["TUTELA_DATA_DIR", "TUTELA_KEYS_DIR", "TUTELA_MASTER_KEY", "TUTELA_CONFIG"] {
            environment[name] = nil
        }
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("walkthrough: all checks passed"))
        #expect(!text.contains("FAIL"))
    }
}

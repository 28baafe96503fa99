import Foundation
import Testing
import TutelaTestSupport

@Suite("README walkthrough")
struct WalkthroughTests {
    @Test("the README's HTTP walkthrough, run by Scripts/walkthrough.sh against a live server, passes every check")
    func readmeWalkthrough() async throws {
        let tutela = try ChildProcess.builtTutela()
        var environment = ProcessInfo.processInfo.environment
        environment["TUTELA"] = tutela
        for name in ["TUTELA_DATA_DIR", "TUTELA_KEYS_DIR", "TUTELA_MASTER_KEY", "TUTELA_CONFIG"] {
            environment[name] = nil
        }
        let run = try await ChildProcess.run(
            "/usr/bin/env",
            ["bash", TestEnvironment.repositoryRoot + "/Scripts/walkthrough.sh"],
            environment: environment,
            mergingErrors: true
        )
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("walkthrough: all checks passed"))
        #expect(!run.output.contains("FAIL"))
    }
}

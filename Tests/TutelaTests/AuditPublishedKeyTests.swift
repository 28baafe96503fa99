import Crypto
import Foundation
import Governance
import Testing
import TutelaTestSupport

@Suite("The published checkpoint verification key")
struct AuditPublishedKeyTests {
    @Test("verify fails when Keys/audit-checkpoint.pub no longer holds the keyring's key, and says what it should read")
    func replacedPublishedKey() async throws {
        let tutela = try ChildProcess.builtTutela()
        let environment = try TestEnvironment(masterKeyInEnvironment: true)
        defer { environment.remove() }
        let opened = try await environment.start()
        let path = environment.configuration.auditPublicKeyPath
        #expect(opened.publishedAuditKeyProblem() == nil)
        let expected = opened.auditPublicKeyText.trimmingCharacters(in: .whitespacesAndNewlines)

        // Another key in the right form: an independent verifier would accept its signatures.
        let other = Curve25519.Signing.PrivateKey().publicKey.rawRepresentation.base64EncodedString()
        try Data("ed25519:\(other)\n".utf8).write(to: URL(fileURLWithPath: path))
        let verified = try await ChildProcess.run(
            tutela,
            ["audit", "verify", "--json"] + environment.pathArguments,
            environment: environment.configuration.environment
        )
        #expect(verified.status == 1)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(verified.output.utf8)) as? [String: Any])
        #expect(report["valid"] as? Bool == false)
        let problems = report["problems"] as? [String] ?? []
        #expect(problems.count == 1)
        #expect(problems.first?.contains("does not hold this keyring's checkpoint key") == true)
        #expect(problems.first?.hasSuffix("it should read \(expected)") == true)

        try FileManager.default.removeItem(atPath: path)
        #expect(opened.publishedAuditKeyProblem()?.contains("is missing or unreadable") == true)
        try Data(opened.auditPublicKeyText.utf8).write(to: URL(fileURLWithPath: path))
        #expect(opened.publishedAuditKeyProblem() == nil)
    }
}

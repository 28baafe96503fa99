import Foundation
import Governance
import Testing
import TutelaCore
import TutelaTestSupport

@Suite("API key tokens")
struct APIKeyTokenTests {
    @Test("only tut_<16 ASCII characters>_<secret> with the right secret authenticates")
    func tokenShapes() async throws {
        let (fixture, _) = try await GatewayFixture.make()
        defer { fixture.environment.remove() }
        let token = try #require(fixture.keys["agent"])
        #expect(try await fixture.tutela.authenticate(token: token, requestID: "t") == "agent")
        let id = String(token.dropFirst(4).prefix(16))
        let secret = String(token.dropFirst(21))
        let refused = [
            "tut_\(id)_",  // no secret
            "tut_\(id)",  // no separator
            "tux_\(id)_\(secret)",  // wrong prefix
            "tut_\(id.dropLast())_\(secret)",  // id one character short
            "tut_\(id.dropLast())__\(secret)",  // separator inside the id
            "tut_\(id.dropLast(2))é_\(secret)",  // a non-ASCII id of 16 bytes
            "tut_\(id)_\(secret.dropLast())\(secret.last == "A" ? "B" : "A")",  // wrong secret
            "tut_\(id)_\(secret)_",  // secret with a byte added
            "",
        ]
        for candidate in refused {
            let error = await #expect(throws: TutelaError.self, "\(candidate)") {
                try await fixture.tutela.authenticate(token: candidate, requestID: "t")
            }
            #expect(error?.code == (candidate.isEmpty ? .missingCredentials : .invalidCredentials))
        }
    }
}

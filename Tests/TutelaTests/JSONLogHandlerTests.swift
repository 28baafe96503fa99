import Foundation
import Logging
import Testing

@testable import Gateway

@Suite("JSON log lines")
struct JSONLogHandlerTests {
    /// A line without its leading time field, which may differ by a millisecond between two calls.
    private func withoutTime(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        return String(text.drop { $0 != "," })
    }

    @Test("a request line written by the fast path is the line the logger writes for the same event")
    func requestLineMatchesLoggedEvent() throws {
        var handler = JSONLogHandler(label: "tutela.gateway")
        for metadata: Logger.Metadata in [[:], ["instance": "a\"b"]] {
            handler.metadata = metadata
            let fast = handler.requestLine(
                requestID: "r1",
                method: "GET",
                route: "/v1/customers/{id}",
                status: 200,
                milliseconds: "1.250"
            )
            let logged = handler.line(
                for: LogEvent(
                    level: .info,
                    message: "request",
                    metadata: [
                        "request_id": "r1", "method": "GET", "route": "/v1/customers/{id}", "status": "200",
                        "duration_ms": "1.250",
                    ],
                    source: "Gateway",
                    file: #fileID,
                    function: #function,
                    line: #line
                )
            )
            #expect(withoutTime(fast) == withoutTime(logged))
            let object = try #require(JSONSerialization.jsonObject(with: Data(fast)) as? [String: String])
            #expect(object["route"] == "/v1/customers/{id}")
            #expect(object["status"] == "200")
            #expect(object["level"] == "info")
        }
    }

    @Test("durations are milliseconds with three decimals")
    func durationFormat() {
        #expect(GatewayMiddleware.milliseconds(0.001_25) == "1.250")
        #expect(GatewayMiddleware.milliseconds(0.000_003) == "0.003")
        #expect(GatewayMiddleware.milliseconds(12.345_678_9) == "12345.679")
        #expect(GatewayMiddleware.milliseconds(0.000_04) == "0.040")
    }
}

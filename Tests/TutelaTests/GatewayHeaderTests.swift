import HTTPTypes
import Testing

@testable import Gateway

@Suite("Request headers")
struct GatewayHeaderTests {
    @Test("a header's value: absent, once, or repeated and joined as HTTP joins it")
    func headerValue() {
        var fields = HTTPFields()
        fields[.accept] = "application/json"
        #expect(GatewayHandlers.header(.authorization, in: fields) == nil)
        fields.append(HTTPField(name: .authorization, value: "Bearer tut_a"))
        #expect(GatewayHandlers.header(.authorization, in: fields) == "Bearer tut_a")
        // Repeated: the joined value, which no API key matches, rather than either one.
        fields.append(HTTPField(name: .authorization, value: "Bearer tut_b"))
        #expect(GatewayHandlers.header(.authorization, in: fields) == "Bearer tut_a, Bearer tut_b")
        #expect(GatewayHandlers.header(.authorization, in: fields) == fields[.authorization])
        #expect(GatewayHandlers.header(purposeHeader, in: fields) == nil)
    }
}

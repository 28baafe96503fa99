import Audit
import Foundation
import Governance
import Policy
import Testing
import TutelaCore
import TutelaTestSupport

@Suite("Hand-written JSON: audit events and records")
struct JSONEncodingTests {
    @Test("an audit event's canonical bytes are exactly as docs/AUDIT.md describes")
    func canonicalEvent() {
        var event = AuditEvent(
            time: -1_700_000_000_123,
            requestID: "0123456789abcdef",
            kind: "data.read",
            principal: "alice \"the admin\"",
            action: "read",
            resource: "customers",
            record: "r\\1",
            subjects: ["s1", "s2"],
            purpose: "support",
            decision: "allow",
            denial: "not_permitted",
            policies: [],
            policySet: "ab12",
            masks: ["email=partial", "zip=generalize"],
            outcome: "ok\n\r\t",
            count: 12,
            durationMicroseconds: 345,
            detail: "Zoë \u{1F} \u{7F} 東京"
        )
        event.sequence = 42
        let expected =
            #"{"v":1,"seq":42,"time_ms":-1700000000123,"request_id":"0123456789abcdef","kind":"data.read","#
            + #""principal":"alice \"the admin\"","action":"read","resource":"customers","record":"r\\1","#
            + #""subjects":["s1","s2"],"purpose":"support","decision":"allow","denial":"not_permitted","#
            + #""policies":[],"policy_set":"ab12","masks":["email=partial","zip=generalize"],"#
            + #""outcome":"ok\n\r\t","count":12,"duration_us":345,"detail":"Zoë \u001f \u007f 東京"}"#
        #expect(String(decoding: event.canonicalBytes, as: UTF8.self) == expected)

        var plain = AuditEvent(time: 0, requestID: "r", kind: "k", principal: "p", outcome: "ok")
        plain.sequence = 0
        #expect(
            String(decoding: plain.canonicalBytes, as: UTF8.self)
                == #"{"v":1,"seq":0,"time_ms":0,"request_id":"r","kind":"k","principal":"p","action":"-","#
                + #""resource":"-","subjects":[],"purpose":"-","decision":"-","policies":[],"policy_set":"-","#
                + #""masks":[],"outcome":"ok","count":0,"duration_us":0}"#
        )
    }

    @Test("a record is one JSON object with fields in schema order, absent fields left out")
    func record() throws {
        let schema = try SchemaLoader.load(file: TestEnvironment.policiesDirectory + "/schema.yaml")
        let definition = try schema.collection("customers")
        let record = Record(
            collection: "customers",
            id: "c1",
            subject: "c1",
            fields: [
                "customer_id": .string("c1"), "email": .string("a\"b@example.com"), "age": .int(-41),
                "birth_date": .date(days: 0), "full_name": .string("Zoë\u{0}"),
            ]
        )
        let text = RecordJSON.encode(record, definition: definition)
        let names = definition.fields.map(\.name).filter { record.fields[$0] != nil }
        #expect(names.first == "customer_id")
        var expected: [String] = []
        for name in names {
            switch name {
            case "customer_id": expected.append(#""customer_id":"c1""#)
            case "email": expected.append(#""email":"a\"b@example.com""#)
            case "age": expected.append(#""age":-41"#)
            case "birth_date": expected.append(#""birth_date":"1970-01-01""#)
            case "full_name": expected.append(#""full_name":"Zoë\u0000""#)
            default: Issue.record("unexpected field \(name)")
            }
        }
        #expect(text == "{" + expected.joined(separator: ",") + "}")
    }

    @Test("any string survives a round trip through the writer and a JSON parser; integers print in decimal")
    func roundTrips() throws {
        let pieces = ["a", "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1F}", "\u{7F}", "é", "東", "🙂", "/", " "]
        for _ in 0..<500 {
            let text = (0..<Int.random(in: 0...12)).map { _ in pieces.randomElement() ?? "" }.joined()
            var writer = JSONWriter()
            writer.append(raw: "[")
            writer.append(string: text)
            writer.append(raw: "]")
            let parsed = try JSONSerialization.jsonObject(with: Data(writer.bytes)) as? [String]
            #expect(parsed == [text], "\(text.debugDescription)")
        }
        for value in [Int64.min, -1, 0, 7, 10, 1_234_567_890, Int64.max] {
            var writer = JSONWriter()
            writer.append(integer: value)
            #expect(writer.text == String(value))
        }
    }
}

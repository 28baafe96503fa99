import Foundation
import Governance
import Testing
import TutelaCore

@Suite("Reading flat JSON objects")
struct FlatJSONReaderTests {
    private func object(_ text: String) throws -> [String: RawFieldValue] {
        try Array(text.utf8).withUnsafeBytes { try FlatJSONReader.object($0) }
    }

    private func objects(_ text: String) throws -> [[String: RawFieldValue]] {
        try Array(text.utf8).withUnsafeBytes { try FlatJSONReader.objects($0) }
    }

    @Test("scalars of every kind, escapes and white space")
    func values() throws {
        let parsed = try object(
            #" { "s" : "a\"b\\c\/d\n\t\u00e9\ud83d\ude00" , "i":-42,"d":2.5,"w":5.0,"e":1e3,"b":true,"f":false,"n":null,"empty":"" } "#
        )
        #expect(
            parsed == [
                "s": .text("a\"b\\c/d\n\té😀"), "i": .number(-42, exactInteger: -42),
                "d": .number(2.5, exactInteger: nil),
                "w": .number(5, exactInteger: 5), "e": .number(1000, exactInteger: 1000), "b": .bool(true),
                "f": .bool(false), "n": .null, "empty": .text(""),
            ]
        )
        #expect(try object("{}") == [:])
        #expect(
            try object(#"{"big":9223372036854775808}"#) == [
                "big": .number(9_223_372_036_854_775_808, exactInteger: nil)
            ]
        )
        #expect(
            try object(#"{"min":-9223372036854775808}"#)["min"] == .number(-9.223372036854775808e18, exactInteger: .min)
        )
        #expect(try object(#"{"é":"ü"}"#) == ["é": .text("ü")])
    }

    @Test("an object or an array of objects")
    func arrays() throws {
        #expect(try objects(#"{"a":1}"#) == [["a": .number(1, exactInteger: 1)]])
        #expect(try objects(#" [ {"a":1} , {"b":"x"} ] "#) == [["a": .number(1, exactInteger: 1)], ["b": .text("x")]])
        #expect(try objects("[]").isEmpty)
    }

    @Test(
        "malformed input is refused with what is wrong, never the value",
        arguments: [
            (#"{"a":1,"a":2}"#, "a field name appears twice"),
            (#"{"a":{"b":1}}"#, "a value is an object or array"),
            (#"{"a":[1]}"#, "a value is an object or array"),
            (#"{"a":1,}"#, "expected a field name in quotes"),
            (#"{"a":01}"#, "a leading zero"),
            (#"{"a":1.}"#, "without digits after '.'"),
            (#"{"a":-}"#, "a number without digits"),
            (#"{"a":1e}"#, "without exponent digits"),
            (#"{"a":1e999}"#, "a number out of range"),
            (#"{"a":tru}"#, "expected a string, number, boolean or null"),
            (#"{"a":secret}"#, "expected a string, number, boolean or null"),
            (#"{"a":"secret"#, "a string is never closed"),
            (#"{"a":"sec\xret"}"#, "an unknown escape"),
            (#"{"a":"\ud800"}"#, "a lone surrogate"),
            (#"{"a":"\udc00"}"#, "a lone surrogate"),
            (#"{"a":"\u12"}"#, "four hex digits"),
            ("{\"a\":\"sec\u{01}ret\"}", "a control character"),
            (#"{"a":1} {"b":2}"#, "text after the value"),
            (#"{"a" 1}"#, "expected ':'"),
            (#"{"a":1 "b":2}"#, "expected ',' or '}'"),
            (#"["secret"]"#, "expected an object"),
            (#"[{"a":1} {"b":2}]"#, "expected ',' or ']'"),
            ("", "expected an object"),
        ]
    )
    func malformed(_ input: String, _ reason: String) {
        let error = #expect(throws: TutelaError.self) { try objects(input) }
        #expect(error?.code == .invalidInput)
        #expect(error?.message.contains(reason) == true, "\(error?.message ?? "no error")")
        #expect(error?.message.contains("secret") == false)
    }

    @Test("invalid UTF-8 inside a string is refused")
    func invalidUTF8() {
        let bytes: [UInt8] = Array(#"{"a":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        let error = #expect(throws: TutelaError.self) { try bytes.withUnsafeBytes { try FlatJSONReader.object($0) } }
        #expect(error?.message.contains("not valid UTF-8") == true)
    }

    @Test("random flat objects read the same as Foundation's decoder reads them")
    func agreesWithFoundation() throws {
        var random = SplitMix64(seed: 11)
        let alphabet = Array("aé\"\\/\n\t\u{01}😀 zZ0")
        for _ in 0..<500 {
            var object: [String: Any] = [:]
            for field in 0..<random.next(below: 6) {
                let name =
                    "f\(field)"
                    + String((0..<random.next(below: 4)).map { _ in alphabet[random.next(below: alphabet.count)] })
                switch random.next(below: 5) {
                case 0:
                    object[name] = String(
                        (0..<random.next(below: 12)).map { _ in alphabet[random.next(below: alphabet.count)] }
                    )
                case 1: object[name] = Int64(bitPattern: random.next()) >> Int64(random.next(below: 64))
                case 2: object[name] = Double(Int64(bitPattern: random.next()) >> 20) / 1024
                case 3: object[name] = random.next(below: 2) == 0
                default: object[name] = NSNull()
                }
            }
            let data = try JSONSerialization.data(withJSONObject: object)
            let ours = try data.withUnsafeBytes { try FlatJSONReader.object($0) }
            let theirs = try JSONDecoder().decode([String: FoundationValue].self, from: data)
            #expect(ours == theirs.mapValues(\.value), "\(String(decoding: data, as: UTF8.self))")
        }
    }
}

/// A scalar as Foundation's decoder reads it, in the reader's terms.
private struct FoundationValue: Decodable {
    let value: RawFieldValue

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            value = .null
        } else if let flag = try? container.decode(Bool.self) {
            value = .bool(flag)
        } else if let integer = try? container.decode(Int64.self) {
            value = .number(Double(integer), exactInteger: integer)
        } else if let number = try? container.decode(Double.self) {
            value = .number(number, exactInteger: nil)
        } else {
            value = .text(try container.decode(String.self))
        }
    }
}

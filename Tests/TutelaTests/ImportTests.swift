import Foundation
import Governance
import KeyManagement
import Store
import Synchronization
import Testing
import TutelaCore
import TutelaTestSupport

@Suite("Import, export and the sample data set")
struct ImportTests {
    @Test("the sample data set imports into every collection and reads back")
    func sampleImport() async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let (tutela, _) = try await environment.startWithSample(customers: 30)
        #expect(try await tutela.recordCount(collection: "customers") == 30)
        #expect(try await tutela.recordCount(collection: "consents") == 30 * SampleDataset.purposes.count)
        #expect(try await tutela.recordCount(collection: "interactions") > 0)
        let customer = try await tutela.record(collection: "customers", id: "c000003")
        guard case .string(let email)? = customer.fields["email"] else {
            Issue.record("the customer has no email")
            return
        }
        #expect(email.hasSuffix("3@example.com"))
        #expect(
            try await tutela.find(collection: "customers", field: "email", value: email.uppercased()).map(\.id) == [
                "c000003"
            ]
        )
        var exported: [String] = []
        try await tutela.exportRecords(collection: "customers", pageSize: 7) { page in exported += page.map(\.id) }
        #expect(exported.count == 30)
        #expect(exported == exported.sorted())
    }

    @Test("a file's second pass reads each row exactly as its first did, line numbers included")
    func twoPasses() throws {
        let csv = "a,b\r\n1,\"two\nlines\"\n\n3,\"x, \"\"y\"\"\"\n4,\n"
        let jsonl = "{\"a\":1}\n\n  \n{\"a\":\"\\u00e9\",\"b\":null}\n{\"a\":true}"
        for (text, format, count) in [(csv, RecordFileFormat.csv, 3), (jsonl, .jsonl, 3)] {
            var file = try RecordFile(Data(text.utf8), format: format)
            var first: [RawRow] = []
            try file.scan { first.append($0) }
            #expect(file.rowCount == count)
            let second = try (0..<file.rowCount).map { try file.row($0) }
            #expect(second.map(\.line) == first.map(\.line))
            #expect(second.map(\.values) == first.map(\.values))
        }
        var file = try RecordFile(Data(csv.utf8), format: .csv)
        try file.scan { _ in }
        #expect(try file.row(1).line == 5)
        #expect(try file.row(1).values == ["a": .text("3"), "b": .text("x, \"y\"")])
    }

    @Test("the row estimate for progress counts non-blank lines, less a CSV header")
    func rowEstimate() {
        let jsonl = Data("{\"a\":1}\n\n  \r\n{\"a\":2}\n{\"a\":3}".utf8)
        #expect(RecordFileReader.estimatedRowCount(of: jsonl, format: .jsonl) == 3)
        let csv = Data("a,b\n1,2\n\n3,4\n".utf8)
        #expect(RecordFileReader.estimatedRowCount(of: csv, format: .csv) == 2)
        #expect(RecordFileReader.estimatedRowCount(of: Data(), format: .csv) == 0)
    }

    @Test("CSV quoting: commas, doubled quotes and line breaks inside quoted fields")
    func csvQuoting() throws {
        let text = "a,b,c\n\"x, y\",\"say \"\"hi\"\"\",\"two\nlines\"\r\nplain,,z\n"
        let rows = try RecordFileReader.read(Data(text.utf8), format: .csv)
        #expect(rows.count == 2)
        #expect(rows[0].values == ["a": .text("x, y"), "b": .text("say \"hi\""), "c": .text("two\nlines")])
        #expect(rows[1].line == 4)
        #expect(rows[1].values == ["a": .text("plain"), "b": .null, "c": .text("z")])
    }

    @Test(
        "a byte order mark at the start of a file is not part of its first field",
        arguments: [(RecordFileFormat.csv, "a,b\nx,1\n"), (.jsonl, "{\"a\":\"x\",\"b\":1}\n")]
    )
    func byteOrderMark(_ format: RecordFileFormat, _ text: String) throws {
        let rows = try RecordFileReader.read(Data([0xEF, 0xBB, 0xBF]) + Data(text.utf8), format: format)
        #expect(rows.count == 1)
        #expect(rows.first?.line == (format == .csv ? 2 : 1))
        #expect(rows.first?.values["a"] == .text("x"))
    }

    struct BadFile: Sendable, CustomTestStringConvertible {
        var name: String
        var collection: String
        var format: RecordFileFormat
        var content: String
        var expected: String
        var testDescription: String { name }
    }

    static let badFiles = [
        BadFile(
            name: "bad date on the last line",
            collection: "customers",
            format: .csv,
            content:
                "customer_id,email,birth_date\nc1,secret.one@example.com,1990-01-01\nc2,secret.two@example.com,1990-02-30\n",
            expected: "line 3: field 'birth_date': expected a date YYYY-MM-DD"
        ),
        BadFile(
            name: "missing required field",
            collection: "interactions",
            format: .jsonl,
            content: "{\"interaction_id\":\"i1\",\"customer_id\":\"c1\",\"item_id\":\"p1\",\"kind\":\"view\"}\n",
            expected: "line 1: field 'occurred_at' is required"
        ),
        BadFile(
            name: "a value the schema does not list",
            collection: "interactions",
            format: .jsonl,
            content:
                "{\"interaction_id\":\"i1\",\"customer_id\":\"c1\",\"item_id\":\"p1\",\"kind\":\"view\",\"occurred_at\":1}\n{\"interaction_id\":\"i2\",\"customer_id\":\"c1\",\"item_id\":\"p1\",\"kind\":\"secret\",\"occurred_at\":1}\n",
            expected: "line 2: field 'kind': expected one of purchase, view, rating"
        ),
        BadFile(
            name: "a rating above the schema's maximum",
            collection: "interactions",
            format: .jsonl,
            content:
                "{\"interaction_id\":\"i1\",\"customer_id\":\"c1\",\"item_id\":\"p1\",\"kind\":\"rating\",\"rating\":5,\"occurred_at\":1}\n{\"interaction_id\":\"i2\",\"customer_id\":\"c1\",\"item_id\":\"p1\",\"kind\":\"rating\",\"rating\":50,\"occurred_at\":1}\n",
            expected: "line 2: field 'rating': expected a number from 1 to 5"
        ),
        BadFile(
            name: "a consent whose id names another customer",
            collection: "consents",
            format: .csv,
            content:
                "consent_id,customer_id,purpose,granted,recorded_at\nc1:analytics,c1,analytics,true,1\nc2:analytics,c1,analytics,true,1\n",
            expected: "line 3: field 'consent_id': the record key must be customer_id:purpose of the same record"
        ),
        BadFile(
            name: "a consent to a purpose purposes.yaml does not declare",
            collection: "consents",
            format: .jsonl,
            content:
                "{\"consent_id\":\"c1:analytics\",\"customer_id\":\"c1\",\"purpose\":\"analytics\",\"granted\":true,\"recorded_at\":1}\n{\"consent_id\":\"c1:secret\",\"customer_id\":\"c1\",\"purpose\":\"secret\",\"granted\":true,\"recorded_at\":1}\n",
            expected: "line 2: field 'purpose': not a purpose declared in purposes.yaml"
        ),
        BadFile(
            name: "a consent to an undeclared purpose in CSV",
            collection: "consents",
            format: .csv,
            content:
                "consent_id,customer_id,purpose,granted,recorded_at\nc1:analytics,c1,analytics,true,1\nc1:analytcs,c1,analytcs,true,1\n",
            expected: "line 3: field 'purpose': not a purpose declared in purposes.yaml"
        ),
        BadFile(
            name: "a negative amount",
            collection: "interactions",
            format: .jsonl,
            content:
                "{\"interaction_id\":\"i1\",\"customer_id\":\"c1\",\"item_id\":\"p1\",\"kind\":\"purchase\",\"amount\":-0.5,\"occurred_at\":1}\n",
            expected: "line 1: field 'amount': expected a number of at least 0"
        ),
        BadFile(
            name: "an amount in hexadecimal",
            collection: "interactions",
            format: .csv,
            content:
                "interaction_id,customer_id,item_id,kind,amount,occurred_at\ni1,c1,p1,purchase,12.5,1\ni2,c1,p1,purchase,0x10,1\n",
            expected: "line 3: field 'amount': expected a number"
        ),
        BadFile(
            name: "a rating as a hexadecimal float in JSON text",
            collection: "interactions",
            format: .jsonl,
            content:
                "{\"interaction_id\":\"i1\",\"customer_id\":\"c1\",\"item_id\":\"p1\",\"kind\":\"rating\",\"rating\":\"0x1p1\",\"occurred_at\":1}\n",
            expected: "line 1: field 'rating': expected a number"
        ),
        BadFile(
            name: "an age below the schema's minimum",
            collection: "customers",
            format: .csv,
            content: "customer_id,age\nc1,-3\n",
            expected: "line 2: field 'age': expected a number from 0 to 150"
        ),
        BadFile(
            name: "unknown column",
            collection: "customers",
            format: .csv,
            content: "customer_id,emial\nc1,secret.one@example.com\n",
            expected: "line 2: field 'emial' is not declared in collection 'customers'"
        ),
        BadFile(
            name: "wrong column count",
            collection: "customers",
            format: .csv,
            content: "customer_id,email\nc1,secret.one@example.com\nc2,secret.two@example.com,extra\n",
            expected: "line 3: 3 columns, the header has 2"
        ),
        BadFile(
            name: "a row of one column",
            collection: "customers",
            format: .csv,
            content: "customer_id,email\nc1,secret.one@example.com\nc2\n",
            expected: "line 3: 1 column, the header has 2"
        ),
        BadFile(
            name: "not JSON",
            collection: "customers",
            format: .jsonl,
            content: "{\"customer_id\":\"c1\"}\n{\"customer_id\": secret.two@example.com}\n",
            expected: "line 2: not valid JSON: expected a string, number, boolean or null"
        ),
        BadFile(
            name: "nested value in JSON",
            collection: "customers",
            format: .jsonl,
            content: "{\"customer_id\":\"c1\",\"email\":{\"value\":\"secret.one@example.com\"}}\n",
            expected: "line 1: not valid JSON: a value is an object or array"
        ),
        BadFile(
            name: "field named twice in JSON",
            collection: "customers",
            format: .jsonl,
            content:
                "{\"customer_id\":\"c1\",\"email\":\"secret.one@example.com\",\"email\":\"secret.two@example.com\"}\n",
            expected: "line 1: not valid JSON: a field name appears twice in one object"
        ),
        BadFile(
            name: "number where text is expected in JSON",
            collection: "customers",
            format: .jsonl,
            content: "{\"customer_id\":\"c1\",\"age\":\"thirty\"}\n",
            expected: "line 1: field 'age': expected an integer"
        ),
        BadFile(
            name: "duplicate record id",
            collection: "customers",
            format: .csv,
            content: "customer_id,email\nc1,secret.one@example.com\nc1,secret.two@example.com\n",
            expected: "line 3: record id repeats the one on line 2"
        ),
        BadFile(
            name: "empty record key",
            collection: "customers",
            format: .jsonl,
            content: "{\"customer_id\":\"c1\"}\n{\"customer_id\":\"\",\"email\":\"secret.two@example.com\"}\n",
            expected: "line 2: field 'customer_id': the record key must be a non-empty string"
        ),
        BadFile(
            name: "blank record key",
            collection: "customers",
            format: .csv,
            content: "customer_id,email\n\"  \",secret.one@example.com\n",
            expected: "line 2: field 'customer_id': the record key must not begin or end with white space"
        ),
        BadFile(
            name: "line break in a record key",
            collection: "customers",
            format: .jsonl,
            content: "{\"customer_id\":\"c1\\nsecret\",\"email\":\"secret.one@example.com\"}\n",
            expected: "line 1: field 'customer_id': the record key must not contain control characters"
        ),
        BadFile(
            name: "escape sequence in a subject",
            collection: "interactions",
            format: .jsonl,
            content:
                "{\"interaction_id\":\"i1\",\"customer_id\":\"c1\\u001b[2Ksecret\",\"item_id\":\"p1\",\"kind\":\"view\",\"occurred_at\":\"2024-01-01T00:00:00Z\"}\n",
            expected: "line 1: field 'customer_id': the subject must not contain control characters"
        ),
        BadFile(
            name: "record key too long",
            collection: "customers",
            format: .csv,
            content: "customer_id,email\nsecret\(String(repeating: "x", count: 251)),a@example.com\n",
            expected: "line 2: field 'customer_id': the record key must be 1 to 256 bytes long"
        ),
        BadFile(
            name: "missing record key",
            collection: "customers",
            format: .jsonl,
            content: "{\"email\":\"secret.one@example.com\"}\n",
            expected: "line 1: field 'customer_id' is required"
        ),
        BadFile(
            name: "empty subject",
            collection: "interactions",
            format: .jsonl,
            content:
                "{\"interaction_id\":\"i1\",\"customer_id\":\"\",\"item_id\":\"p1\",\"kind\":\"view\",\"occurred_at\":\"2024-01-01T00:00:00Z\"}\n",
            expected: "line 1: field 'customer_id': the subject must be a non-empty string"
        ),
        BadFile(
            name: "null in a required field",
            collection: "interactions",
            format: .jsonl,
            content:
                "{\"interaction_id\":\"i1\",\"customer_id\":\"c1\",\"item_id\":null,\"kind\":\"view\",\"occurred_at\":\"2024-01-01T00:00:00Z\"}\n",
            expected: "line 1: field 'item_id' is required"
        ),
        BadFile(
            name: "unclosed quote",
            collection: "customers",
            format: .csv,
            content: "customer_id,email\nc1,\"secret.one@example.com\n",
            expected: "line 2: a quoted field is never closed"
        ),
    ]

    @Test("a bad row is reported with line and field, without its value, and nothing is stored", arguments: badFiles)
    func badInput(_ file: BadFile) async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let tutela = try await environment.start()
        let error = await #expect(throws: TutelaError.self) {
            try await tutela.importRecords(into: file.collection, data: Data(file.content.utf8), format: file.format)
        }
        #expect(error?.message.contains(file.expected) == true, "\(error?.message ?? "no error")")
        #expect(error?.message.contains("secret") == false)
        #expect(try await tutela.recordCount(collection: file.collection) == 0)
    }

    @Test(
        "a CSV cell that is not UTF-8 is refused by line and field, not stored with its characters replaced",
        arguments: [
            // A Latin-1 "é" in a name, then in the header itself.
            ("customer_id,full_name\nc1,Jos\u{E9}\n", "line 2: field full_name"),
            ("customer_id,full_n\u{E9}me\nc1,Jo\n", "line 1: column 2"),
        ]
    )
    func notUTF8(_ text: String, place: String) async throws {
        let content = Data(text.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) })
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let tutela = try await environment.start()
        let error = await #expect(throws: TutelaError.self) {
            try await tutela.importRecords(into: "customers", data: content, format: .csv)
        }
        #expect(error?.code == .invalidInput)
        #expect(error?.message == "\(place) is not valid UTF-8 (save the file as UTF-8)")
        #expect(try await tutela.recordCount(collection: "customers") == 0)
    }

    /// A JSONL interaction line.
    static func interactionLine(_ id: Int, customer: Int) -> String {
        #"{"interaction_id":"i\#(id)","customer_id":"c\#(customer)","item_id":"p1","kind":"view","occurred_at":"2024-01-01T00:00:00Z"}"#
    }

    @Test(
        "a JSONL file checked in chunks reports the first error in the file, counting blank lines",
        arguments: [
            // (changes by line number, expected message)
            ([4500: interactionLine(10, customer: 1)], "line 4500: record id repeats the one on line 10"),
            (
                [4500: interactionLine(10, customer: 1), 4600: "{not json"],
                "line 4500: record id repeats the one on line 10"
            ),
            ([3000: "{not json", 4500: interactionLine(10, customer: 1)], "line 3000: not valid JSON"),
            (
                [100: interactionLine(5, customer: 1), 9500: #"{"interaction_id":"x"}"#],
                "line 100: record id repeats the one on line 5"
            ),
            ([9500: #"{"interaction_id":"x","customer_id":"c1"}"#, 2: "", 5000: "  "], "line 9500: field "),
            ([2: "", 6000: interactionLine(3, customer: 1)], "line 6000: record id repeats the one on line 3"),
        ]
    )
    func chunkedCheck(_ changes: [Int: String], _ expected: String) async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let tutela = try await environment.start()
        var lines = (1...10_000).map { Self.interactionLine($0, customer: $0 % 50) }
        for (line, text) in changes { lines[line - 1] = text }
        let error = await #expect(throws: TutelaError.self) {
            try await tutela.importRecords(
                into: "interactions",
                data: Data(lines.joined(separator: "\n").utf8),
                format: .jsonl
            )
        }
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "no error")")
        #expect(try await tutela.recordCount(collection: "interactions") == 0)
    }

    @Test("a JSONL file of many chunks with blank lines imports whole, with progress to the last row")
    func chunkedImport() async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let tutela = try await environment.start()
        var lines = (1...9_000).map { Self.interactionLine($0, customer: $0 % 50) }
        lines[1] = ""
        lines[4999] = " \t"
        let validated = Mutex<[Int]>([])
        let report = try await tutela.importRecords(
            into: "interactions",
            data: Data((lines.joined(separator: "\n") + "\n").utf8),
            format: .jsonl
        ) { phase, done, _ in
            if phase == .validating { validated.withLock { $0.append(done) } }
        }
        #expect(report.records == 8_998 && report.subjects == 50)
        #expect(try await tutela.recordCount(collection: "interactions") == 8_998)
        let steps = validated.withLock { $0 }
        #expect(steps == steps.sorted() && steps.last == 8_998 && steps.count > 2)
    }

    @Test("an import naming an erased customer is refused at its first row, or leaves its rows out when asked")
    func erasedSubjectImport() async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let tutela = try await environment.start()
        _ = try await tutela.erase(subject: "c2", now: 1)
        let content = "customer_id,email\nc1,one@example.com\nc2,two@example.com\n"
        let error = await #expect(throws: TutelaError.self) {
            try await tutela.importRecords(into: "customers", data: Data(content.utf8), format: .csv)
        }
        #expect(error?.code == .subjectErased)
        #expect(error?.message.hasPrefix("line 3: subject c2 was erased") == true)
        #expect(error?.message.hasSuffix("nothing was imported") == true)
        #expect(try await tutela.recordCount(collection: "customers") == 0)

        let customers = try await tutela.importRecords(
            into: "customers",
            data: Data(content.utf8),
            format: .csv,
            skipErased: true
        )
        #expect(customers.records == 1 && customers.subjects == 1)
        #expect(customers.skippedRecords == 1 && customers.skippedSubjects == 1)
        #expect(
            try await tutela.record(collection: "customers", id: "c1").fields["email"] == .string("one@example.com")
        )

        // A JSONL file, checked in chunks on every core: rows of two erased customers among
        // those of kept ones, the first erased row on line 2.
        _ = try await tutela.erase(subject: "c3", now: 2)
        let lines = (0..<9_000).map { index in
            #"{"interaction_id":"i\#(index)","customer_id":"c\#(index % 3 + 1)","item_id":"p1","kind":"view","occurred_at":1}"#
        }
        let jsonl = Data(lines.joined(separator: "\n").utf8)
        let refused = await #expect(throws: TutelaError.self) {
            try await tutela.importRecords(into: "interactions", data: jsonl, format: .jsonl)
        }
        #expect(refused?.message.hasPrefix("line 2: subject c2 was erased") == true)
        #expect(try await tutela.recordCount(collection: "interactions") == 0)
        let interactions = try await tutela.importRecords(
            into: "interactions",
            data: jsonl,
            format: .jsonl,
            skipErased: true
        )
        #expect(interactions.records == 3_000 && interactions.subjects == 1)
        #expect(interactions.skippedRecords == 6_000 && interactions.skippedSubjects == 2)
        #expect(try await tutela.recordCount(collection: "interactions") == 3_000)
        #expect(try await tutela.record(collection: "interactions", id: "i8997").subject == "c1")
        await #expect(throws: TutelaError.self) {
            try await tutela.record(collection: "interactions", id: "i8998")
        }

        // Every row erased: nothing to write, and nothing refused.
        let none = try await tutela.importRecords(
            into: "customers",
            data: Data("customer_id\nc2\nc3\n".utf8),
            format: .csv,
            skipErased: true
        )
        #expect(none.records == 0 && none.skippedRecords == 2 && none.skippedSubjects == 2)
        #expect(try await tutela.recordCount(collection: "customers") == 1)
    }

    @Test("record keys in any script, with inner spaces, up to 256 bytes are taken; an empty subject is not erased")
    func identifiers() async throws {
        for key in ["c1", "kunde-zoë", "顧客 1", "a:b/c", String(repeating: "é", count: 128)] {
            try Record.checkIdentifier(key, named: "the record key")
        }
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let tutela = try await environment.start()
        let content = "customer_id,email\nkunde-zoë,one@example.com\n顧客 1,two@example.com\n"
        let report = try await tutela.importRecords(into: "customers", data: Data(content.utf8), format: .csv)
        #expect(report.records == 2)
        #expect(
            try await tutela.record(collection: "customers", id: "顧客 1").fields["email"] == .string("two@example.com")
        )

        let empty = await #expect(throws: TutelaError.self) { try await tutela.erase(subject: "", now: 1) }
        #expect(empty?.code == .invalidInput)
        #expect(try await tutela.store.backend.isErased(subject: "") == false)
        // A subject stored before keys were checked can still be erased as it was stored.
        try await tutela.store.put([
            Record(collection: "customers", id: " c9 ", subject: " c9 ", fields: ["customer_id": .string(" c9 ")])
        ])
        let erased = try await tutela.erase(subject: " c9 ", now: 2)
        #expect(erased.dataKeyDestroyed && erased.recordsRemoved == 1)
    }

    @Test("an unknown collection is refused with the known ones listed")
    func unknownCollection() async throws {
        let environment = try TestEnvironment()
        defer { environment.remove() }
        let tutela = try await environment.start()
        let error = await #expect(throws: TutelaError.self) {
            try await tutela.importRecords(into: "customer", data: Data("customer_id\nc1\n".utf8), format: .csv)
        }
        #expect(error?.message.contains("customers") == true)
    }
}

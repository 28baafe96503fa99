import KeyManagement
import Testing
import TutelaCore

@Suite("Envelope encryption of fields")
struct EnvelopeTests {
    let cipher = EnvelopeCipher(keyring: Keyring.generate(now: 0), tenant: "acme")
    let context = FieldContext(tenant: "acme", collection: "customers", recordID: "c1", field: "email")

    static let values: [FieldValue] = [
        .string("alice@example.com"), .string(""), .int(-42), .double(3.25), .bool(true),
        .date(days: -3650), .timestamp(milliseconds: 1_700_000_000_123),
    ]

    @Test("every value type survives a round trip", arguments: values)
    func roundTrip(_ value: FieldValue) throws {
        let (key, _) = try cipher.makeDataKey(forSubject: "c1")
        let sealed = try cipher.seal(value, with: key, context: context)
        #expect(sealed[0] == EnvelopeCipher.formatVersion)
        #expect(sealed[1] == EnvelopeCipher.aes256GCM)
        #expect(EnvelopeCipher.dataKeyID(of: sealed) == key.id)
        #expect(try cipher.open(sealed, with: key, context: context) == value)
    }

    @Test("a ciphertext moved to another record, field, collection or tenant says so")
    func misplaced() throws {
        let (key, _) = try cipher.makeDataKey(forSubject: "c1")
        let sealed = try cipher.seal(.string("alice@example.com"), with: key, context: context)
        var otherField = context
        otherField.field = "phone"
        let places = [
            context.moved(recordID: "c2"), otherField, context.moved(collection: "conversations"),
            context.moved(tenant: "other"),
        ]
        for place in places {
            let error = #expect(throws: TutelaError.self) { try cipher.open(sealed, with: key, context: place) }
            #expect(error?.code == .ciphertextMisplaced)
            #expect(error?.message.contains("alice") == false)
        }
        let (otherKey, _) = try cipher.makeDataKey(forSubject: "c2")
        let error = #expect(throws: TutelaError.self) { try cipher.open(sealed, with: otherKey, context: context) }
        #expect(error?.code == .ciphertextMisplaced)
    }

    @Test("a flipped bit anywhere or a truncation is reported as tampering with record and field")
    func tampered() throws {
        let (key, _) = try cipher.makeDataKey(forSubject: "c1")
        let sealed = try cipher.seal(.string("alice@example.com"), with: key, context: context)
        for index in [1, 18, 31, 45, sealed.count - 1] {
            var altered = sealed
            altered[index] ^= 0x80
            let error = #expect(throws: TutelaError.self) { try cipher.open(altered, with: key, context: context) }
            #expect(error?.code == .ciphertextTampered)
            #expect(error?.message.contains("customers/c1 field 'email'") == true)
        }
        let error = #expect(throws: TutelaError.self) {
            try cipher.open(Array(sealed.prefix(40)), with: key, context: context)
        }
        #expect(error?.code == .ciphertextTampered)
    }

    @Test("a data key unwraps only for its subject and survives a re-wrap under a new version")
    func wrapping() throws {
        var keyring = Keyring.generate(now: 0)
        let first = EnvelopeCipher(keyring: keyring, tenant: "acme")
        let (key, wrapped) = try first.makeDataKey(forSubject: "c1")
        let sealed = try first.seal(.int(7), with: key, context: context)
        #expect(throws: TutelaError.self) { try first.unwrap(wrapped, subject: "c2") }

        try keyring.rotate(now: 1)
        let second = EnvelopeCipher(keyring: keyring, tenant: "acme")
        let rewrapped = try second.rewrap(wrapped, subject: "c1")
        #expect(rewrapped.kekVersion == 2)
        #expect(rewrapped.id == wrapped.id)
        #expect(try second.open(sealed, with: second.unwrap(rewrapped, subject: "c1"), context: context) == .int(7))
        #expect(try second.open(sealed, with: second.unwrap(wrapped, subject: "c1"), context: context) == .int(7))
    }

    @Test(
        "a stored data key that does not unwrap names its subject; one under a version the keyring lacks is not 'not found'"
    )
    func unwrapFailures() throws {
        var keyring = Keyring.generate(now: 0)
        let cipher = EnvelopeCipher(keyring: keyring, tenant: "acme")
        let (_, wrapped) = try cipher.makeDataKey(forSubject: "c1")

        var altered = wrapped.sealed
        altered[altered.count / 2] ^= 0x01
        let alteredError = #expect(throws: TutelaError.self) {
            try cipher.unwrap(WrappedDataKey(id: wrapped.id, kekVersion: 1, sealed: altered), subject: "c1")
        }
        #expect(alteredError?.code == .authenticationFailed)
        #expect(alteredError?.message.contains("the data key of subject 'c1' failed authentication") == true)

        // A version this keyring never had: the keyring and the database do not belong together.
        // `.notFound` would read as a missing record (a 404 at the gateway).
        let unknownError = #expect(throws: TutelaError.self) {
            try cipher.unwrap(WrappedDataKey(id: wrapped.id, kekVersion: 7, sealed: wrapped.sealed), subject: "c1")
        }
        #expect(unknownError?.code == .authenticationFailed)
        #expect(unknownError?.message.contains("subject 'c1' names key version 7") == true)

        // A disabled version keeps its code and its advice, and says whose key it is.
        try keyring.rotate(now: 1)
        try keyring.apply(.disable, toVersion: 1)
        let disabledError = #expect(throws: TutelaError.self) {
            try EnvelopeCipher(keyring: keyring, tenant: "acme").unwrap(wrapped, subject: "c1")
        }
        #expect(disabledError?.code == .keyDisabled)
        #expect(disabledError?.message.contains("the data key of subject 'c1' cannot be unwrapped") == true)
        #expect(disabledError?.message.contains("tutela keys enable 1") == true)
    }

    @Test("blind indexes are stable per field and differ across fields; tokens are deterministic and reversible")
    func indexesAndTokens() throws {
        let keyring = Keyring.generate(now: 0)
        let indexer = BlindIndexer(keyring: keyring, tenant: "acme")
        let a = indexer.digest(of: "alice@example.com", collection: "customers", field: "email")
        #expect(a == indexer.digest(of: "alice@example.com", collection: "customers", field: "email"))
        // The first 16 bytes of the field key's HMAC-SHA256 code.
        let code = indexer.key(collection: "customers", field: "email").authenticationCode("alice@example.com")
        #expect(code.count == 32)
        #expect(a == Array(code.prefix(16)))
        #expect(a != indexer.digest(of: "alice@example.com", collection: "customers", field: "phone"))
        #expect(
            a
                != BlindIndexer(keyring: Keyring.generate(now: 0), tenant: "acme")
                .digest(of: "alice@example.com", collection: "customers", field: "email")
        )

        let tokenizer = DeterministicTokenizer(keyring: keyring, tenant: "acme")
        let token = try tokenizer.token(for: "alice@example.com", domain: "customers.email")
        #expect(token.hasPrefix("tok1_"))
        #expect(!token.contains("alice"))
        #expect(try tokenizer.token(for: "alice@example.com", domain: "customers.email") == token)
        #expect(try tokenizer.token(for: "alice@example.com", domain: "partners.email") != token)
        #expect(try tokenizer.reidentify(token, domain: "customers.email") == "alice@example.com")
        #expect(throws: TutelaError.self) { try tokenizer.reidentify(token, domain: "partners.email") }
    }
}

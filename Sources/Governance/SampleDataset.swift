import TutelaCore

/// A synthetic marketing data set that the project generates itself.
///
/// Customers with realistic PII, their interactions, customer-service messages that mention PII
/// in free text, and consent per purpose. The same seed always gives the same data.
public struct SampleDataset: Sendable {
    /// The purposes consent is recorded for.
    public static let purposes = [
        "support", "marketing_personalization", "analytics", "model_training", "partner_exchange",
    ]

    /// `customers.csv`.
    public var customersCSV: String
    /// `interactions.jsonl`.
    public var interactionsJSONL: String
    /// `conversations.jsonl`.
    public var conversationsJSONL: String
    /// `consents.csv`.
    public var consentsCSV: String

    /// The files by collection name, in import order.
    public var files: [(collection: String, fileName: String, content: String)] {
        [
            ("customers", "customers.csv", customersCSV),
            ("interactions", "interactions.jsonl", interactionsJSONL),
            ("conversations", "conversations.jsonl", conversationsJSONL),
            ("consents", "consents.csv", consentsCSV),
        ]
    }

    private static let firstNames = [
        "Ada", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kofi", "Lena",
        "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara",
    ]
    private static let lastNames = [
        "Almeida", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ivanova", "Jansen",
        "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Rossi", "Schmidt", "Tanaka", "Weber",
    ]
    private static let streets = [
        "Maple Street", "Harbour Road", "Linden Allee", "Rue des Fleurs", "Via Roma", "Oak Avenue",
    ]
    private static let cities = ["Springfield", "Rivertown", "Lakeside", "Hillview", "Northport", "Eastbrook"]
    private static let occupations = [
        "engineer", "teacher", "artist", "student", "nurse", "writer", "technician", "other",
    ]
    private static let segments = ["new", "regular", "loyal", "lapsed"]

    /// Generates a data set.
    /// - Parameters:
    ///   - customers: the number of customers.
    ///   - items: the size of the product catalogue.
    ///   - interactionsPerCustomer: average interactions per customer.
    ///   - seed: the random seed.
    public static func generate(
        customers: Int,
        items: Int = 500,
        interactionsPerCustomer: Int = 20,
        seed: UInt64 = 42
    )
        -> SampleDataset
    {
        var random = SplitMix64(seed: seed)
        var customerRows = [
            "customer_id,email,phone,full_name,street_address,city,zip,birth_date,age,gender,occupation,segment,signup_at"
        ]
        var interactions: [String] = []
        var conversations: [String] = []
        var consents = ["consent_id,customer_id,purpose,granted,recorded_at"]
        let start: Int64 = 1_672_531_200  // 2023-01-01T00:00:00Z
        var interactionNumber = 0
        var messageNumber = 0
        for number in 1...max(1, customers) {
            let id = "c\(padded(number, 6))"
            let first = firstNames[random.next(below: firstNames.count)]
            let last = lastNames[random.next(below: lastNames.count)]
            let year = 1950 + random.next(below: 55)
            let month = 1 + random.next(below: 12)
            let day = 1 + random.next(below: 28)
            let age = 2025 - year
            let email = "\(first.lowercased()).\(last.lowercased())\(number)@example.com"
            let phone = "+1 555 \(100 + random.next(below: 900)) \(1000 + random.next(below: 9000))"
            let street = "\(1 + random.next(below: 200)) \(streets[random.next(below: streets.count)])"
            let city = cities[random.next(below: cities.count)]
            let zip = String(10000 + random.next(below: 89999))
            let gender = ["F", "M", "X"][random.next(below: 3)]
            let occupation = occupations[random.next(below: occupations.count)]
            let segment = segments[random.next(below: segments.count)]
            let signup = start + Int64(random.next(below: 365 * 86_400))
            let birthDate = "\(year)-\(padded(month, 2))-\(padded(day, 2))"
            customerRows.append(
                "\(id),\(email),\(phone),\"\(first) \(last)\",\(street),\(city),\(zip),\(birthDate),\(age),\(gender),\(occupation),\(segment),\(signup)"
            )
            for _ in 0..<random.next(below: 2 * interactionsPerCustomer + 1) {
                interactionNumber += 1
                let kind = ["view", "view", "purchase", "rating"][random.next(below: 4)]
                var line = "{\"interaction_id\":\"i\(interactionNumber)\",\"customer_id\":\"\(id)\","
                line += "\"item_id\":\"p\(1 + random.next(below: max(1, items)))\",\"kind\":\"\(kind)\","
                if kind == "rating" { line += "\"rating\":\(1 + random.next(below: 5))," }
                if kind == "purchase" { line += "\"amount\":\(Double(500 + random.next(below: 20_000)) / 100)," }
                line += "\"occurred_at\":\(signup + Int64(random.next(below: 200 * 86_400)))}"
                interactions.append(line)
            }
            for _ in 0..<random.next(below: 3) {
                messageNumber += 1
                let texts = [
                    "Hi, this is \(first) \(last). Please send the invoice to \(email), thanks!",
                    "My card 4111 1111 1111 1111 was charged twice, call me on \(phone).",
                    "I moved to \(street), \(city) \(zip). Please update my address.",
                    "Where is my order? I was born on \(birthDate) if you need to verify.",
                    "Thanks for the quick help with the return.",
                ]
                let text = texts[random.next(below: texts.count)]
                var line = "{\"message_id\":\"m\(messageNumber)\",\"customer_id\":\"\(id)\",\"channel\":\"chat\","
                line += "\"direction\":\"inbound\",\"text\":"
                RecordJSON.appendString(text, to: &line)
                line += ",\"sent_at\":\(signup + Int64(random.next(below: 200 * 86_400)))}"
                conversations.append(line)
            }
            for purpose in purposes {
                let granted = purpose == "support" || random.next(below: 100) < 60
                consents.append("\(id):\(purpose),\(id),\(purpose),\(granted),\(signup)")
            }
        }
        return SampleDataset(
            customersCSV: customerRows.joined(separator: "\n") + "\n",
            interactionsJSONL: interactions.joined(separator: "\n") + "\n",
            conversationsJSONL: conversations.joined(separator: "\n") + "\n",
            consentsCSV: consents.joined(separator: "\n") + "\n"
        )
    }
}

/// A small, fast, seedable generator (SplitMix64) for reproducible sample data; not for secrets.
public struct SplitMix64: Sendable {
    private var state: UInt64

    /// Creates a generator.
    public init(seed: UInt64) {
        state = seed
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound`.
    public mutating func next(below bound: Int) -> Int {
        Int(next() % UInt64(max(1, bound)))
    }
}

/// A number with leading zeros up to `width` digits.
private func padded(_ number: Int, _ width: Int) -> String {
    let digits = String(number)
    return String(repeating: "0", count: Swift.max(0, width - digits.count)) + digits
}

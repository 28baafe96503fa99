import TutelaCore

/// Records of the shipped schema for store tests: a customer and an interaction.
enum SampleRecords {
    static func customer(_ id: String, email: String, phone: String = "+1 555 123 4567") -> Record {
        Record(
            collection: "customers",
            id: id,
            subject: id,
            fields: [
                "customer_id": .string(id), "email": .string(email), "phone": .string(phone),
                "full_name": .string("Alice Example"), "birth_date": .date(days: 7000), "segment": .string("loyal"),
            ]
        )
    }

    static func interaction(_ id: String, of customer: String) -> Record {
        Record(
            collection: "interactions",
            id: id,
            subject: customer,
            fields: [
                "interaction_id": .string(id), "customer_id": .string(customer), "item_id": .string("p1"),
                "kind": .string("view"), "occurred_at": .timestamp(milliseconds: 1_700_000_000_000),
            ]
        )
    }
}

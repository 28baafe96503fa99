import Audit
import Masking
import Policy
import Store
import TutelaCore

/// Who asks, for what purpose, in what context: the caller side of every governed operation.
public struct Caller: Sendable {
    /// The principal's name.
    public var principal: String
    /// The declared purpose.
    public var purpose: String
    /// Context attributes (raw text, typed against attributes.yaml).
    public var context: [String: String]
    /// The request id that audit events carry.
    public var requestID: String
    /// How the request arrived, for conditions on `context.channel`.
    public var channel: PolicySet.Channel

    /// Creates a caller.
    public init(
        principal: String,
        purpose: String,
        context: [String: String] = [:],
        requestID: String? = nil,
        channel: PolicySet.Channel = .cli
    ) {
        self.principal = principal
        self.purpose = purpose
        self.context = context
        self.requestID = requestID ?? newRequestID()
        self.channel = channel
    }
}

extension TutelaError.Code {
    /// A policy decision denied the request.
    public static let denied = Self("access_denied")
}

/// The one place where governed reads happen: authorize, fetch, filter by consent, mask.
extension Tutela {
    /// The decision for a caller's request, with the reasons; changes nothing.
    public func explain(_ caller: Caller, action: Action, collection: String) async throws -> Decision {
        let decision = policies.evaluate(try await accessRequest(caller, action: action, collection: collection))
        var explained = readEvent(
            caller,
            action,
            collection,
            decision,
            outcome: "explained",
            records: [],
            started: .now
        )
        explained.kind = "policy.explain"
        explained.principal = configuration.operatorName
        try await audit.append(explained.with(record: "as \(caller.principal)"))
        return decision
    }

    /// One record, masked as the decision says.
    /// - Throws: `.denied` with the decision's explanation; `.notFound` when the record does not
    ///   exist or its customer has not consented to a purpose that needs consent;
    ///   `.auditUnavailable` when the read cannot be audited (then nothing is returned).
    public func governedRecord(_ caller: Caller, collection: String, id: String) async throws -> Record {
        let started = ContinuousClock.now
        let decision = try await authorize(caller, action: .read, collection: collection)
        let definition = try schema.collection(collection)
        do {
            let record = try await store.get(
                collection: collection,
                id: id,
                withheld: decision.obligations.withheldFields(of: definition)
            )
            guard try await passesRowFilter(record, decision: decision, purpose: caller.purpose) else {
                throw TutelaError(.notFound, "no record \(collection)/\(id) for purpose \(caller.purpose)")
            }
            let masked = try masker.mask(
                record,
                definition: definition,
                obligations: decision.obligations,
                purpose: caller.purpose
            )
            try await audit.append(
                readEvent(caller, .read, collection, decision, outcome: "ok", records: [record], started: started)
            )
            return masked
        } catch let error as TutelaError where error.code != .auditUnavailable {
            try await auditFailure(error, caller, .read, collection, decision, started: started)
        }
    }

    /// Records found through a blind index, masked as the decision says.
    ///
    /// The searched value is
    /// kept in the audit event only sealed under the found customer's data key.
    public func governedFind(
        _ caller: Caller,
        collection: String,
        field: String,
        value: String
    ) async throws -> [Record] {
        let started = ContinuousClock.now
        let decision = try await authorize(caller, action: .lookup, collection: collection)
        let definition = try schema.collection(collection)
        let withheld = decision.obligations.withheldFields(of: definition)
        let (found, results) = try await released(
            try await store.find(collection: collection, field: field, value: value, withheld: withheld),
            decision: decision,
            definition: definition,
            purpose: caller.purpose
        )
        var detail: String?
        if let first = found.first {
            detail = try await store.sealDetail(
                "lookup \(field)=\(value)",
                forSubject: first.subject,
                requestID: caller.requestID
            )
        }
        try await audit.append(
            readEvent(
                caller,
                .lookup,
                collection,
                decision,
                outcome: "ok",
                records: found,
                started: started,
                detail: detail
            )
        )
        return results
    }

    /// A whole collection, a page at a time, masked and filtered as the decision says; each page
    /// is audited (with its customers) before it is handed out.
    /// - Returns: how many records were emitted.
    @discardableResult
    public func governedExport(
        _ caller: Caller,
        collection: String,
        pageSize: Int = 1000,
        emit: ([Record]) async throws -> Void
    ) async throws -> Int {
        let decision = try await authorize(caller, action: .export, collection: collection)
        let definition = try schema.collection(collection)
        let withheld = decision.obligations.withheldFields(of: definition)
        var after: String?
        var total = 0
        while true {
            let started = ContinuousClock.now
            let masked: [Record]
            do {
                let page = try await store.page(
                    collection: collection,
                    after: after,
                    limit: pageSize,
                    withheld: withheld
                )
                guard let last = page.last else { break }
                after = last.id
                let (kept, maskedPage) = try await released(
                    page,
                    decision: decision,
                    definition: definition,
                    purpose: caller.purpose
                )
                try await audit.append(
                    readEvent(caller, .export, collection, decision, outcome: "ok", records: kept, started: started)
                )
                masked = maskedPage
            } catch let error as TutelaError where error.code != .auditUnavailable {
                // A page that cannot be read (a damaged record) ends the export: audited like a
                // read that fails, with nothing released from that page.
                try await auditFailure(error, caller, .export, collection, decision, started: started)
            }
            try await emit(masked)
            total += masked.count
        }
        return total
    }

    /// Decides, audits a denial, and throws unless allowed.
    func authorize(_ caller: Caller, action: Action, collection: String) async throws -> Decision {
        let started = ContinuousClock.now
        let decision = policies.evaluate(try await accessRequest(caller, action: action, collection: collection))
        guard decision.isAllowed else {
            try await audit.append(
                readEvent(caller, action, collection, decision, outcome: "denied", records: [], started: started)
            )
            let code = decision.denial?.rawValue ?? "denied"
            throw TutelaError(.denied, "denied (\(code)): \(decision.explanation)")
        }
        return decision
    }

    /// The records a decision releases from those read (its row filter), each with its masked
    /// form: the first list is audited, the second returned.
    private func released(
        _ records: [Record],
        decision: Decision,
        definition: CollectionDefinition,
        purpose: String
    ) async throws -> (kept: [Record], masked: [Record]) {
        var kept: [Record] = []
        var masked: [Record] = []
        masked.reserveCapacity(records.count)
        for record in records where try await passesRowFilter(record, decision: decision, purpose: purpose) {
            kept.append(record)
            masked.append(
                try masker.mask(record, definition: definition, obligations: decision.obligations, purpose: purpose)
            )
        }
        return (kept, masked)
    }

    /// Audits an allowed read that failed, with nothing released, and throws its error.
    private func auditFailure(
        _ error: TutelaError,
        _ caller: Caller,
        _ action: Action,
        _ collection: String,
        _ decision: Decision,
        started: ContinuousClock.Instant
    ) async throws -> Never {
        try await audit.append(
            readEvent(
                caller,
                action,
                collection,
                decision,
                outcome: Self.outcome(of: error),
                records: [],
                started: started
            )
        )
        throw error
    }

    private func readEvent(
        _ caller: Caller,
        _ action: Action,
        _ collection: String,
        _ decision: Decision,
        outcome: String,
        records: [Record],
        started: ContinuousClock.Instant,
        detail: String? = nil
    ) -> AuditEvent {
        let definition = schema.collections[collection]
        let identifies = definition.map { $0.keyField == $0.subjectField } ?? true
        return event(
            kind: "data.\(action.rawValue)",
            principal: caller.principal,
            requestID: caller.requestID,
            action: action,
            resource: collection,
            purpose: caller.purpose,
            decision: decision,
            outcome: outcome,
            count: records.count,
            subjects: records.map(\.subject),
            record: records.count == 1 && !identifies ? records[0].id : nil,
            started: started,
            detail: detail
        )
    }

    private func accessRequest(_ caller: Caller, action: Action, collection: String) async throws -> AccessRequest {
        // Made only for a policy set that reads it: a dictionary less on every request.
        let context =
            policies.readsContext || !caller.context.isEmpty
            ? try policies.requestContext(caller.context, channel: caller.channel, now: Self.now) : [:]
        return AccessRequest(
            principal: try await principalStore.principal(named: caller.principal),
            principalName: caller.principal,
            action: action,
            collection: collection,
            purpose: caller.purpose,
            context: context
        )
    }

    /// Whether a record may be returned under the decision's row filter: with consent required,
    /// only when its customer's consent record for the purpose says granted.
    private func passesRowFilter(_ record: Record, decision: Decision, purpose: String) async throws -> Bool {
        guard decision.obligations.requiresConsent else { return true }
        return await hasConsented(record.subject, to: purpose)
    }

    /// Whether a customer's consent to a purpose is on record and granted.
    ///
    /// The consent is found by its record id, `customer:purpose`, and counts only when the
    /// record itself names that customer and that purpose: a record whose id says otherwise
    /// (imported before ids were checked, or written past the schema) grants nothing. A
    /// consent that cannot be read grants nothing either.
    func hasConsented(_ customer: String, to purpose: String) async -> Bool {
        guard let consent = try? await store.get(collection: "consents", id: "\(customer):\(purpose)") else {
            return false
        }
        return consent.subject == customer && consent.fields["purpose"] == .string(purpose)
            && consent.fields["granted"] == .bool(true)
    }
}

/// Governed changes: authorize, validate, write, audit.
extension Tutela {
    /// Writes records of a collection for a caller.
    /// - Returns: how many records were written.
    /// - Throws: `.denied`, `.invalidInput` naming the record's position and field.
    @discardableResult
    public func governedWrite(_ caller: Caller, collection: String, rows: [[String: RawFieldValue]]) async throws -> Int
    {
        let decision = try await authorize(caller, action: .write, collection: collection)
        let definition = try schema.collection(collection)
        var records: [Record] = []
        records.reserveCapacity(rows.count)
        let check = consentCheck(for: collection)
        // A record id twice would store the later record over the earlier one and count both,
        // so it is refused as an import refuses it.
        var positions: [String: Int] = [:]
        positions.reserveCapacity(rows.count)
        for (index, row) in rows.enumerated() {
            do {
                let record = try definition.makeRecord(from: row)
                try check(record)
                if let earlier = positions.updateValue(index, forKey: record.id) {
                    throw TutelaError(.invalidInput, "its record id repeats record \(earlier + 1)'s")
                }
                records.append(record)
            } catch let error as TutelaError {
                throw TutelaError(error.code, "record \(index + 1): \(error.message); nothing was written")
            }
        }
        let started = event(
            kind: "data.write",
            principal: caller.principal,
            requestID: caller.requestID,
            action: .write,
            resource: collection,
            purpose: caller.purpose,
            decision: decision,
            outcome: "started",
            count: records.count,
            subjects: records.map(\.subject)
        )
        try await audited(started) { try await store.put(records) }
        return records.count
    }

    /// Erases a customer for a caller (crypto-shredding).
    public func governedErase(_ caller: Caller, subject: String) async throws -> ErasureReport {
        let decision = try await authorize(caller, action: .erase, collection: "customers")
        try Self.requireSubject(subject)
        let started = event(
            kind: "data.erase",
            principal: caller.principal,
            requestID: caller.requestID,
            action: .erase,
            resource: "customers",
            purpose: caller.purpose,
            decision: decision,
            outcome: "started",
            subjects: [subject]
        )
        let removed: (ErasureReport) -> Int = { $0.recordsRemoved }
        return try await audited(started, count: removed) { try await store.erase(subject: subject, at: Self.now) }
    }
}

extension Tutela {
    /// A model call, decided and audited like any governed operation.
    ///
    /// No model is deployed yet, so an allowed call ends in `.notFound`, recorded as such.
    public func governedInfer(_ caller: Caller, model: String) async throws -> Never {
        let started = ContinuousClock.now
        let decision = try await authorize(caller, action: .infer, collection: model)
        let error = TutelaError(.notFound, "no model '\(model)' is deployed yet")
        try await audit.append(
            event(
                kind: "model.infer",
                principal: caller.principal,
                requestID: caller.requestID,
                action: .infer,
                resource: model,
                purpose: caller.purpose,
                decision: decision,
                outcome: Self.outcome(of: error),
                started: started
            )
        )
        throw error
    }

    /// Decides a request that reads no data (the start of a stream), audits a denial, and throws
    /// unless allowed.
    @discardableResult
    public func explainedAuthorization(_ caller: Caller, action: Action, resource: String) async throws -> Decision {
        try await authorize(caller, action: action, collection: resource)
    }
}

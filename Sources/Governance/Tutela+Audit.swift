import Audit
import Crypto
import Foundation
import Policy
import Store
import TutelaCore

/// Audit plumbing: every use case builds its event here and appends it before it returns data
/// or after it announced a change, failing when the log does not take it.
extension Tutela {
    /// Milliseconds since the epoch.
    static var now: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// An event with the caller's and the decision's fields filled in.
    func event(
        kind: String,
        principal: String,
        requestID: String,
        action: Action? = nil,
        resource: String = "-",
        purpose: String = "-",
        decision: Decision? = nil,
        outcome: String,
        count: Int = 0,
        subjects: [String] = [],
        record: String? = nil,
        started: ContinuousClock.Instant? = nil,
        detail: String? = nil
    ) -> AuditEvent {
        var hmacs: [String]
        if subjects.count == 1 {
            hmacs = [auditKeys.subjectHMAC(subjects[0])]
        } else {
            hmacs = Set(subjects).map(auditKeys.subjectHMAC).sorted()
            if hmacs.count > 1000 { hmacs = Array(hmacs.prefix(1000)) }
        }
        return AuditEvent(
            time: Self.now,
            requestID: requestID,
            kind: kind,
            principal: principal,
            action: action?.rawValue ?? "-",
            resource: resource,
            record: record,
            subjects: hmacs,
            purpose: purpose,
            decision: decision.map { $0.isAllowed ? "allow" : "deny" } ?? "-",
            denial: decision?.denial?.rawValue,
            policies: decision?.policyIDs ?? [],
            policySet: decision?.policySetDigest ?? policies.digest,
            masks: decision?.maskSummary ?? [],
            outcome: outcome,
            count: count,
            durationMicroseconds: started.map { Self.microseconds(since: $0) } ?? 0,
            detail: detail
        )
    }

    static func microseconds(since start: ContinuousClock.Instant) -> Int64 {
        let elapsed = ContinuousClock.now - start
        return elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
    }

    /// The outcome text of an error.
    static func outcome(of error: any Error) -> String {
        if let error = error as? TutelaError { return "error:" + error.code.rawValue }
        return "error:internal"
    }

    /// Runs a change between a `started` event and its `ok` or `error` event.
    ///
    /// The change does
    /// not run unless the `started` event is durable.
    @discardableResult
    func audited<T>(
        _ started: AuditEvent,
        count: (T) -> Int = { _ in 0 },
        _ change: () async throws -> T
    ) async throws -> T {
        var event = started
        event.outcome = "started"
        try await audit.append(event)
        let clock = ContinuousClock.now
        do {
            let result = try await change()
            event.outcome = "ok"
            event.count = count(result)
            event.durationMicroseconds = Self.microseconds(since: clock)
            event.time = Self.now
            try await audit.append(event)
            return result
        } catch {
            event.outcome = Self.outcome(of: error)
            event.durationMicroseconds = Self.microseconds(since: clock)
            event.time = Self.now
            _ = try? await audit.append(event)
            throw error
        }
    }

    // MARK: Review

    /// Events matching a filter, newest first; `customer` is turned into its HMAC.
    public func auditSearch(
        _ filter: AuditFilter,
        customer: String? = nil,
        limit: Int = 100
    ) async throws -> [AuditEvent] {
        var filter = filter
        if let customer { filter.subjectHMAC = auditKeys.subjectHMAC(customer) }
        let found = try await audit.search(filter, limit: limit)
        // Looking into the log is itself recorded (after the search, so it does not find itself).
        try await audit.append(
            event(
                kind: "audit.search",
                principal: configuration.operatorName,
                requestID: newRequestID(),
                outcome: "ok",
                count: found.count,
                subjects: customer.map { [$0] } ?? []
            )
        )
        return found
    }

    /// Moves the audit events older than `cutoff` (milliseconds since 1970) out of the log into
    /// a new archive file, as `AuditLog.archive` does, between a `started` and an `ok` or
    /// `error` event of kind `audit.archive` (both stay in the log, newer than any cutoff in the
    /// past).
    ///
    /// The file is created only when there is something to archive, at the path `file` gives
    /// for the range, and is never written over: a file at that path fails the archive with
    /// `.alreadyExists` and leaves the log as it was.
    /// - Parameters:
    ///   - limit: the most entries to archive.
    ///   - progress: called with each phase's work done and in all.
    public func archiveAudit(
        before cutoff: Int64,
        limit: Int = .max,
        progress: @escaping @Sendable (AuditArchivePhase, Int, Int) -> Void = { _, _, _ in },
        file: (AuditArchive) -> String
    ) async throws -> AuditArchive {
        var writer: DurableFileWriter?
        do {
            return try await audited(
                event(
                    kind: "audit.archive",
                    principal: configuration.operatorName,
                    requestID: newRequestID(),
                    outcome: "started"
                )
                .with(record: "before " + CalendarDate.formatTimestamp(milliseconds: cutoff)),
                count: \.entries,
                {
                    try await audit.archive(
                        before: cutoff,
                        limit: limit,
                        opening: { writer = try DurableFileWriter(path: file($0), existing: .refuse) },
                        write: { try writer?.write($0 + "\n") },
                        commit: { try writer?.finish() },
                        progress: progress
                    )
                }
            )
        } catch {
            writer?.abandon()
            throw error
        }
    }

    /// Gives the audit log file's free pages back (see `AuditLog.compact`), audited as
    /// `audit.compact` (`convert` or `release`, and the pages released as its count).
    public func compactAudit(
        convert: Bool,
        progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in }
    ) async throws -> AuditCompaction {
        try await audited(
            event(
                kind: "audit.compact",
                principal: configuration.operatorName,
                requestID: newRequestID(),
                outcome: "started"
            )
            .with(record: convert ? "convert" : "release"),
            count: { $0.releasedBytes / max(1, $0.before.pageSize) },
            { try await audit.compact(convert: convert, progress: progress) }
        )
    }

    /// Opens an event's sealed detail with the customer's data key, after checking that the
    /// customer is one the event concerns.
    ///
    /// Audited as a read of the log.
    /// - Throws: `.subjectErased` once the customer was erased.
    public func auditDetail(_ event: AuditEvent, customer: String) async throws -> String {
        guard let detail = event.detail else { throw TutelaError(.notFound, "event \(event.sequence) has no detail") }
        guard event.subjects.contains(auditKeys.subjectHMAC(customer)) else {
            throw TutelaError(.invalidInput, "event \(event.sequence) does not concern that customer")
        }
        try await audit.append(
            self.event(
                kind: "audit.detail",
                principal: configuration.operatorName,
                requestID: newRequestID(),
                outcome: "ok",
                subjects: [customer]
            ).with(record: "event \(event.sequence)")
        )
        return try await store.openDetail(detail, forSubject: customer, requestID: event.requestID)
    }

    /// Appends synthetic `audit.stress` events from concurrent writers, reporting each
    /// acknowledged sequence number as soon as it is durable.
    public func stressAudit(count: Int, writers: Int, acknowledged: @escaping @Sendable (Int) -> Void) async throws {
        let perWriter = (count + max(1, writers) - 1) / max(1, writers)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<max(1, writers) {
                group.addTask {
                    for number in 0..<perWriter where writer * perWriter + number < count {
                        let sequence = try await self.audit.append(
                            self.event(
                                kind: "audit.stress",
                                principal: self.configuration.operatorName,
                                requestID: newRequestID(),
                                outcome: "ok"
                            )
                            .with(record: "writer \(writer) event \(number)")
                        )
                        acknowledged(sequence)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// The checkpoint verification key in its file form.
    public var auditPublicKeyText: String { auditKeys.publicKeyText }

    /// What is wrong with the published checkpoint verification key (`Keys/audit-checkpoint.pub`,
    /// which independent verifiers read), or nil when it holds this keyring's key.
    ///
    /// The log's own checks use the key derived from the keyring; a published key that was
    /// replaced would have others accept checkpoints signed by someone else.
    public func publishedAuditKeyProblem() -> String? {
        let path = configuration.auditPublicKeyPath
        let expected = auditKeys.publicKeyText.trimmingWhitespace
        guard let data = FileManager.default.contents(atPath: path) else {
            return "the published verification key \(path) is missing or unreadable; it should read \(expected)"
        }
        let published = try? AuditKeys.publicKey(fromText: String(decoding: data, as: UTF8.self))
        guard published?.rawRepresentation == auditKeys.signingKey.publicKey.rawRepresentation else {
            return "the published verification key \(path) does not hold this keyring's checkpoint key, so an "
                + "independent verifier reading it would check the checkpoints against another key; it should "
                + "read \(expected)"
        }
        return nil
    }

    /// Parses a checkpoint file's text.
    public func checkpoint(fromText text: String) throws -> Checkpoint {
        try Checkpoint(text: text)
    }
}

extension Tutela {
    /// Records a request the gateway turned away before any decision (too large, too many).
    public func auditRejection(principal: String?, requestID: String, resource: String, outcome: String) async throws {
        try await audit.append(
            event(
                kind: "http.rejected",
                principal: principal ?? "-",
                requestID: requestID,
                resource: resource,
                outcome: outcome
            )
        )
    }
}

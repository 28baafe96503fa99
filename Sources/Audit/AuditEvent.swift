import Foundation
import TutelaCore

/// One audit event: who did what to which data, for what purpose, under which policy, and how
/// it ended.
///
/// Customer identifiers never appear in it: `subjects` holds their HMACs under the audit key, so
/// the log can be searched by customer without revealing who is in it, and `detail` is sealed
/// under the customer's own data key, so erasing the customer makes it unreadable while every
/// proof stays valid (the sealed bytes do not change).
public struct AuditEvent: Sendable, Hashable {
    /// Position in the log, from 0; set when appended.
    public var sequence: Int
    /// Milliseconds since the epoch.
    public var time: Int64
    /// The request id that ties the event to a response or a command.
    public var requestID: String
    /// What kind of operation: `data.read`, `data.export`, `keys.rotate`, `auth.failed`, ...
    public var kind: String
    /// The principal's name, or `-` when unknown.
    public var principal: String
    /// The policy action, if any.
    public var action: String
    /// The collection, model or other resource.
    public var resource: String
    /// The record id when it does not identify a customer.
    public var record: String?
    /// HMACs (hex) of the customers concerned.
    public var subjects: [String]
    /// The declared purpose.
    public var purpose: String
    /// `allow`, `deny` or `-` for operations without a policy decision.
    public var decision: String
    /// The denial reason when denied.
    public var denial: String?
    /// The deciding policy ids.
    public var policies: [String]
    /// The digest of the policy set in force.
    public var policySet: String
    /// The masks applied, as `class=operator` pairs.
    public var masks: [String]
    /// `ok`, `started`, `denied` or `error:CODE`.
    public var outcome: String
    /// Records read or written.
    public var count: Int
    /// Duration in microseconds.
    public var durationMicroseconds: Int64
    /// Identifying detail sealed under a customer's data key (base64), if any.
    public var detail: String?

    /// Creates an event; `sequence` is assigned by the log.
    public init(
        time: Int64,
        requestID: String,
        kind: String,
        principal: String,
        action: String = "-",
        resource: String = "-",
        record: String? = nil,
        subjects: [String] = [],
        purpose: String = "-",
        decision: String = "-",
        denial: String? = nil,
        policies: [String] = [],
        policySet: String = "-",
        masks: [String] = [],
        outcome: String,
        count: Int = 0,
        durationMicroseconds: Int64 = 0,
        detail: String? = nil
    ) {
        self.sequence = -1
        self.time = time
        self.requestID = requestID
        self.kind = kind
        self.principal = principal
        self.action = action
        self.resource = resource
        self.record = record
        self.subjects = subjects
        self.purpose = purpose
        self.decision = decision
        self.denial = denial
        self.policies = policies
        self.policySet = policySet
        self.masks = masks
        self.outcome = outcome
        self.count = count
        self.durationMicroseconds = durationMicroseconds
        self.detail = detail
    }

    /// A copy with another record reference.
    public func with(record: String?) -> AuditEvent {
        var copy = self
        copy.record = record
        return copy
    }

    /// The canonical encoding that is hashed into the log: a JSON object with the keys in this
    /// order, optional keys left out when absent, no white space, integers in decimal, and
    /// strings escaped as described in `docs/AUDIT.md`.
    public var canonicalBytes: [UInt8] {
        var bytes: [UInt8] = []
        Self.appendCanonicalPrefix(sequence: sequence, to: &bytes)
        return bytes + canonicalRemainder
    }

    /// The canonical encoding's first bytes, up to the sequence number.
    private static let sequenceKey = #"{"v":1,"seq":"#

    /// Appends the start of the canonical encoding, up to and including the sequence number.
    static func appendCanonicalPrefix(sequence: Int, to bytes: inout [UInt8]) {
        bytes.append(contentsOf: sequenceKey.utf8)
        bytes.append(contentsOf: String(sequence).utf8)
    }

    /// The canonical encoding after the sequence number: everything the event's writer knows
    /// before the log numbers it, so that it is encoded on the caller's thread, not the log's.
    var canonicalRemainder: [UInt8] {
        var json = JSONWriter(capacity: 512)
        func string(_ key: StaticString, _ value: String) {
            json.append(raw: key)
            json.append(string: value)
        }
        func list(_ key: StaticString, _ values: [String]) {
            json.append(raw: key)
            json.append(raw: "[")
            for (index, value) in values.enumerated() {
                if index > 0 { json.append(raw: ",") }
                json.append(string: value)
            }
            json.append(raw: "]")
        }
        json.append(raw: ",\"time_ms\":")
        json.append(integer: time)
        string(",\"request_id\":", requestID)
        string(",\"kind\":", kind)
        string(",\"principal\":", principal)
        string(",\"action\":", action)
        string(",\"resource\":", resource)
        if let record { string(",\"record\":", record) }
        list(",\"subjects\":", subjects)
        string(",\"purpose\":", purpose)
        string(",\"decision\":", decision)
        if let denial { string(",\"denial\":", denial) }
        list(",\"policies\":", policies)
        string(",\"policy_set\":", policySet)
        list(",\"masks\":", masks)
        string(",\"outcome\":", outcome)
        json.append(raw: ",\"count\":")
        json.append(integer: Int64(count))
        json.append(raw: ",\"duration_us\":")
        json.append(integer: durationMicroseconds)
        if let detail { string(",\"detail\":", detail) }
        json.append(raw: "}")
        return json.bytes
    }

    /// The sequence number at the start of canonical bytes, read without decoding the rest.
    public static func sequence(inCanonical bytes: [UInt8]) -> Int? {
        let prefix = sequenceKey.utf8
        guard bytes.count > prefix.count, bytes.starts(with: prefix), bytes.last == UInt8(ascii: "}") else {
            return nil
        }
        var value = 0
        var index = prefix.count
        while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57, index - prefix.count < 18 {
            value = value * 10 + Int(bytes[index] - 48)
            index += 1
        }
        guard index > prefix.count, index < bytes.count, bytes[index] == UInt8(ascii: ",") else { return nil }
        return value
    }

    /// Decodes canonical bytes.
    /// - Throws: `TutelaError` with `.invalidInput` when they are not an event.
    public init(canonical bytes: [UInt8]) throws {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
            object["v"] as? Int == 1, let sequence = object["seq"] as? Int,
            let time = (object["time_ms"] as? NSNumber)?.int64Value
        else {
            throw TutelaError(.invalidInput, "not a version 1 audit event")
        }
        func text(_ key: String) -> String { object[key] as? String ?? "-" }
        func strings(_ key: String) -> [String] { object[key] as? [String] ?? [] }
        self.init(
            time: time,
            requestID: text("request_id"),
            kind: text("kind"),
            principal: text("principal"),
            action: text("action"),
            resource: text("resource"),
            record: object["record"] as? String,
            subjects: strings("subjects"),
            purpose: text("purpose"),
            decision: text("decision"),
            denial: object["denial"] as? String,
            policies: strings("policies"),
            policySet: text("policy_set"),
            masks: strings("masks"),
            outcome: text("outcome"),
            count: object["count"] as? Int ?? 0,
            durationMicroseconds: (object["duration_us"] as? NSNumber)?.int64Value ?? 0,
            detail: object["detail"] as? String
        )
        self.sequence = sequence
    }
}

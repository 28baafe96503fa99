import Crypto
import Foundation
import KeyManagement
import Synchronization
import TutelaCore

/// Applies a decision's masks to records as they leave the store.
///
/// Every field is masked by its class's operator; a class the decision does not name is
/// suppressed, so a field nobody granted never leaves. An operator that does not fit a value's
/// type (a year of a name, say) redacts it rather than guess.
public final class Masker: Sendable {
    private let tokenizer: DeterministicTokenizer
    private let purposeKeys: DerivedHMACKeys
    private let detector: PIIDetector

    /// Creates a masker from the keyring's token and pseudonym secrets.
    public init(keyring: Keyring, tenant: String, detector: PIIDetector = PIIDetector()) {
        self.detector = detector
        self.tokenizer = DeterministicTokenizer(keyring: keyring, tenant: tenant)
        self.purposeKeys = DerivedHMACKeys(root: keyring.secret(.pseudonyms), label: "tutela.pseudonym.v1|\(tenant)")
    }

    /// The masked copy of a record.
    /// - Parameters:
    ///   - record: the record in the clear.
    ///   - definition: its collection.
    ///   - obligations: the decision's obligations.
    ///   - purpose: the request's purpose, which keys pseudonyms and date shifts.
    public func mask(
        _ record: Record,
        definition: CollectionDefinition,
        obligations: Obligations,
        purpose: String
    ) throws -> Record {
        var fields: [String: FieldValue] = [:]
        fields.reserveCapacity(record.fields.count)
        for field in definition.fields {
            let maskOperator = obligations.mask(forClass: field.fieldClass.name)
            guard let value = record.fields[field.name] else {
                // A withheld field was stored (not null) but not decrypted: its mask needs no value.
                guard record.withheld.contains(field.name) else { continue }
                switch maskOperator {
                case .redact: fields[field.name] = .string("[REDACTED]")
                case .classToken: fields[field.name] = .string("[\(field.fieldClass.name)]")
                case .suppress: continue
                default: throw TutelaError(.invalidState, "field '\(field.name)' was withheld but its mask needs it")
                }
                continue
            }
            if let masked = try mask(
                value,
                with: maskOperator,
                fieldClass: field.fieldClass.name,
                domain: "\(definition.name).\(field.name)",
                subject: record.subject,
                purpose: purpose
            ) {
                fields[field.name] = masked
            }
        }
        let id = fields[definition.keyField].map(\.displayText) ?? ""
        return Record(collection: record.collection, id: id, subject: "", fields: fields)
    }

    /// One masked value, or nil when suppressed.
    public func mask(
        _ value: FieldValue,
        with maskOperator: MaskOperator,
        fieldClass: String,
        domain: @autoclosure () -> String,
        subject: String,
        purpose: String
    ) throws -> FieldValue? {
        if value.isNull { return value }
        switch maskOperator {
        case .clear:
            return value
        case .suppress:
            return nil
        case .redact:
            return .string("[REDACTED]")
        case .classToken:
            return .string("[\(fieldClass)]")
        case .scrubPII:
            guard case .string(let text) = value else { return .string("[REDACTED]") }
            return .string(detector.scrub(text))
        case .reversibleToken:
            return .string(try tokenizer.token(for: value.displayText, domain: domain()))
        case .pseudonym:
            // Keyed by purpose and class, not field: the same customer id gives the same pseudonym
            // in every collection (joins work) but differs from one purpose to another.
            let bytes = digest(purpose: purpose, "\(fieldClass)|\(value.displayText)")
            return .string("ps_" + Base64URL.encode(Array(bytes.prefix(16))))
        case .partial(let first, let last):
            return .string(Self.partial(value.displayText, keepFirst: first, keepLast: last))
        case .generalize(let rule):
            return Self.generalize(value, rule)
        case .dateShift(let maxDays):
            let bytes = digest(purpose: purpose, "date-shift|\(subject)")
            let raw = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let offset = Int64(raw % UInt64(2 * maxDays + 1)) - Int64(maxDays)
            // Policies bound `maxDays` (see `MaskSyntax`); a stored value at the edge of its
            // type's range that the shift would carry past it is redacted instead.
            switch value {
            case .date(let days):
                let (shifted, overflow) = days.addingReportingOverflow(Int32(truncatingIfNeeded: offset))
                return overflow ? .string("[REDACTED]") : .date(days: shifted)
            case .timestamp(let milliseconds):
                let (shifted, overflow) = milliseconds.addingReportingOverflow(offset * 86_400_000)
                return overflow ? .string("[REDACTED]") : .timestamp(milliseconds: shifted)
            default: return .string("[REDACTED]")
            }
        }
    }

    /// Keeps the first and last characters and stars the rest; a value too short to hide
    /// anything is starred entirely.
    static func partial(_ text: String, keepFirst: Int, keepLast: Int) -> String {
        partialPrintableASCII(text, keepFirst: keepFirst, keepLast: keepLast)
            ?? partialCharacters(text, keepFirst: keepFirst, keepLast: keepLast)
    }

    /// `partial` character by character, for any text.
    static func partialCharacters(_ text: String, keepFirst: Int, keepLast: Int) -> String {
        let characters = Array(text)
        guard characters.count > keepFirst + keepLast else { return String(repeating: "*", count: characters.count) }
        let middle = String(repeating: "*", count: characters.count - keepFirst - keepLast)
        return String(characters.prefix(keepFirst)) + middle + String(characters.suffix(keepLast))
    }

    /// `partial` on printable ASCII (0x20-0x7E), where every byte is one character; nil for any
    /// other text.
    static func partialPrintableASCII(_ text: String, keepFirst: Int, keepLast: Int) -> String? {
        var text = text
        return text.withUTF8 { bytes -> String? in
            guard bytes.allSatisfy({ (0x20...0x7e).contains($0) }) else { return nil }
            let count = bytes.count
            let kept = count > keepFirst + keepLast
            return String(unsafeUninitializedCapacity: count) { output in
                for index in 0..<count {
                    let visible = kept && (index < keepFirst || index >= count - keepLast)
                    output[index] = visible ? bytes[index] : UInt8(ascii: "*")
                }
                return count
            }
        }
    }

    static func generalize(_ value: FieldValue, _ rule: Generalization) -> FieldValue {
        switch (rule, value) {
        case (.band(let width), .int(let number)):
            let width = Int64(width)
            let remainder = number % width
            // The band's bounds, cut at Int64's range where the band reaches past it.
            let low: Int64
            let high: Int64
            if remainder >= 0 {
                low = number - remainder
                let (sum, overflow) = low.addingReportingOverflow(width - 1)
                high = overflow ? .max : sum
            } else {
                // A negative number's band ends below the next multiple of the width above it.
                high = number - remainder - 1
                let (difference, overflow) = number.subtractingReportingOverflow(remainder + width)
                low = overflow ? .min : difference
            }
            return .string("\(low)-\(high)")
        case (.band(let width), .double(let number)) where number.isFinite:
            let low = (number / Double(width)).rounded(.down) * Double(width)
            // A number too large for whole-number bounds has no band to show.
            guard let whole = Int64(exactly: low),
                case (let high, false) = whole.addingReportingOverflow(Int64(width) - 1)
            else { return .string("[REDACTED]") }
            return .string("\(whole)-\(high)")
        case (.prefix(let length), _):
            let text = value.displayText
            return .string(String(text.prefix(length)) + (text.count > length ? "*" : ""))
        case (.month, .date), (.month, .timestamp):
            return .string(String(value.displayText.prefix(7)))
        case (.year, .date), (.year, .timestamp):
            return .string(String(value.displayText.prefix(4)))
        default:
            return .string("[REDACTED]")
        }
    }

    private func digest(purpose: String, _ message: String) -> [UInt8] {
        purposeKeys.authenticationCode(for: message, keyName: purpose)
    }
}

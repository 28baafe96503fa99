/// What a caller wants to do.
public enum Action: String, Sendable, CaseIterable, Codable {
    /// Read records.
    case read
    /// Create or change records.
    case write
    /// Read a whole collection in bulk.
    case export
    /// Find records by exact value through a blind index.
    case lookup
    /// Erase a customer.
    case erase
    /// Turn a reversible token back into its value.
    case reidentify
    /// Call a model.
    case infer
    /// Train a model.
    case train
}

/// A typed attribute value of a principal or a request context.
public enum AttributeValue: Sendable, Hashable, Codable, CustomStringConvertible {
    case string(String)
    case int(Int64)
    case bool(Bool)

    public var description: String {
        switch self {
        case .string(let text): return text
        case .int(let number): return String(number)
        case .bool(let flag): return flag ? "true" : "false"
        }
    }
}

/// A caller known to Tutela: a person or a service account.
public struct Principal: Sendable, Hashable {
    /// The unique name.
    public var name: String
    /// The roles granted directly (inheritance is resolved by the policy set).
    public var roles: Set<String>
    /// Typed attributes, such as `region`.
    public var attributes: [String: AttributeValue]
    /// A disabled principal is denied everything.
    public var disabled: Bool

    /// Creates a principal.
    public init(name: String, roles: Set<String>, attributes: [String: AttributeValue] = [:], disabled: Bool = false) {
        self.name = name
        self.roles = roles
        self.attributes = attributes
        self.disabled = disabled
    }
}

/// One request for a policy decision, independent of how it arrived (HTTP, command line).
public struct AccessRequest: Sendable {
    /// The caller, or nil when the name is unknown.
    public var principal: Principal?
    /// The name the caller gave, for messages when it is unknown.
    public var principalName: String
    /// The action.
    public var action: Action
    /// The collection (or model name for `infer`).
    public var collection: String
    /// The declared purpose of use.
    public var purpose: String
    /// Attributes of the request context, such as `channel`.
    public var context: [String: AttributeValue]

    /// Creates a request.
    public init(
        principal: Principal?,
        principalName: String? = nil,
        action: Action,
        collection: String,
        purpose: String,
        context: [String: AttributeValue] = [:]
    ) {
        self.principal = principal
        self.principalName = principalName ?? principal?.name ?? "unknown"
        self.action = action
        self.collection = collection
        self.purpose = purpose
        self.context = context
    }
}

/// How a field value leaves the store.
public enum MaskOperator: Sendable, Hashable, CustomStringConvertible {
    /// The value as stored.
    case clear
    /// An AES-SIV token that a privileged, audited action can turn back.
    case reversibleToken
    /// A keyed HMAC pseudonym under the purpose's key: stable, joinable, not reversible.
    case pseudonym
    /// Free text with every piece of personal data the detector finds replaced by its type.
    case scrubPII
    /// Keep the first and last characters, star the rest.
    case partial(keepFirst: Int, keepLast: Int)
    /// Age to a band of this width, zip code to this many leading characters, dates to month or year.
    case generalize(Generalization)
    /// Dates moved by a per-customer offset of at most this many days either way.
    case dateShift(maxDays: Int)
    /// The field's class in brackets, such as `[pii.email]`.
    case classToken
    /// `[REDACTED]`.
    case redact
    /// The field is left out.
    case suppress

    /// How much of the value an operator reveals; when several permits apply, the most
    /// revealing operator for a class wins (permits grant, they never take away).
    public var revealingRank: Int {
        switch self {
        case .clear: return 10
        case .reversibleToken: return 8
        case .pseudonym: return 7
        case .scrubPII: return 9
        case .partial: return 6
        case .generalize: return 5
        case .dateShift: return 4
        case .classToken: return 3
        case .redact: return 2
        case .suppress: return 1
        }
    }

    public var description: String {
        switch self {
        case .clear: return "clear"
        case .reversibleToken: return "reversible_token"
        case .pseudonym: return "pseudonym"
        case .scrubPII: return "scrub_pii"
        case .partial(let first, let last): return "partial(first: \(first), last: \(last))"
        case .generalize(let rule): return "generalize(\(rule))"
        case .dateShift(let days): return "date_shift(\(days) days)"
        case .classToken: return "class_token"
        case .redact: return "redact"
        case .suppress: return "suppress"
        }
    }
}

/// A generalization rule.
public enum Generalization: Sendable, Hashable, CustomStringConvertible {
    /// Integers to bands of this width: 34 with width 10 gives "30-39".
    case band(width: Int)
    /// Text to its first characters followed by `*`.
    case prefix(length: Int)
    /// Dates and times to `YYYY-MM`.
    case month
    /// Dates and times to `YYYY`.
    case year

    public var description: String {
        switch self {
        case .band(let width): return "band \(width)"
        case .prefix(let length): return "prefix \(length)"
        case .month: return "month"
        case .year: return "year"
        }
    }
}

/// What a permit obliges the caller's results to undergo.
public struct Obligations: Sendable, Hashable {
    /// The operator per field class; a class without an entry is suppressed.
    public var masks: [String: MaskOperator]
    /// Only records of customers who consented to the request's purpose are returned.
    public var requiresConsent: Bool

    /// Creates obligations.
    public init(masks: [String: MaskOperator] = [:], requiresConsent: Bool = false) {
        self.masks = masks
        self.requiresConsent = requiresConsent
    }

    /// The operator for a field class.
    public func mask(forClass name: String) -> MaskOperator {
        masks[name] ?? .suppress
    }

    /// The masks as audit events record them: `class=operator`, in class order.
    public var summary: [String] {
        masks.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }

    /// The encrypted fields of a collection whose mask does not use the value (suppress,
    /// redact, class token): they are withheld, never made into values for this decision (a
    /// record's sealed group is decrypted whole; their bytes in it are stepped over).
    public func withheldFields(of definition: CollectionDefinition) -> Set<String> {
        var withheld: Set<String> = []
        for field in definition.fields where field.isEncrypted {
            switch mask(forClass: field.fieldClass.name) {
            case .suppress, .redact, .classToken: withheld.insert(field.name)
            default: continue
            }
        }
        return withheld
    }
}

/// A policy decision: a value that says what, why, and how.
public struct Decision: Sendable, Hashable {
    /// Why a request was denied.
    public enum Denial: String, Sendable, Hashable, Codable {
        /// A forbid rule matched.
        case forbidden
        /// No permit rule matched (default deny).
        case notPermitted = "not_permitted"
        /// The principal is unknown.
        case unknownPrincipal = "unknown_principal"
        /// The principal is disabled.
        case principalDisabled = "principal_disabled"
        /// The purpose is not declared.
        case unknownPurpose = "unknown_purpose"
        /// The collection is not in the schema.
        case unknownCollection = "unknown_collection"
    }

    /// Nil when allowed; the reason otherwise.
    public var denial: Denial?
    /// The ids of the policies that decided: the matching forbids when forbidden, the matching
    /// permits when allowed.
    public var policyIDs: [String]
    /// What the results must undergo (empty when denied); fixed, so that `maskSummary` stays
    /// its summary.
    public let obligations: Obligations
    /// The digest of the policy set that decided.
    public var policySetDigest: String
    /// A sentence for administrators.
    public var explanation: String
    /// `obligations.summary` as decided, for the audit event of every governed call; the policy
    /// set hands over one made when it loaded for the usual single permit.
    public let maskSummary: [String]

    /// Creates a decision; `maskSummary`, when given, must equal `obligations.summary`.
    public init(
        denial: Denial?,
        policyIDs: [String],
        obligations: Obligations,
        policySetDigest: String,
        explanation: String,
        maskSummary: [String]? = nil
    ) {
        self.denial = denial
        self.policyIDs = policyIDs
        self.obligations = obligations
        self.policySetDigest = policySetDigest
        self.explanation = explanation
        self.maskSummary = maskSummary ?? obligations.summary
    }

    /// Whether the request is allowed.
    public var isAllowed: Bool { denial == nil }
}

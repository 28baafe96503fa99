import Audit
import Foundation
import Policy
import TutelaCore

/// What the administration commands print with `--json`: snake_case keys, attribute values as
/// plain JSON strings, numbers and booleans.
enum JSONReports {
    /// An attribute's value as JSON has it.
    struct Scalar: Encodable {
        let value: AttributeValue

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch value {
            case .string(let text): try container.encode(text)
            case .int(let number): try container.encode(number)
            case .bool(let flag): try container.encode(flag)
            }
        }
    }

    struct PrincipalReport: Encodable {
        let name: String
        let roles: [String]
        let attributes: [String: Scalar]
        let disabled: Bool

        init(_ principal: Principal) {
            name = principal.name
            roles = principal.roles.sorted()
            attributes = principal.attributes.mapValues(Scalar.init)
            disabled = principal.disabled
        }
    }

    struct RoleReport: Encodable {
        let name: String
        let summary: String
        let inherits: [String]

        init(_ role: RoleDefinition) {
            name = role.name
            summary = role.summary
            inherits = role.inherits
        }
    }

    struct RoleDetail: Encodable {
        struct Conflict: Encodable {
            let roles: [String]
            let reason: String
        }

        struct Rule: Encodable {
            let id: String
            let effect: String
            let actions: [String]
            let collections: [String]
            let purposes: [String]
        }

        let name: String
        let summary: String
        let effectiveRoles: [String]
        let mayNotBeHeldWith: [Conflict]
        let policies: [Rule]

        enum CodingKeys: String, CodingKey {
            case name, summary, policies
            case effectiveRoles = "effective_roles"
            case mayNotBeHeldWith = "may_not_be_held_with"
        }
    }

    struct CheckpointReport: Encodable {
        let logID: String
        let size: Int
        let root: String
        let timeMilliseconds: Int64
        let signature: String
        let text: String

        init(_ checkpoint: Checkpoint) {
            logID = checkpoint.logID
            size = checkpoint.size
            root = Hex.encode(checkpoint.root)
            timeMilliseconds = checkpoint.time
            signature = Data(checkpoint.signature).base64EncodedString()
            text = checkpoint.text
        }

        enum CodingKeys: String, CodingKey {
            case size, root, signature, text
            case logID = "log_id"
            case timeMilliseconds = "time_ms"
        }
    }

    struct InclusionReport: Encodable {
        let sequence: Int
        let size: Int
        let leaf: String
        let root: String
        let path: [String]
        let verified: Bool
    }

    struct ConsistencyReport: Encodable {
        let from: Int
        let to: Int
        let oldRoot: String
        let newRoot: String
        let path: [String]

        enum CodingKeys: String, CodingKey {
            case from, to, path
            case oldRoot = "old_root"
            case newRoot = "new_root"
        }
    }

    struct DecisionReport: Encodable {
        let allowed: Bool
        let denial: String?
        let explanation: String
        let consentRequired: Bool?
        let masks: [String: String]?
        let policySet: String

        enum CodingKeys: String, CodingKey {
            case allowed, denial, explanation, masks
            case consentRequired = "consent_required"
            case policySet = "policy_set"
        }
    }

    struct PolicyTestReport: Encodable {
        struct Failure: Encodable {
            let name: String
            let location: String
            let problems: [String]
        }

        let passed: Int
        let failed: Int
        let failures: [Failure]
    }

    struct KeyVersionReport: Encodable {
        let version: Int
        let state: String
    }

    struct RevokedKeyReport: Encodable {
        let id: String
        let revoked: Bool
    }
}

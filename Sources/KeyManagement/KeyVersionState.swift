import TutelaCore

/// The lifecycle of one key-encryption-key version, as a small state machine.
///
/// ```
/// active ──rotate──▶ decryptOnly ──disable──▶ disabled ──destroy──▶ destroyed
///                         ▲  └─────────────destroy──────────────────▲
///                         └──────enable── disabled
/// ```
/// Only the active version wraps new data keys; decrypt-only versions still unwrap; disabled
/// versions unwrap nothing until enabled again; destroyed versions have no key material left.
public enum KeyVersionState: String, Sendable, Codable, CaseIterable {
    case active
    case decryptOnly = "decrypt-only"
    case disabled
    case destroyed

    /// An administrative event on a key version.
    public enum Event: String, Sendable {
        case supersede
        case disable
        case enable
        case destroy
    }

    /// Applies an event.
    /// - Throws: `TutelaError` with code `.invalidState` naming the refused transition.
    public mutating func apply(_ event: Event, version: Int) throws {
        switch (self, event) {
        case (.active, .supersede):
            self = .decryptOnly
        case (.decryptOnly, .disable):
            self = .disabled
        case (.disabled, .enable):
            self = .decryptOnly
        case (.decryptOnly, .destroy), (.disabled, .destroy):
            self = .destroyed
        case (.active, .disable), (.active, .destroy):
            throw TutelaError(
                .invalidState,
                "key version \(version) is active; rotate first so that another version takes over"
            )
        default:
            throw TutelaError(.invalidState, "key version \(version) is \(rawValue); it cannot \(event.rawValue)")
        }
    }

    /// Whether data keys wrapped under this version can be unwrapped.
    public var canUnwrap: Bool { self == .active || self == .decryptOnly }
}

import Synchronization
import TutelaCore

/// The policy set in force, replaced atomically on reload.
///
/// A reload loads and validates the whole directory first; only a set that validates replaces
/// the current one, so a broken edit never leaves a half-loaded or empty set in force. Readers
/// take the current set once per request and keep using it for that request.
public final class PolicyHolder: Sendable {
    /// The policy directory.
    public let directory: String
    private let current: Mutex<PolicySet>

    /// Loads the initial set.
    /// - Throws: `TutelaError` when it does not validate: there is no last good set yet.
    public init(directory: String) throws {
        self.directory = directory
        self.current = Mutex(try PolicyLoader.load(directory: directory))
    }

    /// The set in force.
    public var policies: PolicySet { current.withLock { $0 } }

    /// Reloads the directory.
    /// - Returns: the new set in force.
    /// - Throws: `TutelaError` naming file and line when the new set does not validate; the last
    ///   good set stays in force.
    @discardableResult
    public func reload() throws -> PolicySet {
        let fresh = try PolicyLoader.load(directory: directory)
        current.withLock { $0 = fresh }
        return fresh
    }
}

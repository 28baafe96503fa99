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
    ///
    /// The schema is not reloaded: the store validates, seals and indexes records with the
    /// schema it was opened with, so a set whose `schema.yaml` differs from the one in force
    /// would decide about collections and fields the store does not have. Such a reload is
    /// refused, asking for a restart.
    /// - Returns: the new set in force.
    /// - Throws: `TutelaError` naming file and line when the new set does not validate, or
    ///   `.configurationInvalid` when `schema.yaml` changed; the last good set stays in force.
    @discardableResult
    public func reload() throws -> PolicySet {
        let fresh = try PolicyLoader.load(directory: directory)
        try current.withLock { current in
            guard fresh.schema.digest == current.schema.digest else {
                throw TutelaError(
                    .configurationInvalid,
                    "\(directory)/schema.yaml changed since it was loaded; the store keeps the schema it opened with, "
                        + "so restart to use the new one (the policies in force stay)"
                )
            }
            current = fresh
        }
        return fresh
    }
}

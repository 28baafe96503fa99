/// The one error type Tutela's modules throw.
///
/// The code is opaque and stable, so the gateway and the command line can map it without the
/// modules exposing their internals, and new codes never break a caller's `switch`. The message
/// never contains customer data: it names collections, fields, record ids and key versions only.
public struct TutelaError: Error, Sendable, CustomStringConvertible {
    /// A stable, machine-readable error code such as `ciphertext_tampered`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's wire form, used in JSON error bodies.
        public let rawValue: String

        /// Creates a code; modules declare their codes as static members of this type.
        public init(_ rawValue: String) {
            self.rawValue = rawValue
        }

        public var description: String { rawValue }
    }

    /// What went wrong, as a stable code.
    public let code: Code
    /// A plain explanation for an administrator; free of customer data.
    public let message: String
    /// The underlying error, if any; never printed to a client.
    public let cause: (any Error & Sendable)?

    /// Creates an error.
    /// - Parameters:
    ///   - code: the stable code.
    ///   - message: a plain explanation without customer data.
    ///   - cause: the underlying error, kept for logs on the operator's side.
    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String { "\(message) [\(code)]" }
}

extension TutelaError.Code {
    /// An argument or input value does not have the expected form.
    public static let invalidInput = Self("invalid_input")
    /// Something that should exist does not.
    public static let notFound = Self("not_found")
    /// Something that must not exist twice already exists.
    public static let alreadyExists = Self("already_exists")
    /// A file or directory could not be read or written.
    public static let io = Self("io_error")
    /// The operation is not allowed in the current state.
    public static let invalidState = Self("invalid_state")
    /// A database (the record store's or the audit log's) failed.
    public static let storage = Self("storage_error")
}

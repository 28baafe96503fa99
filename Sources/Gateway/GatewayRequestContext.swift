import Governance
import Hummingbird

/// The per-request context: the request id and, once authenticated, the caller.
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The id that the response, the logs and the audit events share.
    public var requestID: String
    /// The authenticated principal, set by the authentication step.
    public var principal: String?
    /// The authenticated key's id, for rate limiting.
    public var keyID: String?

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.requestID = Tutela.makeRequestID()
    }
}

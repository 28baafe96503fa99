import Governance
import Hummingbird
import NIOCore

/// The per-request context: the request id and, once authenticated, the caller.
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The id that the response, the logs and the audit events share.
    public var requestID: String
    /// The authenticated principal, set by the authentication step.
    public var principal: String?
    /// The authenticated key's id, for rate limiting.
    public var keyID: String?
    /// The connection, whose peer address is looked up only when a request is refused.
    private let channel: (any Channel)?

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.requestID = Tutela.makeRequestID()
        self.channel = source.channel
    }

    /// The client's IP address; nil when the request came through no socket (in-process tests).
    var clientAddress: String? { channel?.remoteAddress?.ipAddress }
}

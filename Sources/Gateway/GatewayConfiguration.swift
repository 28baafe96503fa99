/// How the gateway listens and what it tolerates.
public struct GatewayConfiguration: Sendable {
    /// The address to bind.
    public var host: String
    /// The port.
    public var port: Int
    /// The largest request body accepted (413 above it).
    public var maxBodyBytes: Int
    /// The largest body limit a configuration may set: 256 MiB.
    public static let largestBodyLimit = 256 << 20
    /// Requests per second each API key may make on average (429 above it).
    public var requestsPerSecond: Double
    /// How many requests a key may make in a burst.
    public var burst: Double
    /// How long a request may run before it gets 504.
    public var requestTimeout: Duration
    /// How many requests may run at once before new ones get 503.
    public var maxConcurrentRequests: Int
    /// How long a connection may go without a request part, unless a request it sent whole is
    /// being answered, before it is closed.
    ///
    /// Keep-alive connections left idle, and clients whose request head or body stalls (a body
    /// that stalls for less than this but past `requestTimeout` gets 504), hold no socket beyond
    /// this; nor does a client that stops reading an export: a page it takes none of for this
    /// long cuts the export off.
    public var idleTimeout: Duration
    /// How many refused requests (bad or missing credentials, no such route) from one client
    /// address are audited one by one each second; beyond that the address gets 429 and the
    /// rest of its refusals in that second are audited as one counted event.
    public var refusalsPerSecond: Int
    /// The window those refusals are counted in: a second (longer only in tests, which cannot
    /// count on a burst of requests fitting in one on a loaded machine).
    var refusalWindow = Duration.seconds(1)
    /// The certificate and key to serve HTTPS with; plain HTTP when nil.
    public var tls: TLSFiles?
    /// Whether every request is logged (method, route template, status, duration, request id).
    public var logRequests: Bool

    /// PEM files of a server certificate chain and its private key.
    public struct TLSFiles: Sendable, Equatable {
        /// The certificate chain, leaf first.
        public var certificatePath: String
        /// The private key.
        public var privateKeyPath: String

        /// Names the two files.
        public init(certificatePath: String, privateKeyPath: String) {
            self.certificatePath = certificatePath
            self.privateKeyPath = privateKeyPath
        }
    }

    /// Creates a configuration with defaults suited to one small instance.
    public init(
        host: String = "127.0.0.1",
        port: Int = 8080,
        maxBodyBytes: Int = 1 << 20,
        requestsPerSecond: Double = 100,
        burst: Double = 200,
        requestTimeout: Duration = .seconds(10),
        maxConcurrentRequests: Int = 256,
        idleTimeout: Duration = .seconds(60),
        refusalsPerSecond: Int = 20,
        tls: TLSFiles? = nil,
        logRequests: Bool = false
    ) {
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst
        self.requestTimeout = requestTimeout
        self.maxConcurrentRequests = maxConcurrentRequests
        self.idleTimeout = idleTimeout
        self.refusalsPerSecond = refusalsPerSecond
        self.tls = tls
        self.logRequests = logRequests
    }
}

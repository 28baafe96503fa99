/// How the gateway listens and what it tolerates.
public struct GatewayConfiguration: Sendable {
    /// The address to bind.
    public var host: String
    /// The port.
    public var port: Int
    /// The largest request body accepted (413 above it).
    public var maxBodyBytes: Int
    /// Requests per second each API key may make on average (429 above it).
    public var requestsPerSecond: Double
    /// How many requests a key may make in a burst.
    public var burst: Double
    /// How long a request may run before it gets 504.
    public var requestTimeout: Duration
    /// How many requests may run at once before new ones get 503.
    public var maxConcurrentRequests: Int

    /// Creates a configuration with defaults suited to one small instance.
    public init(
        host: String = "127.0.0.1",
        port: Int = 8080,
        maxBodyBytes: Int = 1 << 20,
        requestsPerSecond: Double = 100,
        burst: Double = 200,
        requestTimeout: Duration = .seconds(10),
        maxConcurrentRequests: Int = 256
    ) {
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst
        self.requestTimeout = requestTimeout
        self.maxConcurrentRequests = maxConcurrentRequests
    }
}

import Audit
import Foundation
import Governance
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import Policy
import TutelaCore

/// One route of the API, with the policy action it needs.
///
/// Every data and model route is registered from this table, so a test can walk it and check
/// that none escapes authentication and the policy decision.
public struct GatewayRoute: Sendable, Hashable {
    /// The HTTP method.
    public let method: HTTPRequest.Method
    /// The path template, with `{name}` parameters.
    public let path: String
    /// The action the policies are asked about; nil for the public operational routes.
    public let action: Action?
    /// The query parameters a data or model route takes; any other is refused.
    public let query: [String]

    init(method: HTTPRequest.Method, path: String, action: Action?, query: [String] = []) {
        self.method = method
        self.path = path
        self.action = action
        self.query = query
    }

    /// The routes of the API.
    public static let all: [GatewayRoute] = [
        GatewayRoute(method: .get, path: "/healthz", action: nil),
        GatewayRoute(method: .get, path: "/readyz", action: nil),
        GatewayRoute(method: .get, path: "/metrics", action: nil),
        GatewayRoute(method: .get, path: "/openapi.yaml", action: nil),
        GatewayRoute(method: .get, path: "/v1/customers/{id}", action: .read),
        GatewayRoute(method: .get, path: "/v1/customers", action: .lookup, query: ["email", "phone"]),
        GatewayRoute(method: .post, path: "/v1/customers", action: .write),
        GatewayRoute(method: .delete, path: "/v1/customers/{id}", action: .erase),
        GatewayRoute(method: .put, path: "/v1/customers/{id}/consents/{purpose}", action: .write),
        GatewayRoute(method: .post, path: "/v1/interactions", action: .write),
        GatewayRoute(method: .post, path: "/v1/conversations", action: .write),
        GatewayRoute(method: .get, path: "/v1/collections/{collection}/export", action: .export),
        GatewayRoute(method: .post, path: "/v1/models/{name}/predict", action: .infer),
    ]

    /// The methods of the routes whose template matches `path` (a parameter matches any
    /// segment; empty segments are skipped, as the router skips them), in table order.
    static func methods(matching path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/")
        var methods: [HTTPRequest.Method] = []
        for route in all where !methods.contains(route.method) {
            let template = route.path.split(separator: "/")
            guard template.count == segments.count else { continue }
            if zip(template, segments).allSatisfy({ $0.first == "{" || $0 == $1 }) {
                methods.append(route.method)
                if route.method == .get { methods.append(.head) }
            }
        }
        return methods
    }

    /// The answer to a HEAD request: the GET answer's status and headers without its body.
    ///
    /// A streamed body (an export) has no length until it is written: it is written here, to
    /// nothing, so that the export's own audit record is made and `Content-Length` says what
    /// the GET would have sent.
    static func headResponse(to response: Response) async throws -> Response {
        guard response.body.contentLength == nil else { return response.createHeadResponse() }
        let counter = DiscardingBodyWriter.Count()
        try await response.body.write(DiscardingBodyWriter(count: counter))
        var head = response.createHeadResponse()
        head.headers[.contentLength] = String(counter.bytes)
        return head
    }

    /// The Hummingbird path: `{id}` becomes `:id`.
    var routerPath: String {
        path.replacingOccurrences(of: "{", with: ":").replacingOccurrences(of: "}", with: "")
    }
}

/// The header that names the purpose of a data or model request.
public let purposeHeader = HTTPField.Name("Tutela-Purpose") ?? .accept
/// The response header that carries the request id.
let requestIDHeader = HTTPField.Name("X-Request-Id") ?? .accept

/// Builds the HTTP application over a Tutela instance; `tutela serve` and the tests call this.
/// - Throws: `.configurationInvalid` when the TLS certificate or key cannot be read.
public func buildApplication(
    tutela: Tutela,
    configuration: GatewayConfiguration,
    logger: Logger = Logger(label: "tutela.gateway"),
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) throws -> some ApplicationProtocol {
    let gateway = GatewayHandlers(tutela: tutela, configuration: configuration, logger: logger)
    let router = Router(context: GatewayRequestContext.self)
    router.add(middleware: GatewayMiddleware(gateway: gateway))
    let audit = tutela.audit
    audit.observeWriteHealth { reason in
        if let reason {
            logger.error(
                "the audit log cannot store events; audited requests are refused",
                metadata: ["reason": "\(reason)"]
            )
        } else {
            logger.notice("the audit log stores events again")
        }
    }
    // Requests wait for their audit commit: a slow disk is worth a line in the log, at most one a
    // minute.
    audit.observeSlowCommits(over: .milliseconds(100), every: .seconds(60)) { count, slowest in
        let milliseconds = Int(
            slowest.components.seconds * 1000 + slowest.components.attoseconds / 1_000_000_000_000_000
        )
        logger.warning(
            "audit commits are slow: requests wait for them (see tutela_audit_commit_duration_seconds)",
            metadata: [
                "slow_commits": .stringConvertible(count), "slowest_ms": .stringConvertible(milliseconds),
                "threshold_ms": "100",
            ]
        )
    }
    for route in GatewayRoute.all {
        let audited = route.action != nil
        let respond: @Sendable (Request, GatewayRequestContext) async throws -> Response = { request, context in
            // Operational routes answer from memory or with one read each (which WAL mode never
            // makes wait for a writer): they run without a timeout, and so without the child
            // task that a timeout needs.
            guard audited else { return try await gateway.respond(to: route, request: request, context: context) }
            // The audit log's writer may hold a batch open for an audited call's event, so that
            // calls under load share a commit.
            return try await audit.expectingAppend {
                try await gateway.withTimeout(route: route, requestID: context.requestID) { progress in
                    try await gateway.respond(to: route, request: request, context: context, progress: progress)
                }
            }
        }
        router.on(RouterPath(route.routerPath), method: route.method, use: respond)
        // HEAD is GET without the body (RFC 9110 asks every server for both): the same
        // authentication, decision and audit record, then the headers alone.
        // (`GatewayMiddleware` drops the body, also from an error's answer.)
        if route.method == .get { router.on(RouterPath(route.routerPath), method: .head, use: respond) }
    }
    var server = HTTPServerBuilder.http1(configuration: .init(idleTimeout: TimeAmount(configuration.idleTimeout)))
    if let tls = configuration.tls {
        server = try .tls(server, tlsConfiguration: try tlsConfiguration(tls))
    }
    return Application(
        router: router,
        server: server,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "tutela"),
        onServerRunning: onServerRunning,
        logger: logger
    )
}

/// The error to report when the server cannot listen where it was told to, in words an
/// administrator acts on; nil for any other error.
public func listeningError(_ error: any Error, host: String, port: Int) -> TutelaError? {
    if error is SocketAddressError.UnknownHost {
        return TutelaError(
            .configurationInvalid,
            "cannot listen on \(host):\(port): the host is neither an IP address nor a name that resolves"
        )
    }
    guard let error = error as? IOError else { return nil }
    let reason: String
    switch error.errnoCode {
    case EADDRINUSE: reason = "the address is in use (is another server running?)"
    case EACCES: reason = "permission denied (ports below 1024 need privileges)"
    case EADDRNOTAVAIL: reason = "the host address is not one of this machine's"
    default: return nil
    }
    return TutelaError(.io, "cannot listen on \(host):\(port): \(reason)")
}

/// The server side of TLS from PEM files: TLS 1.2 or later, the library's default ciphers.
private func tlsConfiguration(_ files: GatewayConfiguration.TLSFiles) throws -> TLSConfiguration {
    let certificates: [NIOSSLCertificate]
    let key: NIOSSLPrivateKey
    // A missing or unreadable file is named with its reason; one that reads but does not parse
    // as PEM is reported below.
    try FileReading.requireReadable(files.certificatePath, role: "the TLS certificate", code: .configurationInvalid)
    try FileReading.requireReadable(files.privateKeyPath, role: "the TLS key", code: .configurationInvalid)
    do {
        certificates = try NIOSSLCertificate.fromPEMFile(files.certificatePath)
    } catch {
        throw TutelaError(.configurationInvalid, "cannot read a PEM certificate chain from \(files.certificatePath)")
    }
    do {
        key = try NIOSSLPrivateKey(file: files.privateKeyPath, format: .pem)
    } catch {
        throw TutelaError(.configurationInvalid, "cannot read a PEM private key from \(files.privateKeyPath)")
    }
    guard !certificates.isEmpty else {
        throw TutelaError(.configurationInvalid, "\(files.certificatePath) holds no certificate")
    }
    var configuration = TLSConfiguration.makeServerConfiguration(
        certificateChain: certificates.map { .certificate($0) },
        privateKey: .privateKey(key)
    )
    configuration.minimumTLSVersion = .tlsv12
    // A key that reads but is not the certificate's is found here, where it can be named:
    // the server builder's own error says only "failedToLoadPrivateKey".
    do {
        _ = try NIOSSLContext(configuration: configuration)
    } catch {
        throw TutelaError(
            .configurationInvalid,
            "the TLS key in \(files.privateKeyPath) does not belong to the certificate in \(files.certificatePath)"
        )
    }
    return configuration
}

/// Request id, limits, timing and error mapping around every route.
struct GatewayMiddleware: RouterMiddleware {
    let gateway: GatewayHandlers

    /// Seconds as milliseconds with three decimals ("12.345"), without Foundation's formatter,
    /// which cost more than the rest of a request line.
    static func milliseconds(_ seconds: Double) -> String {
        let microseconds = max(0, Int((seconds * 1_000_000).rounded()))
        let fraction = microseconds % 1000
        return "\(microseconds / 1000)." + (fraction < 10 ? "00" : fraction < 100 ? "0" : "") + "\(fraction)"
    }

    /// Logs a request that failed on the server's side.
    ///
    /// Its caller got a 500 that says no more than the error's code. The line names the request
    /// id, the route template and that code (for another error than Tutela's own, its type),
    /// never the error's message, which may name a record: the audit event of the same request
    /// id says which.
    static func logServerFailure(_ error: any Error, requestID: String, route: String?, to logger: Logger) {
        var metadata: Logger.Metadata = [
            "request_id": .string(requestID), "route": .string(route ?? "unmatched"),
            "code": .string(GatewayErrors.code(of: error)),
        ]
        if !(error is TutelaError) { metadata["error_type"] = .string(String(describing: type(of: error))) }
        logger.error("a request failed on the server's side", metadata: metadata)
    }

    func handle(
        _ request: Request,
        context: GatewayRequestContext,
        next: (Request, GatewayRequestContext) async throws -> Response
    ) async throws -> Response {
        let started = ContinuousClock.now
        var response: Response
        if !gateway.enter() {
            response = GatewayErrors.response(
                status: .serviceUnavailable,
                code: "busy",
                message: "too many requests in flight",
                requestID: context.requestID
            )
        } else {
            defer { gateway.leave() }
            do {
                response = try await next(request, context)
            } catch {
                response = GatewayErrors.response(for: error, requestID: context.requestID)
                if response.status == .internalServerError {
                    Self.logServerFailure(
                        error,
                        requestID: context.requestID,
                        route: context.endpointPath,
                        to: gateway.logger
                    )
                }
            }
            // Hummingbird's router names the endpoint "NotFound" when no route matched path and
            // method.
            if context.endpointPath == nil || context.endpointPath == "NotFound" {
                // A path that a route serves with other methods gets 405 and those methods.
                let allowed = response.status == .notFound ? GatewayRoute.methods(matching: request.uri.path) : []
                if !allowed.isEmpty {
                    let names = allowed.map(\.rawValue).joined(separator: ", ")
                    response = GatewayErrors.response(
                        status: .methodNotAllowed,
                        code: "method_not_allowed",
                        message: "\(request.method.rawValue) is not served here (allowed: \(names))",
                        requestID: context.requestID
                    )
                    response.headers[.allow] = names
                }
                // A request no route matched (a probe, a client's mistake) is audited too, by
                // method only: the path may hold customer data. Fail closed like every audit.
                do {
                    if let limited = gateway.limitedRefusal(from: context) { throw limited }
                    try await gateway.tutela.auditRejection(
                        principal: nil,
                        requestID: context.requestID,
                        resource: "\(request.method.rawValue) unmatched",
                        outcome: "error:http_\(response.status.code)"
                    )
                } catch {
                    response = GatewayErrors.response(for: error, requestID: context.requestID)
                }
            }
        }
        if request.method == .head {
            do {
                response = try await GatewayRoute.headResponse(to: response)
            } catch {
                response = GatewayErrors.response(for: error, requestID: context.requestID).createHeadResponse()
            }
        }
        response.headers[requestIDHeader] = context.requestID
        // Answers carry customer data or name records: no cache along the way keeps a copy.
        response.headers[.cacheControl] = "no-store"
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let route = context.endpointPath ?? "unmatched"
        gateway.metrics.record(
            route: route,
            method: request.method.rawValue,
            status: response.status.code,
            seconds: seconds
        )
        if gateway.configuration.logRequests {
            // The route template, never the path or the query: both may hold customer data.
            let milliseconds = Self.milliseconds(seconds)
            if let handler = gateway.jsonLog {
                handler.logRequest(
                    requestID: context.requestID,
                    method: request.method.rawValue,
                    route: route,
                    status: response.status.code,
                    milliseconds: milliseconds
                )
            } else {
                gateway.logger.info(
                    "request",
                    metadata: [
                        "request_id": .string(context.requestID), "method": .string(request.method.rawValue),
                        "route": .string(route), "status": .stringConvertible(response.status.code),
                        "duration_ms": .string(milliseconds),
                    ]
                )
            }
        }
        return response
    }
}

/// A response body writer that keeps nothing but the number of bytes written to it.
struct DiscardingBodyWriter: ResponseBodyWriter {
    /// The bytes written so far; a reference, because writing a body consumes its writer.
    final class Count {
        var bytes = 0
    }

    let count: Count

    mutating func write(_ buffer: ByteBuffer) async throws { count.bytes += buffer.readableBytes }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

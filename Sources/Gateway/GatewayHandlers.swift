import Audit
import Foundation
import Governance
import HTTPTypes
import Hummingbird
import HummingbirdCore
import KeyManagement
import Logging
import NIOCore
import Policy
import Store
import Synchronization
import TutelaCore

/// The handlers behind the route table.
///
/// Every `/v1` route passes the same steps before its
/// handler: authenticate the API key, take a rate-limit token, require a purpose; the handler
/// then calls a governed use case, which decides, masks and audits.
final class GatewayHandlers: Sendable {
    let tutela: Tutela
    let configuration: GatewayConfiguration
    let logger: Logger
    /// The logger's handler when it writes JSON lines: request lines then skip swift-log's
    /// metadata dictionary.
    let jsonLog: JSONLogHandler?
    let metrics = GatewayMetrics()
    private let limiter: RateLimiter
    let refusals: RefusalLimiter
    private let inFlight = Mutex(0)
    private let openAPIDocument: String

    init(tutela: Tutela, configuration: GatewayConfiguration, logger: Logger) {
        self.tutela = tutela
        self.configuration = configuration
        self.logger = logger
        self.jsonLog = logger.handler as? JSONLogHandler
        self.limiter = RateLimiter(requestsPerSecond: configuration.requestsPerSecond, burst: configuration.burst)
        self.refusals = RefusalLimiter(
            perSecond: configuration.refusalsPerSecond,
            window: configuration.refusalWindow
        )
        let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml")
        self.openAPIDocument = url.flatMap { try? String(contentsOf: $0, encoding: .utf8) } ?? ""
    }

    // MARK: Limits

    func enter() -> Bool {
        inFlight.withLock { count in
            guard count < configuration.maxConcurrentRequests else { return false }
            count += 1
            return true
        }
    }

    func leave() {
        inFlight.withLock { $0 -= 1 }
    }

    /// Runs a data or model route's handler under the request timeout.
    ///
    /// Past the timeout the handler's task is cancelled, the cut-off request is audited, and the
    /// caller gets 504. Every operation a handler awaits is itself bounded (store access by
    /// SQLite's busy timeout, audit appends by their own deadline), so cancellation is seen.
    ///
    /// The handler runs in a child task, and only that task is cancelled: the task that called
    /// this one serves the connection, and cancelling it would close the connection before the
    /// 504 could be written.
    func withTimeout(
        route: GatewayRoute,
        requestID: String,
        _ body: @escaping @Sendable (RequestProgress) async throws -> Response
    ) async throws -> Response {
        let timeout = configuration.requestTimeout
        let progress = RequestProgress()
        do {
            return try await withThrowingTaskGroup(of: Response.self) { group in
                group.addTask {
                    try await Deadlines.shared.withCancellation(after: timeout) { try await body(progress) }
                }
                guard let response = try await group.next() else { throw CancellationError() }
                return response
            }
        } catch is DeadlineExpired {
            await auditTimeout(route: route, requestID: requestID, principal: progress.principal)
            throw GatewayRejection(status: .gatewayTimeout, code: "timeout", message: "the request took too long")
        } catch {
            try await auditUnrecorded(error, route: route, requestID: requestID, principal: progress.principal)
            throw error
        }
    }

    /// Audits a request refused before any step recorded it (a missing purpose header, a body
    /// that is not JSON, a record that does not validate), by its principal once admitted, its
    /// route template and the error code; failing closed like every audit.
    ///
    /// Refusals that their step audits (credentials, decisions, limits) are left alone, and so
    /// are those counted for an address over its share of refusals.
    private func auditUnrecorded(
        _ error: any Error,
        route: GatewayRoute,
        requestID: String,
        principal: String?
    )
        async throws
    {
        let code = GatewayErrors.code(of: error)
        guard !tutela.audit.callHasAppended, code != "too_many_refusals", !(error is CancellationError) else { return }
        try await tutela.auditRejection(
            principal: principal,
            requestID: requestID,
            resource: route.path,
            outcome: "error:\(code)"
        )
    }

    /// How far a request got before it failed: its principal, once authenticated, for the audit
    /// event of a timeout or of a refusal no step recorded.
    final class RequestProgress: Sendable {
        private let admitted = Mutex<String?>(nil)

        var principal: String? { admitted.withLock { $0 } }

        func admit(_ principal: String) { admitted.withLock { $0 = principal } }
    }

    /// The longest a cut-off request's answer waits for its audit event.
    static let timeoutAuditWait = Duration.seconds(1)

    /// Records a request cut off at its timeout (by its principal when it was admitted, and
    /// its route template), waiting at most `timeoutAuditWait`: when the audit log is itself
    /// the cause (a locked file, a full disk), the 504 is not held for it, and the event stays
    /// queued for the log's writer.
    private func auditTimeout(route: GatewayRoute, requestID: String, principal: String?) async {
        let tutela = tutela
        do {
            // In a child task like the handler, so that its deadline cancels only the wait.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await Deadlines.shared.withCancellation(after: Self.timeoutAuditWait) {
                        try await tutela.auditRejection(
                            principal: principal,
                            requestID: requestID,
                            resource: route.path,
                            outcome: "error:timeout"
                        )
                    }
                }
                try await group.next()
            }
        } catch {
            logger.warning(
                "a request cut off at its timeout was not audited in time",
                metadata: ["request_id": .string(requestID), "route": .string(route.path)]
            )
        }
    }

    // MARK: Dispatch

    func respond(
        to route: GatewayRoute,
        request: Request,
        context: GatewayRequestContext,
        progress: RequestProgress? = nil
    ) async throws -> Response {
        guard route.action != nil else { return try await operational(route, context: context) }
        // A keyring or credentials changed by `tutela ...` in another process are in force from
        // the next request on. The whole request sees the watched files as they were when it
        // began: one read of the change monitor's queue when nothing changed, whether it looks
        // at the keyring, its API key and its principal or at more.
        return try await tutela.withFileChangesPinned {
            let caller = try await admit(request, context: context, route: route, progress: progress)
            return try await handle(route, request: request, context: context, caller: caller)
        }
    }

    /// A data or model route's work for an admitted caller.
    private func handle(
        _ route: GatewayRoute,
        request: Request,
        context: GatewayRequestContext,
        caller: Caller
    ) async throws -> Response {
        var request = request
        try Self.checkQuery(of: request.uri, for: route)
        switch (route.method, route.path) {
        case (.get, "/v1/customers/{id}"):
            let id = try Self.pathParameter("id", of: context)
            let record = try await tutela.governedRecord(caller, collection: "customers", id: id)
            var body = JSONWriter(capacity: 512)
            RecordJSON.encode(record, definition: try tutela.schema.collection("customers"), into: &body)
            return json(body)
        case (.get, "/v1/customers"):
            let query = request.uri.queryParameters
            let (field, value): (String, String)
            switch (query.get("email"), query.get("phone")) {
            case (let email?, nil): (field, value) = ("email", email)
            case (nil, let phone?): (field, value) = ("phone", phone)
            case (_?, _?): throw TutelaError(.invalidInput, "give query parameter 'email' or 'phone', not both")
            case (nil, nil): throw TutelaError(.invalidInput, "query parameter 'email' or 'phone' is required")
            }
            let definition = try tutela.schema.collection("customers")
            let found = try await tutela.governedFind(caller, collection: "customers", field: field, value: value)
            var body = JSONWriter(capacity: 512 * max(1, found.count))
            body.append(raw: "[")
            for (index, record) in found.enumerated() {
                if index > 0 { body.append(raw: ",") }
                RecordJSON.encode(record, definition: definition, into: &body)
            }
            body.append(raw: "]")
            return json(body)
        case (.post, "/v1/customers"), (.post, "/v1/interactions"), (.post, "/v1/conversations"):
            let collection = String(route.path.dropFirst("/v1/".count))
            let rows = try await body(&request, caller: caller, resource: collection)
            let count = try await tutela.governedWrite(caller, collection: collection, rows: rows)
            return json("{\"written\":\(count)}", status: .created)
        case (.put, "/v1/customers/{id}/consents/{purpose}"):
            let id = try Self.pathParameter("id", of: context)
            let purpose = try Self.pathParameter("purpose", of: context)
            // A consent is to a declared purpose: anything else would be a record no decision
            // reads (and a purpose with a colon would make its record id ambiguous).
            guard tutela.policies.purposes[purpose] != nil else {
                throw TutelaError(.invalidInput, "purpose '\(purpose)' is not declared in purposes.yaml")
            }
            let rows = try await body(&request, caller: caller, resource: "consents")
            guard rows.count == 1, case .bool(let granted)? = rows[0]["granted"] else {
                throw TutelaError(.invalidInput, "field 'granted': expected true or false")
            }
            // The other fields of a consent come from the path and the clock: one sent in the
            // body would be ignored, so it is refused like an undeclared field of a record.
            guard rows[0].count == 1 else {
                throw TutelaError(.invalidInput, "the body holds only the field 'granted'; nothing was written")
            }
            let row: [String: RawFieldValue] = [
                "consent_id": .text("\(id):\(purpose)"), "customer_id": .text(id), "purpose": .text(purpose),
                "granted": .bool(granted),
                "recorded_at": .text(
                    CalendarDate.formatTimestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000))
                ),
            ]
            try await tutela.governedWrite(caller, collection: "consents", rows: [row])
            var body = JSONWriter(capacity: 128)
            body.append(raw: "{\"customer_id\":")
            body.append(string: id)
            body.append(raw: ",\"purpose\":")
            body.append(string: purpose)
            body.append(raw: granted ? ",\"granted\":true}" : ",\"granted\":false}")
            return json(body)
        case (.delete, "/v1/customers/{id}"):
            let report = try await tutela.governedErase(caller, subject: try Self.pathParameter("id", of: context))
            return json(
                "{\"erased\":true,\"records_removed\":\(report.recordsRemoved),\"already_erased\":\(report.alreadyErased)}"
            )
        case (.get, "/v1/collections/{collection}/export"):
            return try await export(collection: try Self.pathParameter("collection", of: context), caller: caller)
        case (.post, "/v1/models/{name}/predict"):
            try await tutela.governedInfer(caller, model: try Self.pathParameter("name", of: context))
        default:
            throw TutelaError(.notFound, "no such route")
        }
    }

    /// Refuses a query parameter the route does not take, and one given twice, rather than
    /// answer as if it were not there (an export's `limit`, say, would be read as honoured).
    ///
    /// An unknown parameter is not named back: its name may be a customer's detail sent in the
    /// wrong place. A lone `?` or an empty `&&` pair is no parameter.
    /// - Throws: `.invalidInput`.
    static func checkQuery(of uri: URI, for route: GatewayRoute) throws {
        guard uri.query != nil else { return }
        var seen: [Substring] = []
        for (name, value) in uri.queryParameters where !(name.isEmpty && value.isEmpty) {
            guard route.query.contains(where: { $0 == name }) else {
                let taken = route.query.map { "'\($0)'" }.joined(separator: ", ")
                throw TutelaError(
                    .invalidInput,
                    taken.isEmpty
                        ? "this route takes no query parameters"
                        : "a query parameter this route does not take (it takes \(taken))"
                )
            }
            guard !seen.contains(name) else {
                throw TutelaError(.invalidInput, "query parameter '\(name)' is given more than once")
            }
            seen.append(name)
        }
    }

    /// The token of an `Authorization` value in the Bearer scheme, whose name is matched without
    /// regard to case, as HTTP's scheme names are (`bearer tut_...` is taken); nil for any other.
    static func bearerToken(_ value: String) -> String? {
        let utf8 = value.utf8
        guard utf8.count > 7, utf8.prefix(6).elementsEqual("bearer".utf8, by: { $0 | 0x20 == $1 }) else { return nil }
        let rest = value.utf8.dropFirst(6)
        guard rest.first == UInt8(ascii: " ") else { return nil }
        let token = rest.drop { $0 == UInt8(ascii: " ") }
        return token.isEmpty ? nil : String(Substring(token))
    }

    /// A path parameter's value, percent-decoded: the router hands over the segment as sent,
    /// so an id with a space or a letter outside ASCII arrives as `%20` or `%C3%A9`.
    /// - Throws: `.invalidInput` when the segment is not percent-encoded UTF-8, or holds a
    ///   control character (no record key may, and the value goes into the audit log).
    static func pathParameter(_ name: String, of context: GatewayRequestContext) throws -> String {
        guard let value = percentDecoded(try context.parameters.require(name)) else {
            throw TutelaError(.invalidInput, "the path's \(name) is not valid percent-encoded UTF-8")
        }
        guard !value.unicodeScalars.contains(where: \.isControlCharacter) else {
            throw TutelaError(.invalidInput, "the path's \(name) holds a control character")
        }
        return value
    }

    /// `text` with each `%XX` replaced by the byte it encodes, or nil.
    ///
    /// Nil when an escape is not two hexadecimal digits or the bytes are not UTF-8 (Foundation
    /// substitutes U+FFFD for some of those). A `+` stays a `+`, as in a path.
    ///
    /// Foundation's `removingPercentEncoding` goes through a CFString on every call, about 2 %
    /// of a governed fetch's processor time; a path without `%` is returned as it is.
    static func percentDecoded(_ text: String) -> String? {
        let utf8 = text.utf8
        guard utf8.contains(UInt8(ascii: "%")) else { return text }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var iterator = utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(Hex.digitValue), let low = iterator.next().flatMap(Hex.digitValue)
            else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// A request header's value: the one field's value, or all of them joined as HTTP does
    /// when the header is repeated (which no valid credential or purpose matches).
    ///
    /// `HTTPFields`' own subscript always joins through a lazy sequence; one field, the usual
    /// case, is found by a scan of the few fields a request has.
    static func header(_ name: HTTPField.Name, in fields: HTTPFields) -> String? {
        var found: String?
        for field in fields where field.name == name {
            guard found == nil else { return fields[name] }
            found = field.value
        }
        return found
    }

    /// Authentication, rate limit and purpose, in that order; each failure is audited.
    private func admit(
        _ request: Request,
        context: GatewayRequestContext,
        route: GatewayRoute,
        progress: RequestProgress?
    ) async throws -> Caller {
        let token = Self.header(.authorization, in: request.headers).flatMap(Self.bearerToken)
        if let outcome = await tutela.reloadKeyringIfChanged() { logKeyringReload(outcome, to: logger) }
        let check = try await tutela.checkCredentials(token: token)
        guard case .valid(let principal) = check else {
            if let limited = limitedRefusal(from: context) { throw limited }
            throw try await tutela.auditCredentialFailure(check, requestID: context.requestID)
        }
        progress?.admit(principal)
        // An admitted token is `tut_KEYID_SECRET` with a key id of 16 ASCII characters: it
        // names the bucket.
        let bucket = token.map { String(decoding: $0.utf8.dropFirst(4).prefix(16), as: UTF8.self) } ?? principal
        if let wait = limiter.take(bucket) {
            try await tutela.auditRejection(
                principal: principal,
                requestID: context.requestID,
                resource: route.path,
                outcome: "error:rate_limited"
            )
            throw GatewayRejection(
                status: .tooManyRequests,
                code: "rate_limited",
                message: "too many requests for this API key",
                retryAfter: max(1, Int(wait.rounded(.up)))
            )
        }
        guard let purpose = Self.header(purposeHeader, in: request.headers), !purpose.isEmpty else {
            throw GatewayRejection(
                status: .badRequest,
                code: "purpose_required",
                message: "header 'Tutela-Purpose' is required"
            )
        }
        // Not quoted back: no declared purpose is this long.
        guard purpose.utf8.count <= PurposeDefinition.maximumNameLength else {
            throw GatewayRejection(
                status: .badRequest,
                code: "invalid_input",
                message:
                    "header 'Tutela-Purpose' is longer than \(PurposeDefinition.maximumNameLength) bytes: it names a purpose of purposes.yaml"
            )
        }
        return Caller(principal: principal, purpose: purpose, requestID: context.requestID, channel: .api)
    }

    /// The 429 for a refusal from an address that has had its share of audited refusals this
    /// second (the refusal is counted, and the count audited when the second ends); nil when this
    /// refusal is to be audited as usual.
    func limitedRefusal(from context: GatewayRequestContext) -> GatewayRejection? {
        guard let address = context.clientAddress, case .limit(let first) = refusals.take(address) else { return nil }
        if first {
            let tutela = tutela
            let refusals = refusals
            let logger = logger
            _ = Deadlines.shared.schedule(after: refusals.window) {
                Task {
                    let count = refusals.takeLimited(address)
                    guard count > 0 else { return }
                    do {
                        try await tutela.auditLimitedRefusals(address: address, count: count)
                    } catch {
                        logger.error(
                            "refused requests answered 429 could not be audited",
                            metadata: ["address": .string(address), "count": .stringConvertible(count)]
                        )
                    }
                }
            }
        }
        return GatewayRejection(
            status: .tooManyRequests,
            code: "too_many_refusals",
            message: "too many refused requests from this address",
            retryAfter: 1
        )
    }

    /// The request body as one JSON object or an array of objects, within the size limit.
    private func body(
        _ request: inout Request,
        caller: Caller,
        resource: String
    ) async throws -> [[String: RawFieldValue]] {
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: configuration.maxBodyBytes)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            try await tutela.auditRejection(
                principal: caller.principal,
                requestID: caller.requestID,
                resource: resource,
                outcome: "error:payload_too_large"
            )
            throw GatewayRejection(
                status: .contentTooLarge,
                code: "payload_too_large",
                message: "the body is larger than \(configuration.maxBodyBytes) bytes"
            )
        }
        do {
            return try buffer.withUnsafeReadableBytes { try FlatJSONReader.objects($0) }
        } catch let error as TutelaError {
            throw TutelaError(
                .invalidInput,
                "the body must be a JSON object or an array of objects of field names to values; \(error.message)"
            )
        }
    }

    private func export(collection: String, caller: Caller) async throws -> Response {
        let definition = try tutela.schema.collection(collection)
        let tutela = self.tutela
        let logger = logger
        let stallLimit = configuration.idleTimeout
        // Decide before the first byte, so that a denial is a clean 403 rather than a cut stream.
        _ = try await tutela.explainedAuthorization(caller, action: .export, resource: collection)
        let body = ResponseBody { writer in
            let pages = PageChannel()
            let producer = Task {
                do {
                    try await tutela.governedExport(caller, collection: collection) { page in
                        let text = page.map { RecordJSON.encode($0, definition: definition) + "\n" }.joined()
                        // The response has ended (the client went away): read no further.
                        guard await pages.send(text) else { throw CancellationError() }
                    }
                    pages.finish(nil)
                } catch {
                    pages.finish(error)
                }
            }
            defer {
                pages.close()
                producer.cancel()
            }
            do {
                try await Self.writePages(pages, to: &writer, stallLimit: stallLimit)
            } catch is DeadlineExpired {
                logger.warning(
                    "an export was cut off: its client took none of it for the idle timeout",
                    metadata: ["request_id": .string(caller.requestID), "collection": .string(collection)]
                )
                throw DeadlineExpired()
            } catch let error as TutelaError {
                // The status line is sent: the client sees a response that ends without its last
                // chunk. The log says why, by code (the message may name a record).
                logger.error(
                    "an export failed after its response began; the response was cut off",
                    metadata: [
                        "request_id": .string(caller.requestID), "collection": .string(collection),
                        "code": .string(error.code.rawValue),
                    ]
                )
                throw error
            }
            try await writer.finish(nil)
        }
        var response = Response(status: .ok, body: body)
        response.headers[.contentType] = "application/x-ndjson"
        return response
    }

    /// Writes an export's pages as they come, and cuts the response off when its client takes
    /// nothing for `stallLimit`.
    ///
    /// A client that stops reading fills the socket's buffers, and the next write waits until
    /// it reads again; without a limit an export held its connection and its task for as long
    /// as such a client stayed connected. Past the limit the task serving the connection is
    /// cancelled, which ends the waiting write, and the connection closes: an answer cut off
    /// after its status line has no other way to say so.
    /// - Throws: `DeadlineExpired` when a page waited longer than `stallLimit`; else the
    ///   producer's or the writer's error.
    static func writePages(
        _ pages: PageChannel,
        to writer: inout any ResponseBodyWriter,
        stallLimit: Duration
    ) async throws {
        while let text = try await pages.next() {
            try await Deadlines.shared.withCancellation(after: stallLimit) {
                try await writer.write(ByteBuffer(string: text))
            }
        }
    }

    /// How long `/readyz` answers 503 after an audit write failed, unless a batch is stored first.
    static let auditFailureHold = Duration.seconds(10)

    private func operational(_ route: GatewayRoute, context: GatewayRequestContext) async throws -> Response {
        switch route.path {
        case "/healthz":
            return json("{\"status\":\"ok\"}")
        case "/readyz":
            do {
                _ = try await tutela.recordCount(collection: "customers")
                _ = try await tutela.audit.size
                // Reads pass on a full disk, where every audited request is refused: an audit
                // write that failed lately keeps the server out of rotation for a while, then
                // lets requests try again.
                guard tutela.audit.recentWriteFailure(within: Self.auditFailureHold) == nil else {
                    return GatewayErrors.response(
                        status: .serviceUnavailable,
                        code: "not_ready",
                        message: "the audit log could not store its latest events",
                        requestID: context.requestID
                    )
                }
                return json("{\"status\":\"ready\"}")
            } catch {
                return GatewayErrors.response(
                    status: .serviceUnavailable,
                    code: "not_ready",
                    message: "the store or the audit log is not available",
                    requestID: context.requestID
                )
            }
        case "/metrics":
            // Events per batch shows how well the audit log's group commit works under load;
            // failed archives are what an alert on retention watches.
            let written = tutela.audit.writeCounts
            let archived = tutela.audit.archiveCounts
            var text = metrics.render()
            text += "# TYPE tutela_audit_batches_total counter\ntutela_audit_batches_total \(written.batches)\n"
            text += "# TYPE tutela_audit_events_total counter\ntutela_audit_events_total \(written.events)\n"
            text += "# TYPE tutela_audit_archived_entries_total counter\n"
            text += "tutela_audit_archived_entries_total \(archived.entries)\n"
            text += "# TYPE tutela_audit_archive_failures_total counter\n"
            text += "tutela_audit_archive_failures_total \(archived.failures)\n"
            text += "# TYPE tutela_audit_write_failures_total counter\n"
            text += "tutela_audit_write_failures_total \(tutela.audit.failedWrites)\n"
            // Requests wait for their batch's commit: slow commits at low load point at the disk.
            let commits = tutela.audit.commitTimes
            text += "# TYPE tutela_audit_commit_duration_seconds histogram\n"
            GatewayMetrics.renderHistogram(
                "tutela_audit_commit_duration_seconds",
                bounds: AuditCommitTimes.bounds,
                counts: commits.counts,
                sum: commits.seconds,
                into: &text
            )
            var response = Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
            response.headers[.contentType] = "text/plain; version=0.0.4"
            return response
        default:
            var response = Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: openAPIDocument)))
            response.headers[.contentType] = "application/yaml"
            return response
        }
    }

    private func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        json(ByteBuffer(string: text), status: status)
    }

    private func json(_ writer: JSONWriter, status: HTTPResponse.Status = .ok) -> Response {
        json(ByteBuffer(bytes: writer.bytes), status: status)
    }

    private func json(_ buffer: ByteBuffer, status: HTTPResponse.Status) -> Response {
        var response = Response(status: status, body: ResponseBody(byteBuffer: buffer))
        response.headers[.contentType] = "application/json"
        return response
    }
}

/// Hands pages of an export from the task that reads them to the response that writes them.
///
/// At most `capacity` pages wait: a reader that gets that far ahead of a slow client is suspended
/// until a page is written, so that an export holds a few pages in memory whatever the client's
/// pace (it held the whole collection for a client that read slowly or not at all).
final class PageChannel: Sendable {
    private struct State {
        var pages: [String] = []
        var finished = false
        var failure: (any Error)?
        // The response has ended (written whole, failed or cut off): pages are no longer taken.
        var closed = false
        var consumer: CheckedContinuation<Void, Never>?
        var producer: CheckedContinuation<Void, Never>?
    }

    private enum SendStep {
        case sent(CheckedContinuation<Void, Never>?)
        case dropped
        case wait
    }

    private let capacity: Int
    private let state = Mutex(State())

    /// Creates a channel holding at most `capacity` waiting pages.
    init(capacity: Int = 2) {
        self.capacity = max(1, capacity)
    }

    /// Adds a page, first waiting while `capacity` pages wait already; one producer at a time.
    /// - Returns: false when the response has ended and the page was dropped.
    func send(_ text: String) async -> Bool {
        while true {
            let step = state.withLock { state -> SendStep in
                if state.closed { return .dropped }
                guard state.pages.count < capacity else { return .wait }
                state.pages.append(text)
                defer { state.consumer = nil }
                return .sent(state.consumer)
            }
            switch step {
            case .sent(let consumer):
                consumer?.resume()
                return true
            case .dropped:
                return false
            case .wait:
                // Room may have been made, or the response ended, since the check above.
                await state.suspend(
                    unless: { $0.closed || $0.pages.count < capacity },
                    park: { state, producer in state.producer = producer }
                )
            }
        }
    }

    /// Ends the pages, with the producer's error if it failed.
    func finish(_ error: (any Error)?) {
        let consumer = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            state.failure = error
            defer { state.consumer = nil }
            return state.consumer
        }
        consumer?.resume()
    }

    /// Ends the response's side: a producer waiting for room is released, and its later pages
    /// are dropped.
    func close() {
        let producer = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.closed = true
            state.pages = []
            defer { state.producer = nil }
            return state.producer
        }
        producer?.resume()
    }

    /// The next page; nil after the last.
    /// - Throws: the producer's error, once the pages sent before it are taken.
    func next() async throws -> String? {
        while true {
            let (page, done, failure, producer) = state.withLock {
                state -> (String?, Bool, (any Error)?, CheckedContinuation<Void, Never>?) in
                if !state.pages.isEmpty {
                    defer { state.producer = nil }
                    return (state.pages.removeFirst(), false, nil, state.producer)
                }
                return (nil, state.finished, state.failure, nil)
            }
            producer?.resume()
            if let page { return page }
            if let failure { throw failure }
            if done { return nil }
            await state.suspend(
                unless: { !$0.pages.isEmpty || $0.finished },
                park: { state, consumer in state.consumer = consumer }
            )
        }
    }
}

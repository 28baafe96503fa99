import Audit
import Foundation
import Governance
import HTTPTypes
import Hummingbird
import KeyManagement
import NIOCore
import Policy
import Store
import TutelaCore

/// Maps errors to JSON error responses.
///
/// The body is `{"error": {"code", "message", "request_id"}}`. Only Tutela's own errors, whose
/// messages carry no customer data, are shown; anything else becomes a 500 with no internals.
enum GatewayErrors {
    static func response(for error: any Error, requestID: String) -> Response {
        if let error = error as? GatewayRejection {
            var response = Self.response(
                status: error.status,
                code: error.code,
                message: error.message,
                requestID: requestID
            )
            if let retryAfter = error.retryAfter { response.headers[.retryAfter] = String(retryAfter) }
            return response
        }
        if let error = error as? TutelaError {
            var response = response(
                status: status(of: error.code),
                code: error.code.rawValue,
                message: error.message,
                requestID: requestID
            )
            // A 401 names the scheme that would be accepted (RFC 9110 section 11.6.1), and says
            // when the key presented was the problem (RFC 6750 section 3).
            switch error.code {
            case .missingCredentials: response.headers[.wwwAuthenticate] = "Bearer realm=\"tutela\""
            case .invalidCredentials:
                response.headers[.wwwAuthenticate] = "Bearer realm=\"tutela\", error=\"invalid_token\""
            default: break
            }
            return response
        }
        if let error = error as? HTTPError {
            return response(
                status: error.status,
                code: "http_\(error.status.code)",
                message: error.status.reasonPhrase,
                requestID: requestID
            )
        }
        return response(
            status: .internalServerError,
            code: "internal_error",
            message: "internal error",
            requestID: requestID
        )
    }

    /// The code an error is answered with, as the error body names it.
    static func code(of error: any Error) -> String {
        switch error {
        case let error as GatewayRejection: return error.code
        case let error as TutelaError: return error.code.rawValue
        case let error as HTTPError: return "http_\(error.status.code)"
        default: return "internal_error"
        }
    }

    static func status(of code: TutelaError.Code) -> HTTPResponse.Status {
        switch code {
        case .missingCredentials, .invalidCredentials: return .unauthorized
        case .denied: return .forbidden
        case .notFound: return .notFound
        case .subjectErased: return .gone
        case .invalidInput, .configurationInvalid: return .badRequest
        case .conflict, .alreadyExists: return .conflict
        case .auditUnavailable: return .serviceUnavailable
        default: return .internalServerError
        }
    }

    static func response(status: HTTPResponse.Status, code: String, message: String, requestID: String) -> Response {
        var body = "{\"error\":{\"code\":"
        JSONText.appendString(code, to: &body)
        body += ",\"message\":"
        JSONText.appendString(
            status == .internalServerError && code != "internal_error" ? "internal error" : message,
            to: &body
        )
        body += ",\"request_id\":"
        JSONText.appendString(requestID, to: &body)
        body += "}}"
        var response = Response(status: status, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
        response.headers[.contentType] = "application/json"
        return response
    }
}

/// A request turned away by the gateway itself (limits, missing purpose).
struct GatewayRejection: Error {
    let status: HTTPResponse.Status
    let code: String
    let message: String
    var retryAfter: Int?
}

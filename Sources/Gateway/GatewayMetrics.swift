import Synchronization

/// Request counts by route and status, latency histograms and decisions by outcome, rendered in
/// the Prometheus text format.
///
/// Labels are route templates, never concrete ids.
final class GatewayMetrics: Sendable {
    static let buckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

    private struct State {
        var requests: [String: Int] = [:]
        var histograms: [String: [Int]] = [:]
        var sums: [String: Double] = [:]
        var decisions: [String: Int] = [:]
    }

    private let state = Mutex(State())

    func record(route: String, method: String, status: Int, seconds: Double) {
        state.withLock { state in
            state.requests["route=\"\(route)\",method=\"\(method)\",status=\"\(status)\"", default: 0] += 1
            let key = "route=\"\(route)\""
            var counts = state.histograms[key] ?? Array(repeating: 0, count: Self.buckets.count + 1)
            let index = Self.buckets.firstIndex { seconds <= $0 } ?? Self.buckets.count
            counts[index] += 1
            state.histograms[key] = counts
            state.sums[key, default: 0] += seconds
            if route.hasPrefix("/v1/") {
                let outcome =
                    status == 403 ? "deny" : (status == 401 ? "unauthenticated" : (status < 400 ? "allow" : "error"))
                state.decisions["outcome=\"\(outcome)\"", default: 0] += 1
            }
        }
    }

    func render() -> String {
        state.withLock { state in
            var text = "# TYPE tutela_http_requests_total counter\n"
            for (labels, count) in state.requests.sorted(by: { $0.key < $1.key }) {
                text += "tutela_http_requests_total{\(labels)} \(count)\n"
            }
            text += "# TYPE tutela_http_request_duration_seconds histogram\n"
            for (labels, counts) in state.histograms.sorted(by: { $0.key < $1.key }) {
                var cumulative = 0
                for (index, bound) in Self.buckets.enumerated() {
                    cumulative += counts[index]
                    text += "tutela_http_request_duration_seconds_bucket{\(labels),le=\"\(bound)\"} \(cumulative)\n"
                }
                cumulative += counts[Self.buckets.count]
                text += "tutela_http_request_duration_seconds_bucket{\(labels),le=\"+Inf\"} \(cumulative)\n"
                text += "tutela_http_request_duration_seconds_sum{\(labels)} \(state.sums[labels] ?? 0)\n"
                text += "tutela_http_request_duration_seconds_count{\(labels)} \(cumulative)\n"
            }
            text += "# TYPE tutela_policy_decisions_total counter\n"
            for (labels, count) in state.decisions.sorted(by: { $0.key < $1.key }) {
                text += "tutela_policy_decisions_total{\(labels)} \(count)\n"
            }
            return text
        }
    }
}

import Synchronization

/// Request counts by route and status, latency histograms and decisions by outcome, rendered in
/// the Prometheus text format.
///
/// Labels are route templates, never concrete ids.
final class GatewayMetrics: Sendable {
    static let buckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

    /// One request counter's labels, kept as values: the label text is made only when rendered.
    private struct RequestKey: Hashable {
        var route: String
        var method: String
        var status: Int

        var labels: String { "route=\"\(route)\",method=\"\(method)\",status=\"\(status)\"" }
    }

    private struct Histogram {
        var counts = [Int](repeating: 0, count: GatewayMetrics.buckets.count + 1)
        var sum = 0.0

        mutating func record(bucket: Int, seconds: Double) {
            counts[bucket] += 1
            sum += seconds
        }
    }

    private struct State {
        var requests: [RequestKey: Int] = [:]
        /// By route template.
        var histograms: [String: Histogram] = [:]
        /// By outcome.
        var decisions: [String: Int] = [:]
    }

    private let state = Mutex(State())

    /// Counts one answered request; called for every request, so it builds no label text and
    /// updates the histogram in place.
    func record(route: String, method: String, status: Int, seconds: Double) {
        let index = Self.buckets.firstIndex { seconds <= $0 } ?? Self.buckets.count
        let outcome: String? =
            route.hasPrefix("/v1/")
            ? (status == 403 ? "deny" : (status == 401 ? "unauthenticated" : (status < 400 ? "allow" : "error")))
            : nil
        state.withLock { state in
            state.requests[RequestKey(route: route, method: method, status: status), default: 0] += 1
            state.histograms[route, default: Histogram()].record(bucket: index, seconds: seconds)
            if let outcome { state.decisions[outcome, default: 0] += 1 }
        }
    }

    /// Appends a histogram's bucket, sum and count lines: `counts` has one count per bound and a
    /// last one for the values above them all.
    static func renderHistogram(
        _ name: String,
        labels: String = "",
        bounds: [Double],
        counts: [Int],
        sum: Double,
        into text: inout String
    ) {
        let prefix = labels.isEmpty ? "" : labels + ","
        var cumulative = 0
        for (index, bound) in bounds.enumerated() {
            cumulative += counts[index]
            text += "\(name)_bucket{\(prefix)le=\"\(bound)\"} \(cumulative)\n"
        }
        cumulative += counts[bounds.count]
        text += "\(name)_bucket{\(prefix)le=\"+Inf\"} \(cumulative)\n"
        let suffix = labels.isEmpty ? "" : "{\(labels)}"
        text += "\(name)_sum\(suffix) \(sum)\n"
        text += "\(name)_count\(suffix) \(cumulative)\n"
    }

    func render() -> String {
        state.withLock { state in
            var text = "# TYPE tutela_http_requests_total counter\n"
            for (labels, count) in state.requests.map({ ($0.key.labels, $0.value) }).sorted(by: { $0.0 < $1.0 }) {
                text += "tutela_http_requests_total{\(labels)} \(count)\n"
            }
            text += "# TYPE tutela_http_request_duration_seconds histogram\n"
            for (route, histogram) in state.histograms.sorted(by: { $0.key < $1.key }) {
                Self.renderHistogram(
                    "tutela_http_request_duration_seconds",
                    labels: "route=\"\(route)\"",
                    bounds: Self.buckets,
                    counts: histogram.counts,
                    sum: histogram.sum,
                    into: &text
                )
            }
            text += "# TYPE tutela_policy_decisions_total counter\n"
            for (outcome, count) in state.decisions.sorted(by: { $0.key < $1.key }) {
                text += "tutela_policy_decisions_total{outcome=\"\(outcome)\"} \(count)\n"
            }
            return text
        }
    }
}

import Synchronization

/// Token buckets per API key, refilled continuously; one lock for all keys keeps the count exact
/// under concurrency (no drift between check and take).
final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let rate: Double
    private let burst: Double
    private let buckets = Mutex<[String: Bucket]>([:])

    init(requestsPerSecond: Double, burst: Double) {
        self.rate = max(0.001, requestsPerSecond)
        self.burst = max(1, burst)
    }

    /// Takes a token for `key`; when none is left, returns the seconds until one will be.
    func take(_ key: String, now: ContinuousClock.Instant = .now) -> Double? {
        buckets.withLock { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: burst, updated: now)
            // Callers read the clock before they take the lock, so a bucket may be updated to a
            // later time than the next caller's: only time that moved forward refills. (Going
            // back took tokens away, and with a huge rate made the count and the wait NaN.)
            if now > bucket.updated {
                let elapsed = now - bucket.updated
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                bucket.tokens = min(burst, bucket.tokens + seconds * rate)
                bucket.updated = now
            }
            defer { buckets[key] = bucket }
            guard bucket.tokens >= 1 else { return (1 - bucket.tokens) / rate }
            bucket.tokens -= 1
            return nil
        }
    }
}

/// Refused requests (bad or missing credentials, no such route) per client address.
///
/// Each refusal is an audit event, and refusals need no credentials: without a bound, anyone who
/// can reach the port could grow the audit log as fast as the disk takes it. Up to
/// `perSecond` refusals from one address in each second are audited one by one; beyond that the
/// address gets 429 and its further refusals in that second are counted, to be audited as one
/// event when the second ends. Valid requests from the same address are not held back.
final class RefusalLimiter: Sendable {
    private struct Window {
        var start: ContinuousClock.Instant
        var audited = 0
        var limited = 0
    }

    /// What to do with one refusal.
    enum Verdict: Equatable {
        /// Audit it as usual.
        case audit
        /// Answer 429 and count it; `first` is true for the first counted one of its second,
        /// whose caller arranges the event for the count.
        case limit(first: Bool)
    }

    private struct State {
        var windows: [String: Window] = [:]
        var lastSweep = ContinuousClock.now
    }

    let perSecond: Int
    /// How long a window lasts: a second, but for tests that cannot count on sending a burst of
    /// requests within one.
    let window: Duration
    private let state = Mutex(State())
    /// Above this many addresses, windows older than a second are swept, at most once a second
    /// (a sweep on every refusal would cost a pass over them all while many addresses refuse).
    private static let sweepAbove = 4096

    init(perSecond: Int, window: Duration = .seconds(1)) {
        self.perSecond = max(1, perSecond)
        self.window = window
    }

    /// Takes the refusal of a request from `address`.
    func take(_ address: String, now: ContinuousClock.Instant = .now) -> Verdict {
        state.withLock { state in
            if state.windows.count > Self.sweepAbove, now - state.lastSweep >= window {
                // Addresses whose second has ended and whose count was taken are forgotten.
                state.windows = state.windows.filter { now - $0.value.start < window || $0.value.limited > 0 }
                state.lastSweep = now
            }
            var current = state.windows[address] ?? Window(start: now)
            if now - current.start >= window, current.limited == 0 {
                current = Window(start: now)
            }
            defer { state.windows[address] = current }
            guard current.audited >= perSecond else {
                current.audited += 1
                return .audit
            }
            current.limited += 1
            return .limit(first: current.limited == 1)
        }
    }

    /// How many addresses have a window kept.
    var trackedAddresses: Int { state.withLock { $0.windows.count } }

    /// The refusals from `address` counted since its window began, now taken; its next refusal
    /// starts a new window.
    func takeLimited(_ address: String) -> Int {
        state.withLock { state in
            guard let window = state.windows.removeValue(forKey: address) else { return 0 }
            return window.limited
        }
    }
}

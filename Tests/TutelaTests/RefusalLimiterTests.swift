import Testing

@testable import Gateway

@Suite("Refusals per client address")
struct RefusalLimiterTests {
    @Test("an address's share is audited, the rest counted once per second, other addresses apart")
    func share() {
        let limiter = RefusalLimiter(perSecond: 2)
        let start = ContinuousClock.now
        #expect(limiter.take("10.0.0.1", now: start) == .audit)
        #expect(limiter.take("10.0.0.1", now: start) == .audit)
        #expect(limiter.take("10.0.0.1", now: start) == .limit(first: true))
        #expect(limiter.take("10.0.0.1", now: start + .milliseconds(10)) == .limit(first: false))
        #expect(limiter.take("10.0.0.2", now: start) == .audit)
        // Until its count is taken, an address stays limited even past its second.
        #expect(limiter.take("10.0.0.1", now: start + .seconds(2)) == .limit(first: false))
        #expect(limiter.takeLimited("10.0.0.1") == 3)
        #expect(limiter.takeLimited("10.0.0.1") == 0)
        #expect(limiter.take("10.0.0.1", now: start + .seconds(2)) == .audit)
        // A second without a limited refusal simply starts a new share.
        #expect(limiter.take("10.0.0.2", now: start + .seconds(1)) == .audit)
        #expect(limiter.take("10.0.0.2", now: start + .seconds(1)) == .audit)
        #expect(limiter.take("10.0.0.2", now: start + .seconds(1)) == .limit(first: true))
    }

    @Test("sweeping many addresses forgets ended seconds but keeps counts not yet audited")
    func sweep() {
        let limiter = RefusalLimiter(perSecond: 1)
        let start = ContinuousClock.now
        _ = limiter.take("pending", now: start)
        #expect(limiter.take("pending", now: start) == .limit(first: true))
        for number in 0..<5000 { _ = limiter.take("10.1.\(number / 256).\(number % 256)", now: start) }
        // The sweep runs on the next refusal after a second: the pending count survives it.
        #expect(limiter.trackedAddresses == 5001)
        _ = limiter.take("late", now: start + .seconds(2))
        #expect(limiter.trackedAddresses == 2)
        #expect(limiter.takeLimited("pending") == 1)
    }
}

@Suite("Requests per API key")
struct RateLimiterTests {
    @Test("a key's burst is taken at once, then it refills at its rate; keys are apart")
    func bucket() throws {
        let limiter = RateLimiter(requestsPerSecond: 2, burst: 2)
        let start = ContinuousClock.now
        #expect(limiter.take("a", now: start) == nil)
        #expect(limiter.take("a", now: start) == nil)
        let wait = try #require(limiter.take("a", now: start))
        #expect(abs(wait - 0.5) < 1e-9)
        #expect(limiter.take("b", now: start) == nil)
        #expect(limiter.take("a", now: start + .milliseconds(500)) == nil)
        #expect(limiter.take("a", now: start + .milliseconds(500)) != nil)
    }

    @Test("callers whose clock readings arrive out of order are counted alike and never wait a non-number")
    func outOfOrder() throws {
        // A caller reads the clock before it takes the lock: another may update the bucket to
        // a later time first. Going back took tokens away, and with an infinite rate made the
        // count -infinity and the wait NaN, which stopped the server as it made Retry-After.
        let limiter = RateLimiter(requestsPerSecond: 1, burst: 3)
        let start = ContinuousClock.now
        #expect(limiter.take("a", now: start + .seconds(1)) == nil)
        #expect(limiter.take("a", now: start) == nil)
        #expect(limiter.take("a", now: start + .seconds(1)) == nil)
        #expect(try #require(limiter.take("a", now: start + .seconds(1))) == 1)
        for rate in [Double.infinity, .greatestFiniteMagnitude] {
            let limiter = RateLimiter(requestsPerSecond: rate, burst: 1)
            #expect(limiter.take("a", now: start + .seconds(1)) == nil)
            for _ in 0..<3 {
                if let wait = limiter.take("a", now: start) { #expect(wait.isFinite, "\(rate)") }
            }
            #expect(limiter.take("a", now: start + .seconds(2)) == nil, "\(rate)")
        }
    }
}

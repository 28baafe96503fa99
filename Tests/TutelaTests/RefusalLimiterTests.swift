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

/// Waits until `reached` holds (at most `limit`), then a little longer, so that a test can check
/// that a task blocked at that point did not go on: a task that wrongly went on has had time to.
///
/// The extra wait only gives a wrong implementation the chance to show itself; a right one passes
/// however slow the machine.
public func settle(at reached: () -> Bool, within limit: Duration = .seconds(10)) async throws {
    let deadline = ContinuousClock.now + limit
    while !reached(), ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(5))
    }
    try await Task.sleep(for: .milliseconds(100))
}

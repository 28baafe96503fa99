import Foundation
import Synchronization

/// Deadlines for many short operations, kept by one background thread.
///
/// The gateway and the audit log set a deadline on every request and every append. Racing each
/// of them against its own sleeping task costs a timer and two tasks per call on the hot path;
/// here a deadline is one entry in a locked table, removed when the operation ends first, and a
/// single thread fires the expired ones every few milliseconds. A deadline therefore fires up
/// to one tick late, which is nothing next to timeouts of seconds.
public final class Deadlines: Sendable {
    /// The deadlines of the whole process.
    public static let shared = Deadlines(tick: .milliseconds(10))

    private struct Entry {
        var due: ContinuousClock.Instant
        var fire: @Sendable () -> Void
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var nextID: UInt64 = 0
        var started = false
    }

    private let state = Mutex(State())
    private let tick: Duration

    /// A table whose thread looks for expired deadlines every `tick`.
    public init(tick: Duration) {
        self.tick = tick
    }

    /// Registers `fire` to run once `timeout` from now, unless cancelled before.
    /// - Returns: the token that cancels it.
    public func schedule(after timeout: Duration, _ fire: @escaping @Sendable () -> Void) -> UInt64 {
        let due = ContinuousClock.now + timeout
        let (id, start) = state.withLock { state -> (UInt64, Bool) in
            state.nextID &+= 1
            state.entries[state.nextID] = Entry(due: due, fire: fire)
            defer { state.started = true }
            return (state.nextID, !state.started)
        }
        if start { startThread() }
        return id
    }

    /// Removes a deadline.
    /// - Returns: true when it had not fired yet.
    @discardableResult
    public func cancel(_ id: UInt64) -> Bool {
        state.withLock { $0.entries.removeValue(forKey: id) != nil }
    }

    /// Runs `body` in the current task and cancels that task when `timeout` passes first.
    ///
    /// Cancellation is cooperative: the body sees it at its next suspension point or check.
    /// - Returns: the body's result, also when the deadline fired as it finished.
    /// - Throws: `DeadlineExpired` when the body failed after its deadline fired, else its error.
    public func withCancellation<T>(
        after timeout: Duration,
        _ body: () async throws -> T
    ) async throws -> T {
        // `alive` turns false under the same lock that `fire` takes before it cancels, and
        // before this scope ends, so the task is running whenever it is cancelled through
        // the handle.
        let guarded = Mutex((alive: true, expired: false))
        let id = withUnsafeCurrentTask { task -> UInt64? in
            guard let task else { return nil }
            nonisolated(unsafe) let handle = task
            return schedule(after: timeout) {
                guarded.withLock { state in
                    guard state.alive else { return }
                    state.expired = true
                    handle.cancel()
                }
            }
        }
        let finish = { () -> Bool in
            if let id { self.cancel(id) }
            return guarded.withLock { state in
                state.alive = false
                return state.expired
            }
        }
        let result: T
        do {
            result = try await body()
        } catch {
            if finish() { throw DeadlineExpired() }
            throw error
        }
        _ = finish()
        return result
    }

    private func startThread() {
        let seconds = Double(tick.components.seconds) + Double(tick.components.attoseconds) / 1e18
        let thread = Thread { [self] in
            while true {
                Thread.sleep(forTimeInterval: seconds)
                sweep()
            }
        }
        thread.name = "tutela.deadlines"
        thread.start()
    }

    private func sweep() {
        let now = ContinuousClock.now
        let expired = state.withLock { state -> [Entry] in
            guard !state.entries.isEmpty else { return [] }
            var expired: [Entry] = []
            for (id, entry) in state.entries where entry.due <= now {
                state.entries.removeValue(forKey: id)
                expired.append(entry)
            }
            return expired
        }
        // Outside the table's lock: a fired deadline may cancel a task whose cancellation
        // handlers schedule or cancel deadlines themselves.
        for entry in expired { entry.fire() }
    }
}

/// The error an operation ends with when its deadline cancelled it.
public struct DeadlineExpired: Error, Sendable {
    /// Creates the error.
    public init() {}
}

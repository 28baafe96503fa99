import Synchronization

extension Mutex {
    /// Suspends the calling task until another resumes it, unless there is nothing to wait for.
    ///
    /// Under the lock, `ready` looks at the state: true resumes at once; otherwise `park` stores
    /// the continuation in the state, under the same lock, for whoever changes the state to
    /// resume. Checking and parking under one lock is what keeps a wake-up from being lost
    /// between them.
    package func suspend(
        unless ready: (inout Value) -> Bool,
        park: (inout Value, CheckedContinuation<Void, Never>) -> Void
    ) async {
        await withCheckedContinuation { continuation in
            let resumeNow = withLock { state -> Bool in
                if ready(&state) { return true }
                park(&state, continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}

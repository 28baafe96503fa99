import Synchronization
import TutelaCore

/// Data keys unwrapped recently, by subject, so that reading a subject's records again skips
/// the unwrap and the key setup (together about a tenth of an encrypted read).
///
/// An entry found by its wrapped key serves only the exact wrapped key it was unwrapped from:
/// an erased subject (no wrapped key left) or a re-wrapped one (other bytes) never reaches a
/// stale entry. A reader that has found one of the subject's records may take the entry by
/// subject alone (`key(subject:)`): a record exists only while its subject's data key does, since
/// erasure removes both in one transaction, and re-wrapping leaves the data key as it was. A
/// keyring changed by rotation, disabling or destruction comes with a new cipher and an empty
/// cache, so those take effect at once, here and in every other process. An entry also expires
/// after `maxAge`, so that a clear key does not stay in memory long after its subject was erased
/// elsewhere. When the cache is full, entries not used lately give way (`ClockTable`). A dropped
/// key's bytes are zeroed when its last user lets go.
final class DataKeyCache: Sendable {
    // A class: a hit copies one reference out of the table, not every field.
    private final class Entry: Sendable {
        let wrapped: WrappedDataKey
        let key: DataKey
        let expires: ContinuousClock.Instant

        init(wrapped: WrappedDataKey, key: DataKey, expires: ContinuousClock.Instant) {
            self.wrapped = wrapped
            self.key = key
            self.expires = expires
        }
    }

    /// The most entries kept.
    let capacity: Int
    /// How long an entry is used after its unwrap.
    let maxAge: Duration
    private let table: Mutex<ClockTable<String, Entry>>

    /// Creates a cache; a capacity of 0 keeps nothing.
    init(capacity: Int, maxAge: Duration) {
        self.capacity = max(0, capacity)
        self.maxAge = maxAge
        table = Mutex(ClockTable(capacity: capacity))
    }

    /// The number of entries held, expired ones included.
    var count: Int { table.withLock { $0.count } }

    /// The key unwrapped from `wrapped` for `subject`, if it is held and fresh.
    func key(subject: String, wrapped: WrappedDataKey) -> DataKey? {
        key(subject: subject, matching: wrapped)
    }

    /// The key held for `subject`, if it is fresh, whatever it was unwrapped from (see above for
    /// when that is safe).
    func key(subject: String) -> DataKey? {
        key(subject: subject, matching: nil)
    }

    private func key(subject: String, matching wrapped: WrappedDataKey?) -> DataKey? {
        guard capacity > 0 else { return nil }
        let now = ContinuousClock.now
        // An expired entry is dropped outside the lock: freeing a key cleanses OpenSSL state.
        var dropped: Entry?
        let key = table.withLock { table -> DataKey? in
            guard let entry = table.value(for: subject) else { return nil }
            guard entry.expires > now else {
                dropped = table.removeValue(for: subject)
                return nil
            }
            if let wrapped, entry.wrapped != wrapped { return nil }
            return entry.key
        }
        _ = dropped
        return key
    }

    /// Keeps `key`, unwrapped from `wrapped`, for `subject`, replacing what was held for it.
    func insert(subject: String, wrapped: WrappedDataKey, key: DataKey) {
        guard capacity > 0 else { return }
        let entry = Entry(wrapped: wrapped, key: key, expires: .now + maxAge)
        let dropped = table.withLock { $0.insert(entry, for: subject) }
        _ = dropped
    }

    /// Drops the key held for `subject`, if any.
    func remove(subject: String) {
        let dropped = table.withLock { $0.removeValue(for: subject) }
        _ = dropped
    }
}

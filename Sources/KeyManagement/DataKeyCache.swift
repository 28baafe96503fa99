import Synchronization

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
/// elsewhere. When the cache is full the
/// least recently used entries give way (the CLOCK approximation: one bit per entry, no list to
/// reorder on a hit). A dropped key's bytes are zeroed when its last user lets go.
final class DataKeyCache: Sendable {
    // A class: a hit copies one reference out of the table, not every field. Its one variable
    // is only read and written under the table's lock.
    private final class Entry: @unchecked Sendable {
        let subject: String
        let wrapped: WrappedDataKey
        let key: DataKey
        let expires: ContinuousClock.Instant
        // Set on a hit, cleared by the sweep; only touched under the lock.
        var used = false

        init(subject: String, wrapped: WrappedDataKey, key: DataKey, expires: ContinuousClock.Instant) {
            self.subject = subject
            self.wrapped = wrapped
            self.key = key
            self.expires = expires
        }
    }

    private struct Slots {
        var entries: [Entry?] = []
        var bySubject: [String: Int] = [:]
        var free: [Int] = []
        var hand = 0
    }

    /// The most entries kept.
    let capacity: Int
    /// How long an entry is used after its unwrap.
    let maxAge: Duration
    private let slots = Mutex(Slots())

    /// Creates a cache; a capacity of 0 keeps nothing.
    init(capacity: Int, maxAge: Duration) {
        self.capacity = max(0, capacity)
        self.maxAge = maxAge
    }

    /// The number of entries held, expired ones included.
    var count: Int { slots.withLock { $0.bySubject.count } }

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
        let key = slots.withLock { slots -> DataKey? in
            guard let slot = slots.bySubject[subject], let entry = slots.entries[slot] else { return nil }
            guard entry.expires > now else {
                dropped = Self.remove(slot, from: &slots)
                return nil
            }
            if let wrapped, entry.wrapped != wrapped { return nil }
            entry.used = true
            return entry.key
        }
        _ = dropped
        return key
    }

    /// Keeps `key`, unwrapped from `wrapped`, for `subject`, replacing what was held for it.
    func insert(subject: String, wrapped: WrappedDataKey, key: DataKey) {
        guard capacity > 0 else { return }
        let entry = Entry(subject: subject, wrapped: wrapped, key: key, expires: .now + maxAge)
        var dropped: Entry?
        slots.withLock { slots in
            if let slot = slots.bySubject[subject] {
                dropped = slots.entries[slot]
                slots.entries[slot] = entry
                return
            }
            let slot: Int
            if let free = slots.free.popLast() {
                slot = free
                slots.entries[slot] = entry
            } else if slots.entries.count < capacity {
                slot = slots.entries.count
                slots.entries.append(entry)
            } else {
                // Sweep: an entry used since the hand last passed gets another round.
                while let entry = slots.entries[slots.hand], entry.used {
                    entry.used = false
                    slots.hand = (slots.hand + 1) % capacity
                }
                slot = slots.hand
                slots.hand = (slots.hand + 1) % capacity
                if let old = slots.entries[slot] {
                    slots.bySubject[old.subject] = nil
                    dropped = old
                }
                slots.entries[slot] = entry
            }
            slots.bySubject[subject] = slot
        }
        _ = dropped
    }

    /// Drops the key held for `subject`, if any.
    func remove(subject: String) {
        let dropped = slots.withLock { slots -> Entry? in
            guard let slot = slots.bySubject[subject] else { return nil }
            return Self.remove(slot, from: &slots)
        }
        _ = dropped
    }

    private static func remove(_ slot: Int, from slots: inout Slots) -> Entry? {
        guard let entry = slots.entries[slot] else { return nil }
        slots.entries[slot] = nil
        slots.bySubject[entry.subject] = nil
        slots.free.append(slot)
        return entry
    }
}

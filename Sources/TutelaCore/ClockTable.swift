/// At most `capacity` values by key; when full, an insert displaces a value not used lately.
///
/// "Not used lately" is the CLOCK approximation of least recently used: each slot has one bit,
/// set when its value is found and cleared as the sweeping hand passes it, so a hit reorders
/// nothing. The table is a value without a lock of its own: its owner keeps it under one, and
/// lets the values it gets back (displaced, removed) go after leaving the lock when dropping
/// them costs something.
///
/// Its methods are inlinable, so that each cache's use of it is compiled for its own key and
/// value types rather than called through the generic code on every hit.
public struct ClockTable<Key: Hashable, Value> {
    @usableFromInline
    struct Slot {
        @usableFromInline
        let key: Key
        @usableFromInline
        var value: Value
        @usableFromInline
        var used = false

        @inlinable
        init(key: Key, value: Value) {
            self.key = key
            self.value = value
        }
    }

    /// The most values held; 0 holds none.
    public let capacity: Int
    @usableFromInline var slots: [Slot?] = []
    @usableFromInline var slotOfKey: [Key: Int] = [:]
    @usableFromInline var free: [Int] = []
    @usableFromInline var hand = 0

    /// An empty table holding at most `capacity` values.
    @inlinable
    public init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    /// The number of values held.
    @inlinable
    public var count: Int { slotOfKey.count }

    /// The value held for `key`, marked as used.
    @inlinable
    public mutating func value(for key: Key) -> Value? {
        guard let slot = slotOfKey[key] else { return nil }
        slots[slot]?.used = true
        return slots[slot]?.value
    }

    /// Holds `value` for `key`.
    /// - Returns: the value it displaced: the one held for `key` before, or, in a full table,
    ///   the one that gave way; nil when it displaced none (and when the capacity is 0).
    @inlinable @discardableResult
    public mutating func insert(_ value: Value, for key: Key) -> Value? {
        guard capacity > 0 else { return nil }
        if let slot = slotOfKey[key] {
            defer { slots[slot]?.value = value }
            return slots[slot]?.value
        }
        var displaced: Value?
        let slot: Int
        if let reused = free.popLast() {
            slot = reused
        } else if slots.count < capacity {
            slot = slots.count
            slots.append(nil)
        } else {
            // A value used since the hand last passed gets another round.
            while slots[hand]?.used == true {
                slots[hand]?.used = false
                hand = (hand + 1) % capacity
            }
            slot = hand
            hand = (hand + 1) % capacity
            if let old = slots[slot] {
                slotOfKey[old.key] = nil
                displaced = old.value
            }
        }
        slots[slot] = Slot(key: key, value: value)
        slotOfKey[key] = slot
        return displaced
    }

    /// Removes the value held for `key`.
    /// - Returns: the value removed, if any.
    @inlinable @discardableResult
    public mutating func removeValue(for key: Key) -> Value? {
        guard let slot = slotOfKey.removeValue(forKey: key) else { return nil }
        defer {
            slots[slot] = nil
            free.append(slot)
        }
        return slots[slot]?.value
    }
}

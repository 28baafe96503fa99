import Dispatch
import Synchronization

/// Hands items from asynchronous producers to one thread that waits for them by blocking.
///
/// A database writer runs a transaction as one synchronous closure on its own thread (not one of
/// Swift's cooperative threads, so blocking it starves no task). To write batches in one
/// transaction while later batches are still being sealed, that closure takes each batch from
/// here as it arrives.
final class BlockingHandoff<Item: Sendable>: Sendable {
    private struct State {
        var items: [Item] = []
        var head = 0
        var end: Result<Void, any Error>?
        var consumerGone = false
    }

    private let state = Mutex(State())
    // One signal per item sent and one for the end.
    private let signals = DispatchSemaphore(value: 0)

    init() {}

    /// Adds an item for the consumer.
    /// - Returns: false when the consumer has gone and the item was dropped.
    @discardableResult
    func send(_ item: Item) -> Bool {
        let accepted = state.withLock { state -> Bool in
            guard !state.consumerGone, state.end == nil else { return false }
            state.items.append(item)
            return true
        }
        if accepted { signals.signal() }
        return accepted
    }

    /// Ends the sequence, with an error when the producer failed; later sends are dropped.
    func finish(throwing error: (any Error)? = nil) {
        let first = state.withLock { state -> Bool in
            guard state.end == nil else { return false }
            state.end = error.map { .failure($0) } ?? .success(())
            return true
        }
        if first { signals.signal() }
    }

    /// Waits for the next item; nil at the end.
    /// - Throws: the error the producer finished with, once the items sent before it are taken.
    func next() throws -> Item? {
        signals.wait()
        return try state.withLock { state -> Item? in
            if state.head < state.items.count {
                let item = state.items[state.head]
                state.head += 1
                if state.head == state.items.count {
                    state.items.removeAll(keepingCapacity: true)
                    state.head = 0
                }
                return item
            }
            guard let end = state.end else { return nil }
            try end.get()
            return nil
        }
    }

    /// Marks the consumer gone: items sent from now on are dropped.
    func close() {
        state.withLock { state in
            state.consumerGone = true
            state.items.removeAll()
            state.head = 0
        }
    }
}

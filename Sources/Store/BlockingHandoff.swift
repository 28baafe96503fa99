import Dispatch
import Synchronization
import TutelaCore

/// Hands items from an asynchronous producer to one thread that waits for them by blocking.
///
/// A database writer runs a transaction as one synchronous closure on its own thread (not one of
/// Swift's cooperative threads, so blocking it starves no task). To write batches in one
/// transaction while later batches are still being sealed, that closure takes each batch from
/// here as it arrives. At most `capacity` items wait at a time: a producer that gets that far
/// ahead is suspended until the consumer takes one, so sealed batches never pile up in memory.
final class BlockingHandoff<Item: Sendable>: Sendable {
    private struct State {
        var items: [Item] = []
        var head = 0
        var end: Result<Void, any Error>?
        var consumerGone = false
        // A producer suspended until there is room (or the consumer has gone).
        var waitingProducer: CheckedContinuation<Void, Never>?

        var waiting: Int { items.count - head }
    }

    private enum SendStep { case sent, dropped, wait }

    private let capacity: Int
    private let state = Mutex(State())
    // One signal per item sent and one for the end.
    private let signals = DispatchSemaphore(value: 0)

    /// Creates a handoff holding at most `capacity` waiting items.
    init(capacity: Int = 2) {
        self.capacity = max(1, capacity)
    }

    /// Adds an item for the consumer, waiting first while `capacity` items wait already.
    ///
    /// One producer at a time.
    /// - Returns: false when the consumer has gone and the item was dropped.
    @discardableResult
    func send(_ item: Item) async -> Bool {
        while true {
            let step = state.withLock { state -> SendStep in
                guard !state.consumerGone, state.end == nil else { return .dropped }
                guard state.waiting < capacity else { return .wait }
                state.items.append(item)
                return .sent
            }
            switch step {
            case .sent:
                signals.signal()
                return true
            case .dropped:
                return false
            case .wait:
                // Room may have been made, or the consumer gone, since the check above.
                await state.suspend(
                    unless: { $0.consumerGone || $0.waiting < capacity },
                    park: { state, producer in state.waitingProducer = producer }
                )
            }
        }
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
        let (item, producer) = try state.withLock { state -> (Item?, CheckedContinuation<Void, Never>?) in
            if state.head < state.items.count {
                let item = state.items[state.head]
                state.head += 1
                if state.head == state.items.count {
                    state.items.removeAll(keepingCapacity: true)
                    state.head = 0
                }
                let producer = state.waitingProducer
                state.waitingProducer = nil
                return (item, producer)
            }
            guard let end = state.end else { return (nil, nil) }
            try end.get()
            return (nil, nil)
        }
        producer?.resume()
        return item
    }

    /// Marks the consumer gone: items waiting are dropped, a waiting producer resumes, and
    /// items sent from now on are dropped.
    func close() {
        let producer = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.consumerGone = true
            state.items.removeAll()
            state.head = 0
            let producer = state.waitingProducer
            state.waitingProducer = nil
            return producer
        }
        producer?.resume()
    }
}

import Foundation
import Synchronization
import Testing
import TutelaCore
import TutelaTestSupport

@testable import Store

@Suite("Blocking handoff between sealing tasks and the database writer")
struct BlockingHandoffTests {
    /// Takes every item on a thread of its own, as the database writer does.
    private func drain(_ handoff: BlockingHandoff<Int>) async -> Result<[Int], any Error> {
        await withCheckedContinuation { continuation in
            Thread {
                var taken: [Int] = []
                do {
                    while let item = try handoff.next() { taken.append(item) }
                    continuation.resume(returning: .success(taken))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }.start()
        }
    }

    @Test("items sent from a task reach the blocked consumer in order, then the end")
    func order() async throws {
        let handoff = BlockingHandoff<Int>(capacity: 3)
        Task {
            for item in 0..<1000 { await handoff.send(item) }
            handoff.finish()
        }
        let taken = try await drain(handoff).get()
        #expect(taken == Array(0..<1000))
    }

    @Test("a producer that gets capacity items ahead waits until the consumer takes one")
    func backpressure() async throws {
        let handoff = BlockingHandoff<Int>(capacity: 2)
        let sent = Atomic<Int>(0)
        let producer = Task {
            for item in 0..<3 {
                await handoff.send(item)
                sent.add(1, ordering: .relaxed)
            }
        }
        // Wait until it has sent two, then give it time to (wrongly) send the third.
        try await settle(at: { sent.load(ordering: .relaxed) >= 2 })
        #expect(sent.load(ordering: .relaxed) == 2)
        #expect(try handoff.next() == 0)
        await producer.value
        #expect(sent.load(ordering: .relaxed) == 3)
        #expect(try handoff.next() == 1)
        #expect(try handoff.next() == 2)
    }

    @Test("a producer's error reaches the consumer after the items sent before it; later sends are dropped")
    func failure() async throws {
        let handoff = BlockingHandoff<Int>(capacity: 4)
        await handoff.send(1)
        await handoff.send(2)
        handoff.finish(throwing: TutelaError(.invalidInput, "sealing failed"))
        #expect(await !handoff.send(3))
        handoff.finish()
        var taken: [Int] = []
        let error = #expect(throws: TutelaError.self) {
            while let item = try handoff.next() { taken.append(item) }
        }
        #expect(taken == [1, 2])
        #expect(error?.message == "sealing failed")
    }

    @Test("once the consumer has gone, a waiting producer resumes and sends are refused")
    func consumerGone() async throws {
        let handoff = BlockingHandoff<Int>(capacity: 1)
        #expect(await handoff.send(1))
        let blocked = Task { await handoff.send(2) }
        // Closed whether the second send is waiting yet or not: either way it is refused.
        try await Task.sleep(for: .milliseconds(50))
        handoff.close()
        #expect(await blocked.value == false)
        #expect(await !handoff.send(3))
    }
}

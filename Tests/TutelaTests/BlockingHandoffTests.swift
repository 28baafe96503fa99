import Foundation
import Testing
import TutelaCore

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
        let handoff = BlockingHandoff<Int>()
        Task {
            for item in 0..<1000 {
                handoff.send(item)
                if item % 100 == 0 { await Task.yield() }
            }
            handoff.finish()
        }
        let taken = try await drain(handoff).get()
        #expect(taken == Array(0..<1000))
    }

    @Test("a producer's error reaches the consumer after the items sent before it; later sends are dropped")
    func failure() async throws {
        let handoff = BlockingHandoff<Int>()
        handoff.send(1)
        handoff.send(2)
        handoff.finish(throwing: TutelaError(.invalidInput, "sealing failed"))
        #expect(!handoff.send(3))
        handoff.finish()
        var taken: [Int] = []
        let error = #expect(throws: TutelaError.self) {
            while let item = try handoff.next() { taken.append(item) }
        }
        #expect(taken == [1, 2])
        #expect(error?.message == "sealing failed")
    }

    @Test("once the consumer has gone, sends are refused")
    func consumerGone() {
        let handoff = BlockingHandoff<Int>()
        #expect(handoff.send(1))
        handoff.close()
        #expect(!handoff.send(2))
    }
}

import Foundation
import Synchronization
import Testing
import TutelaCore
import TutelaTestSupport

@testable import Gateway

@Suite("Export pages between the store reader and the HTTP response")
struct PageChannelTests {
    @Test("pages sent by one task arrive in order at the response, then the end")
    func order() async throws {
        let channel = PageChannel(capacity: 2)
        let producer = Task {
            for page in 0..<200 { #expect(await channel.send("page \(page)")) }
            channel.finish(nil)
        }
        var taken: [String] = []
        while let page = try await channel.next() { taken.append(page) }
        await producer.value
        #expect(taken == (0..<200).map { "page \($0)" })
    }

    @Test("a reader that gets capacity pages ahead of the response waits until one is written")
    func backpressure() async throws {
        let channel = PageChannel(capacity: 2)
        let sent = Atomic<Int>(0)
        let producer = Task {
            for page in 0..<3 {
                _ = await channel.send("page \(page)")
                sent.add(1, ordering: .relaxed)
            }
        }
        // Wait until it has sent two, then give it time to (wrongly) send the third.
        try await settle(at: { sent.load(ordering: .relaxed) >= 2 })
        #expect(sent.load(ordering: .relaxed) == 2)
        #expect(try await channel.next() == "page 0")
        await producer.value
        #expect(sent.load(ordering: .relaxed) == 3)
        #expect(try await channel.next() == "page 1")
        #expect(try await channel.next() == "page 2")
    }

    @Test("a reader's error reaches the response after the pages sent before it")
    func failure() async throws {
        let channel = PageChannel(capacity: 4)
        #expect(await channel.send("a"))
        channel.finish(TutelaError(.storage, "the store failed"))
        #expect(try await channel.next() == "a")
        let error = await #expect(throws: TutelaError.self) { _ = try await channel.next() }
        #expect(error?.message == "the store failed")
    }

    @Test("once the response has ended, a waiting reader is released and its pages are refused")
    func responseEnded() async throws {
        let channel = PageChannel(capacity: 1)
        #expect(await channel.send("a"))
        let blocked = Task { await channel.send("b") }
        try await Task.sleep(for: .milliseconds(50))
        channel.close()
        #expect(await blocked.value == false)
        #expect(await channel.send("c") == false)
    }
}

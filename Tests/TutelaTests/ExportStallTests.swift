import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization
import Testing
import TutelaCore

@testable import Gateway

/// A response whose client reads at a given pace: each write takes `pause` (a client that has
/// stopped reading holds a write until the connection goes, here at most `pause`).
private struct PacedWriter: ResponseBodyWriter {
    let pause: Duration
    let written: WriteCount

    mutating func write(_ buffer: ByteBuffer) async throws {
        try await Task.sleep(for: pause)
        written.count.add(1, ordering: .relaxed)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

/// Pages a `PacedWriter` wrote.
private final class WriteCount: Sendable {
    let count = Atomic<Int>(0)
}

@Suite("Exports to clients that stop reading")
struct ExportStallTests {
    private static func pages(_ count: Int) -> PageChannel {
        let channel = PageChannel(capacity: count)
        Task {
            for page in 0..<count { _ = await channel.send("page \(page)\n") }
            channel.finish(nil)
        }
        return channel
    }

    @Test("a page the client takes none of for the stall limit cuts the export off")
    func stalledClient() async throws {
        let written = WriteCount()
        let outcome = await Task {
            var writer: any ResponseBodyWriter = PacedWriter(pause: .seconds(10), written: written)
            do {
                try await GatewayHandlers.writePages(Self.pages(3), to: &writer, stallLimit: .milliseconds(200))
                return "finished"
            } catch is DeadlineExpired {
                return "cut off"
            } catch {
                return "failed: \(error)"
            }
        }.value
        #expect(outcome == "cut off")
        #expect(written.count.load(ordering: .relaxed) == 0)
    }

    @Test("a client that keeps reading gets every page, however long the whole export takes")
    func readingClient() async throws {
        let written = WriteCount()
        try await Task {
            var writer: any ResponseBodyWriter = PacedWriter(pause: .milliseconds(250), written: written)
            // 25 pages of 250 ms: the export outlasts the limit, no single page comes near it
            // (the margin is wide because a sleep stretches on two cores busy with other tests).
            try await GatewayHandlers.writePages(Self.pages(25), to: &writer, stallLimit: .seconds(5))
        }.value
        #expect(written.count.load(ordering: .relaxed) == 25)
    }
}

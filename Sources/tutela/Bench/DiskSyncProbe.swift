import Foundation
import TutelaCore

/// How long the disk under a directory takes to make a small write durable, measured the way
/// an audit commit uses it: a few pages written, then `fdatasync`.
///
/// Every governed request waits for its audit batch's commit, so at low load its latency
/// follows the disk's. The `disk` area runs it on its own; the gateway area runs it right after
/// its half-load run, in the server's data directory, so that a reader of
/// `governed_half_load_p99_ms` can tell whether the disk was calm.
struct DiskSyncProbe {
    /// Sync times in milliseconds, in the order taken.
    private(set) var milliseconds: [Double] = []

    /// Bytes per write: seven pages, what a commit of a few audit events writes.
    static let writeSize = 7 * 4096
    /// Writes go round a region this large, as the log's write-ahead file does between checkpoints.
    static let region = 4 << 20

    /// How long a probe runs unless told otherwise, in seconds.
    static let standardSeconds = 3.0
    /// Syncs a second unless told otherwise: about what a server's audit log does at a few
    /// requests in flight.
    static let standardRate = 500.0

    /// Writes and syncs a scratch file in `directory` about `perSecond` times a second for
    /// `seconds`, on a thread of its own (blocking calls kept off Swift's cooperative pool); the
    /// file is removed at the end.
    static func run(
        in directory: String,
        seconds: Double = standardSeconds,
        perSecond: Double = standardRate
    ) async throws -> Self {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Self, any Error>) in
            let thread = Thread {
                continuation.resume(with: Result { try measure(in: directory, seconds: seconds, perSecond: perSecond) })
            }
            thread.name = "tutela.bench.disk"
            thread.start()
        }
    }

    private static func measure(in directory: String, seconds: Double, perSecond: Double) throws -> Self {
        let path = directory + "/disk-probe-\(UUID().uuidString)"
        let descriptor = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw TutelaError(
                .io,
                "the disk probe cannot create a file in \(directory): \(String(cString: strerror(errno)))"
            )
        }
        defer {
            close(descriptor)
            unlink(path)
        }
        let block = [UInt8](repeating: 0x5A, count: writeSize)
        var probe = Self()
        let start = ContinuousClock.now
        var offset = 0
        var done = 0
        while ContinuousClock.now - start < .seconds(seconds) {
            let written = block.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, off_t(offset)) }
            guard written == writeSize else {
                throw TutelaError(.io, "the disk probe could not write: \(String(cString: strerror(errno)))")
            }
            let before = ContinuousClock.now
            guard fdatasync(descriptor) == 0 else {
                throw TutelaError(.io, "the disk probe could not sync: \(String(cString: strerror(errno)))")
            }
            let took = ContinuousClock.now - before
            probe.milliseconds.append(
                Double(took.components.seconds) * 1e3 + Double(took.components.attoseconds) / 1e15
            )
            offset = (offset + writeSize) % region
            done += 1
            // Paced: the next sync starts on its schedule, or at once when behind it.
            let due = start + .seconds(Double(done) / perSecond)
            let wait = ContinuousClock.now.duration(to: due)
            if wait > .zero {
                Thread.sleep(
                    forTimeInterval: Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18
                )
            }
        }
        return probe
    }

    /// The sync time at quantile `q` (0...1), in milliseconds; 0 without samples.
    func quantile(_ q: Double) -> Double {
        guard !milliseconds.isEmpty else { return 0 }
        let sorted = milliseconds.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.down)))]
    }

    /// The slowest sync, in milliseconds.
    var slowest: Double { milliseconds.max() ?? 0 }

    /// How many syncs took longer than `bound` milliseconds.
    func count(over bound: Double) -> Int { milliseconds.count { $0 > bound } }

    /// Records the figures in `area`, each key starting with `prefix`.
    func record(into report: BenchReport, area: String, prefix: String) {
        report.record(area, prefix + "syncs", Double(milliseconds.count))
        report.record(area, prefix + "sync_p50_ms", quantile(0.5))
        report.record(area, prefix + "sync_p99_ms", quantile(0.99))
        report.record(area, prefix + "sync_max_ms", slowest)
        report.record(area, prefix + "syncs_over_10ms", Double(count(over: 10)))
    }
}

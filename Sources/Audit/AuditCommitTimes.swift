/// How long the audit log's batches took to commit, as a histogram of fixed bounds.
///
/// A batch's callers wait for its commit, disk sync included, before they answer; when
/// requests are slow at low load, this tells whether the disk was the cause.
public struct AuditCommitTimes: Sendable, Equatable {
    /// The histogram's upper bounds in seconds, smallest first; a last bucket holds the rest.
    public static let bounds: [Double] = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
    ]

    /// Batches per bucket: `counts[i]` took at most `bounds[i]` and more than the bound before;
    /// the last count is of those above every bound.
    public private(set) var counts = [Int](repeating: 0, count: Self.bounds.count + 1)
    /// Their total time, in seconds.
    public private(set) var seconds = 0.0

    /// No batch yet.
    public init() {}

    /// How many batches there are.
    public var count: Int { counts.reduce(0, +) }

    /// Adds one batch's time.
    mutating func record(_ duration: Duration) {
        let value =
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        counts[Self.bounds.firstIndex { value <= $0 } ?? Self.bounds.count] += 1
        seconds += value
    }

    /// How many batches took longer than `bound`, which must be one of `bounds`; nil for another value.
    public func count(slowerThan bound: Double) -> Int? {
        guard let index = Self.bounds.firstIndex(of: bound) else { return nil }
        return counts[(index + 1)...].reduce(0, +)
    }

    /// The batches recorded since `earlier`, a value of the same log taken before this one.
    public func since(_ earlier: Self) -> Self {
        var difference = self
        for index in counts.indices { difference.counts[index] -= earlier.counts[index] }
        difference.seconds -= earlier.seconds
        return difference
    }
}

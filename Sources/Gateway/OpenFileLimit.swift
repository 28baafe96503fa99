#if canImport(Glibc)
import Glibc
#endif

/// The process's limit on open files, which bounds the gateway's connections.
///
/// Many systems start a process with a soft limit of 1,024 open files under a far higher hard
/// limit; a gateway holding one descriptor per connection, besides its database files, would
/// refuse connections long before the machine runs short. `tutela serve` raises the soft limit
/// to the hard one at start, as a process may without privilege.
public enum OpenFileLimit {
    /// Raises the soft limit to the hard limit (unlimited is all ones, `rlim_t.max`).
    /// - Returns: the soft limit in force afterwards; nil when it is unlimited or cannot be read.
    public static func raiseToHardLimit() -> UInt64? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            // Refused (a hard limit above the kernel's own ceiling): the soft limit stays.
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur == rlim_t.max ? nil : UInt64(limit.rlim_cur)
    }
}

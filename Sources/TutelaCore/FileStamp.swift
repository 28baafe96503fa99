import Foundation

/// What identifies one version of a file: its inode and modification time.
///
/// Files that tell other processes about a change (the keyring, the credentials stamp) are
/// replaced by renaming a new file into place, so a change always shows as a new inode. A
/// request looks at them through a `FileChangeMonitor`, which stats them only after a change.
public struct FileStamp: Sendable, Equatable {
    /// The inode number.
    public var inode: UInt64
    /// Modification time, seconds.
    public var seconds: Int
    /// Modification time, nanoseconds within the second.
    public var nanoseconds: Int
    /// Size in bytes.
    public var size: Int

    /// The stamp of the file at `path`, or nil when it does not exist or cannot be read.
    public static func of(_ path: String) -> FileStamp? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileStamp(
            inode: UInt64(info.st_ino),
            seconds: Int(info.st_mtim.tv_sec),
            nanoseconds: Int(info.st_mtim.tv_nsec),
            size: Int(info.st_size)
        )
    }
}

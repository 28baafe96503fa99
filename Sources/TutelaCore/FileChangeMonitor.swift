import Foundation
import Synchronization

/// Tells whether a few files may have changed since the last look, with one `read` of an
/// inotify queue instead of a `stat` of each file.
///
/// The files that tell a running server about a change made elsewhere (the keyring, the
/// credentials stamp) were compared by `stat` on every request, three calls of about 1.3 µs
/// each; reading an inotify queue that holds nothing costs about 0.45 µs, and tells about every
/// watched file at once. The events are queued by the kernel as the change is made (the rename
/// that puts a new file in place), before the process that made it ends, so a request that
/// starts after the change finds it queued: this is as immediate as the `stat` it replaces.
///
/// Each file's directory is watched for files created, deleted, renamed in or out, closed after
/// writing, or changed in their attributes; any such event counts as a possible change (the
/// caller's `stat` then tells), so a change through a symbolic link swapped in that directory
/// is seen too. A file written in place is seen when its writer closes it. Writes without a
/// close are not watched: they would make every database write of the data directory an event.
/// When a file or its directory is reached through a symbolic link, when inotify is not
/// available, or once a watched directory is itself removed or moved, `generation()` returns
/// nil and callers fall back to `stat`.
public final class FileChangeMonitor: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var broken = false
        /// How many times the queue was read, for tests.
        var reads = 0
    }

    private let descriptor: Int32
    private let state = Mutex(State())

    /// How many times this monitor has read its queue (a pinned scope's answers are not reads).
    var queueReads: Int { state.withLock { $0.reads } }

    private static let directoryMask = UInt32(
        IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF
            | IN_MOVE_SELF
    )
    // Events that end a watch: the directory went away or its file system was unmounted.
    private static let endMask = UInt32(IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)

    /// Watches the directories of `files`; nil when inotify is not available or a path goes
    /// through a symbolic link (the caller then stats every time, as without a monitor).
    public init?(files: [String]) {
        var directories: [String] = []
        for file in files {
            let url = URL(fileURLWithPath: file)
            let directory = url.deletingLastPathComponent().path
            guard Self.isPlain(file: url.path), Self.isReachedDirectly(directory) else { return nil }
            if !directories.contains(directory) { directories.append(directory) }
        }
        let descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard descriptor >= 0 else { return nil }
        for directory in directories where inotify_add_watch(descriptor, directory, Self.directoryMask) < 0 {
            close(descriptor)
            return nil
        }
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }

    /// A generation read once for a scope of one task (see `withGenerationPinned`).
    private struct Pin: Sendable {
        let monitor: ObjectIdentifier
        let generation: UInt64
    }

    @TaskLocal private static var pinned: Pin?

    /// Runs `body` with this monitor's generation read once, at its start: each `generation()`
    /// of this monitor in the body's task answers that number.
    ///
    /// A request that looks at several watched files (the keyring, the credentials stamp) then
    /// pays one read of the queue instead of one per file, and sees the files as they were when
    /// it began, as every request does that starts after a change.
    public func withGenerationPinned<T>(_ body: () async throws -> T) async rethrows -> T {
        guard let generation = generation() else { return try await body() }
        return try await Self.$pinned.withValue(Pin(monitor: ObjectIdentifier(self), generation: generation)) {
            try await body()
        }
    }

    /// A number that changes whenever a watched file may have changed; nil when the monitor no
    /// longer watches (a watched directory was removed or moved, or its queue cannot be read),
    /// and the caller must look at the files themselves.
    public func generation() -> UInt64? {
        if let pin = Self.pinned, pin.monitor == ObjectIdentifier(self) { return pin.generation }
        return state.withLock { state -> UInt64? in
            guard !state.broken else { return nil }
            // Counted under the lock already taken: no shared counter of its own on this path.
            state.reads += 1
            // Drained under the lock, so that no caller sees the old number after another one
            // has read the event that changes it.
            withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 8) { buffer in
                while true {
                    let count = read(descriptor, buffer.baseAddress, buffer.count)
                    if count < 0 && errno == EINTR { continue }
                    guard count > 0 else {
                        if count < 0 && errno != EAGAIN { state.broken = true }
                        return
                    }
                    state.generation &+= 1
                    if Self.endsWatch(UnsafeRawBufferPointer(rebasing: buffer[..<count])) { state.broken = true }
                }
            }
            return state.broken ? nil : state.generation
        }
    }

    /// Whether any event in a buffer of inotify events ends a watch.
    private static func endsWatch(_ events: UnsafeRawBufferPointer) -> Bool {
        let header = MemoryLayout<inotify_event>.size
        var offset = 0
        while offset + header <= events.count {
            let mask = events.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let nameLength = events.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)
            if mask & endMask != 0 { return true }
            offset += header + Int(nameLength)
        }
        return false
    }

    /// Whether `path` is not a symbolic link (a file that does not exist yet qualifies).
    private static func isPlain(file path: String) -> Bool {
        var info = stat()
        guard lstat(path, &info) == 0 else { return errno == ENOENT }
        return info.st_mode & S_IFMT != S_IFLNK
    }

    /// Whether `directory` is an existing directory whose path has no symbolic link in it.
    private static func isReachedDirectly(_ directory: String) -> Bool {
        guard let resolved = realpath(directory, nil) else { return false }
        defer { free(resolved) }
        return String(cString: resolved) == URL(fileURLWithPath: directory).standardizedFileURL.path
    }
}

/// A file's stamp, looked up with `stat` only when a `FileChangeMonitor` saw a possible change
/// since the last lookup (every time without a monitor).
public final class WatchedFileStamp: Sendable {
    /// The file.
    public let path: String
    private let monitor: FileChangeMonitor?
    private let known = Mutex<(generation: UInt64, stamp: FileStamp?)?>(nil)

    /// Looks up `path`'s stamp, through `monitor` when there is one.
    public init(path: String, monitor: FileChangeMonitor?) {
        self.path = path
        self.monitor = monitor
    }

    /// The file's stamp now, nil when it does not exist.
    public func current() -> FileStamp? {
        // The generation is taken before the `stat`: a change after it moves the generation,
        // and the next lookup stats again.
        guard let generation = monitor?.generation() else { return FileStamp.of(path) }
        if let known = known.withLock({ $0 }), known.generation == generation { return known.stamp }
        let stamp = FileStamp.of(path)
        known.withLock { known in
            if known.map({ $0.generation < generation }) ?? true { known = (generation, stamp) }
        }
        return stamp
    }
}

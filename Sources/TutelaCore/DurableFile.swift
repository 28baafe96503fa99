import Foundation

/// A file written under a temporary name and moved into place only once it is complete and on
/// disk, so that a failed write never leaves a partial file where the finished one belongs.
///
/// Without a path it writes to standard output, as an export does when given no file.
public final class DurableFileWriter {
    /// What `finish` does when a file already exists at the path.
    public enum Existing: Sendable {
        /// Put the new file in its place.
        case replace
        /// Fail with `.alreadyExists` and leave it as it was (checked in the same step that
        /// moves the new file into place, so two writers cannot both succeed).
        case refuse
    }

    private let path: String?
    private let temporaryPath: String?
    private let existing: Existing
    private let descriptor: Int32
    private var closed = false

    /// Creates the temporary file (mode 0600) beside `path`, or writes to standard output when
    /// `path` is nil.
    /// - Throws: `.io` when the temporary file cannot be created.
    public init(path: String?, existing: Existing = .replace) throws {
        self.path = path
        self.existing = existing
        guard let path else {
            temporaryPath = nil
            descriptor = STDOUT_FILENO
            return
        }
        // A name of its own, made here and never followed through a link: writers of the same
        // path do not write into one another's file, and a name planted beforehand (a link to
        // another file, in a directory others can write) is refused rather than written through.
        let temporary = path + "." + String(UInt64.random(in: .min ... .max), radix: 16) + ".partial"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            // Named by the path asked for: the temporary name is ours.
            throw TutelaError(.io, "cannot create \(path): \(FileReading.reason(errno))")
        }
        temporaryPath = temporary
        self.descriptor = descriptor
    }

    deinit {
        if temporaryPath != nil, !closed { close(descriptor) }
    }

    /// Writes a whole file at once: under a temporary name, moved into place when it is on
    /// disk; nothing is left behind when a step fails.
    /// - Throws: `.io` naming `path` and the reason.
    public static func write(_ text: String, to path: String, existing: Existing = .replace) throws {
        let writer = try DurableFileWriter(path: path, existing: existing)
        do {
            try writer.write(text)
            try writer.finish()
        } catch {
            writer.abandon()
            throw error
        }
    }

    /// Appends text.
    /// - Throws: `.io` naming the file (as asked for) and the reason, such as a full disk.
    public func write(_ text: String) throws {
        var text = text
        try text.withUTF8 { bytes in
            try FileWriting.writeAll(UnsafeRawBufferPointer(bytes), to: descriptor, naming: name)
        }
    }

    /// The file as messages name it: the path asked for (the temporary name is ours), or
    /// standard output.
    private var name: String { path ?? "standard output" }

    /// Syncs the file, moves it into place and syncs its directory, so that the finished file
    /// is on disk, under its name, when this returns.
    /// - Throws: `.alreadyExists` when `existing` is `.refuse` and a file is at the path (the
    ///   temporary file is then removed); `.io` when a step fails.
    public func finish() throws {
        guard let path, let temporaryPath else { return }
        // A full disk may show only here, when delayed writes find no room.
        guard fsync(descriptor) == 0 else {
            throw TutelaError(.io, "cannot write \(name): \(FileReading.reason(errno))")
        }
        // Closed whatever close says: the descriptor is not to be closed twice.
        let closing = close(descriptor)
        closed = true
        guard closing == 0 else { throw TutelaError(.io, "cannot write \(name): \(FileReading.reason(errno))") }
        switch existing {
        case .replace:
            guard rename(temporaryPath, path) == 0 else {
                throw TutelaError(.io, "cannot rename \(temporaryPath) to \(path)")
            }
        case .refuse:
            // A hard link fails when the name is taken, where a rename would replace the file.
            guard link(temporaryPath, path) == 0 else {
                let failure = errno
                unlink(temporaryPath)
                if failure == EEXIST { throw TutelaError(.alreadyExists, "\(path) exists; it is never written over") }
                throw TutelaError(.io, "cannot move \(temporaryPath) to \(path)")
            }
            unlink(temporaryPath)
        }
        let parent = (path as NSString).deletingLastPathComponent
        let directory = open(parent.isEmpty ? "." : parent, O_RDONLY)
        guard directory >= 0 else { throw TutelaError(.io, "cannot open the directory of \(path) to sync it") }
        defer { close(directory) }
        guard fsync(directory) == 0 else { throw TutelaError(.io, "cannot sync the directory of \(path)") }
    }

    /// Closes and removes the temporary file; for a write that failed.
    public func abandon() {
        guard let temporaryPath else { return }
        if !closed { close(descriptor) }
        closed = true
        unlink(temporaryPath)
    }
}

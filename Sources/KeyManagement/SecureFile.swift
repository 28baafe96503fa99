import Foundation
import TutelaCore

#if canImport(Glibc)
import Glibc
#endif

/// Writes files with owner-only permissions, atomically and durably.
package enum SecureFile {
    /// Creates a new file with mode 0600; fails if it exists.
    package static func create(at path: String, contents: Data) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            if errno == EEXIST {
                throw TutelaError(.alreadyExists, "\(path) already exists; refusing to overwrite it")
            }
            throw TutelaError(.io, "cannot create \(path): \(FileReading.reason(errno))")
        }
        defer { close(descriptor) }
        try write(contents, to: descriptor, path: path)
        guard fsync(descriptor) == 0 else {
            throw TutelaError(.io, "cannot flush \(path): \(FileReading.reason(errno))")
        }
    }

    /// Replaces a file atomically: a reader sees the old or the new content, never a mix, and a
    /// crash leaves one of the two.
    package static func replace(at path: String, contents: Data) throws {
        let temporary = path + ".tmp-\(getpid())"
        unlink(temporary)
        try create(at: temporary, contents: contents)
        guard rename(temporary, path) == 0 else {
            let reason = FileReading.reason(errno)
            unlink(temporary)
            throw TutelaError(.io, "cannot replace \(path): \(reason)")
        }
        let directory = (path as NSString).deletingLastPathComponent
        let directoryDescriptor = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY)
        if directoryDescriptor >= 0 {
            fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    private static func write(_ data: Data, to descriptor: Int32, path: String) throws {
        try data.withUnsafeBytes { try FileWriting.writeAll($0, to: descriptor, naming: path) }
    }
}

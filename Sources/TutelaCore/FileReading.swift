import Foundation

/// Reading a file a command was given, with the reason when it cannot be read.
///
/// Foundation's `contents(atPath:)` answers nil whether the file is missing, is a directory or
/// may not be read; an administrator who mistyped a path is told which.
public enum FileReading {
    /// The whole file at `path`.
    /// - Parameter role: what the file is, for the message ("the configuration file").
    /// - Throws: `TutelaError` with `code` (`.io` unless given) naming the file and why it
    ///   cannot be read.
    public static func contents(of path: String, role: String? = nil, code: TutelaError.Code = .io) throws -> Data {
        try requireReadable(path, role: role, code: code)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TutelaError(code, "cannot read \(named(path, role))")
        }
        return data
    }

    /// A text file's content as a string.
    /// - Throws: `TutelaError` with `code` naming the file when it is not UTF-8 (saved in
    ///   another encoding), rather than a string with its characters replaced.
    public static func text(_ data: Data, of path: String, code: TutelaError.Code) throws -> String {
        guard let text = String(validating: data, as: UTF8.self) else {
            throw TutelaError(code, "\(path): not valid UTF-8 text (save the file as UTF-8)")
        }
        return text
    }

    /// Checks that `path` names a file that can be opened for reading.
    /// - Throws: `TutelaError` with `code` naming the file and the reason: no such file, a
    ///   directory, permission denied.
    public static func requireReadable(_ path: String, role: String? = nil, code: TutelaError.Code = .io) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw TutelaError(code, "cannot read \(named(path, role)): \(reason(errno))") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw TutelaError(code, "cannot read \(named(path, role)): \(reason(errno))")
        }
        if status.st_mode & S_IFMT == S_IFDIR {
            throw TutelaError(code, "cannot read \(named(path, role)): it is a directory")
        }
    }

    private static func named(_ path: String, _ role: String?) -> String {
        role.map { "\($0) \(path)" } ?? path
    }

    /// The system's words for an error number, as a message continues them ("no such file or
    /// directory").
    public static func reason(_ number: Int32) -> String {
        let words = String(cString: strerror(number))
        return words.prefix(1).lowercased() + words.dropFirst()
    }
}

/// Writing to a file descriptor, with the reason when it fails.
public enum FileWriting {
    /// Writes all of `bytes`, going on after partial writes and interruptions.
    /// - Throws: `.io` "cannot write NAME: reason", such as a full disk.
    public static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32, naming name: String) throws {
        guard let start = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let written = write(descriptor, start + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw TutelaError(.io, "cannot write \(name): \(FileReading.reason(errno))")
            }
            offset += written
        }
    }
}

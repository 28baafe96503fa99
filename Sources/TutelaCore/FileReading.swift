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
    static func reason(_ number: Int32) -> String {
        let words = String(cString: strerror(number))
        return words.prefix(1).lowercased() + words.dropFirst()
    }
}

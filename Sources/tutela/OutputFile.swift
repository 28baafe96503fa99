import ArgumentParser
import Foundation
import Governance
import TutelaCore

/// `--overwrite`, for the commands that write a file the user names: without it a file already
/// at the path is never written over, so that a mistyped `--out` cannot replace a database, a
/// keyring or an earlier export.
struct OverwriteOption: ParsableArguments {
    @Flag(
        help: "Replace a file already at the output path (never one in the data, keys or policies directory)."
    )
    var overwrite = false

    /// How a file written to `path` treats one already there, checked before any work starts.
    ///
    /// The writer checks again as it moves its finished file into place, in the same step, so a
    /// file that appears meanwhile is not written over either.
    /// - Parameter configuration: the directories whose files `--overwrite` must not replace;
    ///   nil for a command that has none.
    /// - Throws: `.alreadyExists` for a file at `path` without `--overwrite`; `.invalidInput` for
    ///   a directory at `path`, or for a file in one of the configuration's directories.
    func existing(at path: String, configuration: TutelaConfiguration?) throws -> DurableFileWriter.Existing {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            return overwrite ? .replace : .refuse
        }
        guard !isDirectory.boolValue else {
            throw TutelaError(.invalidInput, "\(path) is a directory; name a file to write")
        }
        guard overwrite else {
            throw TutelaError(.alreadyExists, "\(path) exists; add --overwrite to replace it")
        }
        if let configuration, let directory = Self.protectedDirectory(holding: path, configuration) {
            throw TutelaError(
                .invalidInput,
                "\(path) is in the \(directory); Tutela's own files are never written over"
            )
        }
        return .replace
    }

    /// Which of Tutela's directories holds `path` (at any depth, links resolved), if one does.
    private static func protectedDirectory(holding path: String, _ configuration: TutelaConfiguration) -> String? {
        let parent = (path as NSString).deletingLastPathComponent
        guard let folder = resolved(parent.isEmpty ? "." : parent) else { return nil }
        let directories = [
            ("data directory", configuration.dataDirectory),
            ("keys directory", configuration.keysDirectory),
            ("policies directory", configuration.policiesDirectory),
        ]
        for (name, directory) in directories {
            guard let root = resolved(directory) else { continue }
            if folder == root || folder.hasPrefix(root.hasSuffix("/") ? root : root + "/") { return name }
        }
        return nil
    }

    /// The path with every link and `..` resolved; nil when it does not exist.
    private static func resolved(_ path: String) -> String? {
        guard let real = realpath(path, nil) else { return nil }
        defer { free(real) }
        return String(cString: real)
    }
}

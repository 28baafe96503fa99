import Foundation
import Testing
import TutelaCore

@Suite("File change monitor")
struct FileChangeMonitorTests {
    /// A new empty directory, its path without symbolic links.
    private func directory() throws -> String {
        let path =
            FileManager.default.temporaryDirectory.resolvingSymlinksInPath().path
            + "/tutela-watch-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Writes `text` to a temporary name and renames it onto `path`, as the keyring and the
    /// credentials stamp are replaced.
    private func replace(_ path: String, with text: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path + ".tmp"))
        #expect(rename(path + ".tmp", path) == 0)
    }

    @Test("a file replaced, written and closed, or removed moves the generation; a quiet directory does not")
    func generations() throws {
        let folder = try directory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/stamp"
        let monitor = try #require(FileChangeMonitor(files: [file]))
        let quiet = try #require(monitor.generation())
        #expect(monitor.generation() == quiet)

        try replace(file, with: "one")
        let replaced = try #require(monitor.generation())
        #expect(replaced != quiet)
        #expect(monitor.generation() == replaced)

        let handle = try #require(FileHandle(forWritingAtPath: file))
        try handle.write(contentsOf: Data("two".utf8))
        try handle.close()
        let written = try #require(monitor.generation())
        #expect(written != replaced)

        try FileManager.default.removeItem(atPath: file)
        #expect(monitor.generation() != written)
    }

    @Test("a pinned scope answers the generation of its start; the change shows after it, other monitors unpinned")
    func pinnedGeneration() async throws {
        let folder = try directory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/stamp"
        let monitor = try #require(FileChangeMonitor(files: [file]))
        let other = try #require(FileChangeMonitor(files: [file]))
        let before = try #require(monitor.generation())
        let otherBefore = try #require(other.generation())
        let (inside, otherInside) = try await monitor.withGenerationPinned {
            try replace(file, with: "changed inside")
            let inside = monitor.generation()
            // Child tasks of the scope see the same number.
            async let child = monitor.generation()
            #expect(await child == inside)
            return (inside, other.generation())
        }
        #expect(inside == before)
        let otherAfter = other.generation()
        #expect(otherInside != nil && otherInside != otherBefore && otherAfter == otherInside)
        let after = try #require(monitor.generation())
        #expect(after != before)
    }

    @Test("a watched stamp follows every replacement, with no stat while nothing changes")
    func watchedStamp() throws {
        let folder = try directory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/stamp"
        let monitor = try #require(FileChangeMonitor(files: [file]))
        let stamp = WatchedFileStamp(path: file, monitor: monitor)
        #expect(stamp.current() == nil)
        for round in 0..<5 {
            try replace(file, with: "version \(round)")
            let now = try #require(FileStamp.of(file))
            #expect(stamp.current() == now)
            #expect(stamp.current() == now)
        }
    }

    @Test("a symbolic link on the way gives no monitor; a removed directory ends the watch")
    func fallbacks() throws {
        let folder = try directory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder + "/real", withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(atPath: folder + "/link", withDestinationPath: folder + "/real")
        #expect(FileChangeMonitor(files: [folder + "/link/stamp"]) == nil)
        try Data("x".utf8).write(to: URL(fileURLWithPath: folder + "/real/target"))
        try FileManager.default.createSymbolicLink(atPath: folder + "/real/stamp", withDestinationPath: "target")
        #expect(FileChangeMonitor(files: [folder + "/real/stamp"]) == nil)

        let watched = folder + "/watched"
        try FileManager.default.createDirectory(atPath: watched, withIntermediateDirectories: false)
        let monitor = try #require(FileChangeMonitor(files: [watched + "/stamp"]))
        let stamp = WatchedFileStamp(path: watched + "/stamp", monitor: monitor)
        try replace(watched + "/stamp", with: "one")
        #expect(stamp.current() == FileStamp.of(watched + "/stamp"))
        try FileManager.default.removeItem(atPath: watched)
        // The kernel queues the event that ends the watch when the directory's last reference
        // goes, which a loaded machine may do a moment after the removal returns.
        let patience = ContinuousClock.now + .seconds(10)
        while monitor.generation() != nil, ContinuousClock.now < patience { Thread.sleep(forTimeInterval: 0.01) }
        #expect(monitor.generation() == nil)
        // Without its watch the stamp is looked up every time: the file is gone.
        #expect(stamp.current() == nil)
        try FileManager.default.createDirectory(atPath: watched, withIntermediateDirectories: false)
        try replace(watched + "/stamp", with: "two")
        #expect(stamp.current() == FileStamp.of(watched + "/stamp"))
    }
}

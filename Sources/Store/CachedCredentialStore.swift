import Foundation
import Synchronization
import TutelaCore

/// Principals and API keys kept in memory for the gateway's hot path, dropped the moment any
/// process changes them.
///
/// Every request needs its API key and its principal; reading both from the database cost more
/// than the rest of a governed fetch. Changes come from this process (the server) or from
/// another one (`tutela apikeys revoke` run by an administrator), so each change ends by
/// replacing a small stamp file beside the database (a new file, renamed into place), and every
/// lookup compares the stamp's identity with the one the cache was filled under (a `stat` call
/// when the stamp's `FileChangeMonitor` saw a change, or when there is no monitor).
/// A revocation, a disabled principal or a changed role therefore takes effect on the next
/// request, in every process. Entries are also refreshed after `maximumAge`, so that even a
/// change made behind Tutela's back (an edited database) is seen within that time.
public final class CachedCredentialStore: PrincipalStore, APIKeyStore {
    private let principals: any PrincipalStore
    private let keys: any APIKeyStore
    private let stampFile: WatchedFileStamp
    private let maximumAge: Duration
    private let capacity: Int
    private let state = Mutex(State())

    private struct State {
        var stamp: FileStamp?
        var principals: [String: Entry<Principal>] = [:]
        var keys: [String: Entry<StoredAPIKey>] = [:]
    }

    private struct Entry<Value: Sendable>: Sendable {
        var value: Value
        var fetched: ContinuousClock.Instant
    }

    /// Wraps the stores; `stampFile` is the shared stamp file (created on the first change).
    public init(
        principals: any PrincipalStore,
        keys: any APIKeyStore,
        stampFile: WatchedFileStamp,
        maximumAge: Duration = .seconds(30),
        capacity: Int = 10_000
    ) {
        self.principals = principals
        self.keys = keys
        self.stampFile = stampFile
        self.maximumAge = maximumAge
        self.capacity = capacity
    }

    // MARK: Reading

    public func principal(named name: String) async throws -> Principal? {
        try await cached(name, in: \.principals) { try await principals.principal(named: name) }
    }

    public func apiKey(id: String) async throws -> StoredAPIKey? {
        try await cached(id, in: \.keys) { try await keys.apiKey(id: id) }
    }

    public func principals() async throws -> [Principal] {
        try await principals.principals()
    }

    public func apiKeys() async throws -> [StoredAPIKey] {
        try await keys.apiKeys()
    }

    /// The entry for `name`, fetched and remembered when missing or older than `maximumAge`.
    ///
    /// A changed stamp empties the cache first. Unknown names are not remembered (a caller
    /// cannot fill the cache with them), nor is an entry fetched while the stamp moved (it may
    /// predate the change).
    private func cached<Value: Sendable>(
        _ name: String,
        in table: any WritableKeyPath<State, [String: Entry<Value>]> & Sendable,
        fetch: () async throws -> Value?
    ) async throws -> Value? {
        let now = ContinuousClock.now
        let stamp = currentStamp()
        let hit = state.withLock { state -> Value? in
            if state.stamp != stamp { state = State(stamp: stamp) }
            guard let entry = state[keyPath: table][name], now - entry.fetched < maximumAge else { return nil }
            return entry.value
        }
        if let hit { return hit }
        guard let value = try await fetch() else { return nil }
        let after = currentStamp()
        state.withLock { state in
            guard state.stamp == after else {
                state = State(stamp: after)
                return
            }
            if state[keyPath: table].count >= capacity { state[keyPath: table] = [:] }
            state[keyPath: table][name] = Entry(value: value, fetched: now)
        }
        return value
    }

    // MARK: Writing

    public func save(_ principal: Principal, createOnly: Bool) async throws {
        try await changing { try await principals.save(principal, createOnly: createOnly) }
    }

    public func insert(_ key: StoredAPIKey) async throws {
        try await changing { try await keys.insert(key) }
    }

    public func revokeAPIKey(id: String, at time: Int64) async throws -> Bool {
        try await changing { try await keys.revokeAPIKey(id: id, at: time) }
    }

    /// Runs a change, then empties this cache and replaces the stamp file, which empties every
    /// other process's; also after a failed change, which may still have committed.
    /// - Throws: the change's error, or `.io` when the stamp cannot be replaced (the change is
    ///   then made, but other processes would serve the old credentials up to `maximumAge`).
    private func changing<T>(_ change: () async throws -> T) async throws -> T {
        let result: T
        do {
            result = try await change()
        } catch {
            try? replaceStamp()
            throw error
        }
        try replaceStamp()
        return result
    }

    private func replaceStamp() throws {
        state.withLock { $0 = State(stamp: nil) }
        let stampPath = stampFile.path
        let temporary = stampPath + ".\(ProcessInfo.processInfo.processIdentifier).tmp"
        let text = Hex.encode((0..<8).map { _ in UInt8.random(in: 0...255) })
        let created = FileManager.default.createFile(
            atPath: temporary,
            contents: Data(text.utf8),
            attributes: [.posixPermissions: 0o600]
        )
        guard created, rename(temporary, stampPath) == 0 else {
            throw TutelaError(
                .io,
                "the change is saved, but \(stampPath) cannot be replaced: a running server may accept the old credentials for up to \(maximumAge.components.seconds) s"
            )
        }
    }

    private func currentStamp() -> FileStamp? {
        stampFile.current()
    }
}

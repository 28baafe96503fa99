import Audit
import KeyManagement
import Store
import Synchronization
import TutelaCore

/// The status of one key-encryption-key version.
public struct KeyVersionStatus: Sendable, Codable, Hashable {
    /// The version number.
    public var version: Int
    /// The state: active, decrypt-only, disabled or destroyed.
    public var state: String
    /// Creation time, RFC 3339.
    public var createdAt: String
    /// How many data keys it wraps.
    public var dataKeys: Int

    enum CodingKeys: String, CodingKey {
        case version, state
        case createdAt = "created_at"
        case dataKeys = "data_keys"
    }
}

extension Tutela {
    /// The key versions with how many data keys each wraps.
    public func keyStatus() async throws -> [KeyVersionStatus] {
        let keyring = try configuration.keyringFile.load()
        let counts = try await store.backend.dataKeyCountsByVersion()
        return keyring.versions.map {
            KeyVersionStatus(
                version: $0.version,
                state: $0.state.rawValue,
                createdAt: CalendarDate.formatTimestamp(milliseconds: $0.createdAt),
                dataKeys: counts[$0.version] ?? 0
            )
        }
    }

    /// Adds a new active key version.
    ///
    /// Reads keep working: older versions become decrypt-only.
    /// - Returns: the new version.
    @discardableResult
    public func rotateKey(now: Int64) async throws -> Int {
        try await audited(keyEvent("keys.rotate", record: nil)) {
            var version = 0
            try configuration.keyringFile.update { keyring in
                version = try keyring.rotate(now: now)
            }
            return version
        }
    }

    private func keyEvent(_ kind: String, record: String?) -> AuditEvent {
        event(
            kind: kind,
            principal: configuration.operatorName,
            requestID: newRequestID(),
            resource: "keyring",
            outcome: "started"
        )
        .with(record: record)
    }

    /// Disables or enables a version.
    public func changeKey(version: Int, _ change: KeyVersionState.Event) async throws {
        guard change != .destroy else {
            throw TutelaError(.invalidInput, "use destroyKeyVersion, which checks that nothing depends on the version")
        }
        try await audited(keyEvent("keys.\(change.rawValue)", record: "version \(version)")) {
            try configuration.keyringFile.update { keyring in
                try keyring.apply(change, toVersion: version)
            }
        }
    }

    /// Destroys a version's key material for good.
    /// - Throws: `.invalidState` while any data key is still wrapped under it.
    public func destroyKeyVersion(_ version: Int) async throws {
        // The state machine's refusal (an active version, say) comes before counting data keys.
        var trial = try configuration.keyringFile.load()
        try trial.apply(.destroy, toVersion: version)
        let remaining = try await store.backend.dataKeyCountsByVersion()[version] ?? 0
        guard remaining == 0 else {
            throw TutelaError(
                .invalidState,
                "key version \(version) still wraps \(remaining) data keys; run 'tutela keys rewrap' first"
            )
        }
        try await audited(keyEvent("keys.destroy", record: "version \(version)")) {
            try configuration.keyringFile.update { keyring in
                try keyring.apply(.destroy, toVersion: version)
            }
        }
    }

    /// Re-wraps every data key under the newest key version, in atomic batches.
    ///
    /// After a crash,
    /// running it again continues where it stopped: each batch commits on its own and the next
    /// run selects only the keys not yet under the newest version.
    /// - Parameters:
    ///   - batchSize: data keys per batch.
    ///   - progress: called after each batch with (done, total).
    /// - Returns: how many keys were re-wrapped.
    /// - Throws: `.authenticationFailed` after the pass when some keys failed authentication
    ///   (their stored form was altered): every other key is re-wrapped, and the error names
    ///   their subjects.
    @discardableResult
    public func rewrapAll(batchSize: Int = 500, progress: (Int, Int) throws -> Void = { _, _ in }) async throws -> Int {
        let fresh = try await Tutela.open(configuration)
        let rewrapped: (Int) -> Int = { $0 }
        return try await audited(keyEvent("keys.rewrap", record: nil), count: rewrapped) {
            try await fresh.rewrapEverything(batchSize: batchSize, progress: progress)
        }
    }

    private func rewrapEverything(batchSize: Int, progress: (Int, Int) throws -> Void) async throws -> Int {
        let fresh = self
        let active = fresh.store.keyring.activeVersion
        let counts = try await fresh.store.backend.dataKeyCountsByVersion()
        let total = counts.filter { $0.key != active }.values.reduce(0, +)
        var done = 0
        var unreadable: [String: TutelaError] = [:]
        try progress(done, total)
        // One pass in subject order; a second pass catches keys that a writer holding an older
        // keyring wrapped behind the cursor meanwhile.
        for _ in 0..<2 {
            var cursor: String?
            while true {
                let batch = try await fresh.store.rewrapBatch(after: cursor, limit: max(1, batchSize))
                if batch.examined == 0 { break }
                done += batch.count
                for (subject, error) in batch.unreadable { unreadable[subject] = error }
                cursor = batch.cursor
                try progress(done, max(total, done))
            }
            let left = try await fresh.store.backend.dataKeyCountsByVersion().filter { $0.key != active }
            if left.values.reduce(0, +) <= unreadable.count { break }
        }
        guard unreadable.isEmpty else { throw Self.unreadableKeys(unreadable, rewrapped: done) }
        return done
    }

    /// The error of a re-wrap that left keys it could not open: what was done, and whose keys.
    private static func unreadableKeys(_ unreadable: [String: TutelaError], rewrapped: Int) -> TutelaError {
        let shown = 10
        let subjects = unreadable.keys.sorted()
        var names = subjects.prefix(shown).map { "'\($0.escapingControlCharacters)'" }.joined(separator: ", ")
        if subjects.count > shown { names += " and \(subjects.count - shown) more" }
        let first = subjects.first.flatMap { unreadable[$0]?.message } ?? ""
        let one = subjects.count == 1
        let stay =
            one
            ? "stays under its key version, which cannot be destroyed until it is gone: subject"
            : "stay under their key versions, which cannot be destroyed until they are gone: subjects"
        return TutelaError(
            .authenticationFailed,
            "re-wrapped \(rewrapped) data keys; \(subjects.count) failed authentication and \(stay) \(names) "
                + "(\(first)). \(one ? "Its" : "Their") data cannot be read; 'tutela data erase SUBJECT' removes it"
        )
    }
}

extension Tutela {
    /// Reloads the keyring file, after `tutela keys rotate`, `disable`, `destroy` or `rewrap` ran
    /// in another process.
    ///
    /// The attempt is audited; a keyring that does not open leaves the one in force.
    /// - Returns: the active key version now.
    @discardableResult
    public func reloadKeyring() async throws -> Int {
        let stamp = FileStamp.of(configuration.keyringPath)
        let keyring = store.keyring
        return try await audited(
            event(
                kind: "keys.reload",
                principal: configuration.operatorName,
                requestID: newRequestID(),
                outcome: "started"
            )
            .with(record: "from version \(keyring.activeVersion)")
        ) {
            defer { keyringStamp.withLock { $0 = stamp } }
            let loaded = try configuration.keyringFile.load()
            try store.replaceKeyring(loaded)
            return loaded.activeVersion
        }
    }

    /// Reloads the keyring when its file changed since it was last loaded.
    ///
    /// When nothing changed this is one read of the file change monitor's queue (one `stat`
    /// call without a monitor). A failed reload is not retried until the file changes again.
    /// - Returns: nil when nothing changed, else the outcome of the reload.
    public func reloadKeyringIfChanged() async -> Result<Int, any Error>? {
        let stamp = keyringFileStamp.current()
        guard keyringStamp.withLock({ $0 != stamp }) else { return nil }
        do {
            return .success(try await reloadKeyring())
        } catch {
            return .failure(error)
        }
    }
}

import KeyManagement
import TutelaCore

/// One record as a backend stores it: clear ids, a payload with sealed fields, and blind-index
/// entries.
public struct StoredRecord: Sendable, Hashable {
    /// The collection.
    public var collection: String
    /// The record id.
    public var id: String
    /// The data subject.
    public var subject: String
    /// The encoded fields; classified ones are ciphertexts (see `RecordPayload`).
    public var payload: [UInt8]
    /// Blind-index digests by field name.
    public var lookups: [Lookup]

    /// Creates a stored record.
    public init(collection: String, id: String, subject: String, payload: [UInt8], lookups: [Lookup]) {
        self.collection = collection
        self.id = id
        self.subject = subject
        self.payload = payload
        self.lookups = lookups
    }
}

/// One blind-index entry of a record.
public struct Lookup: Sendable, Hashable {
    /// The indexed field.
    public var field: String
    /// The normalized value's digest under the field's index key (`BlindIndexer`).
    public var digest: [UInt8]

    /// Creates an entry.
    public init(field: String, digest: [UInt8]) {
        self.field = field
        self.digest = digest
    }
}

/// A subject's wrapped data key as a backend stores it.
public struct StoredDataKey: Sendable, Hashable {
    /// The data subject.
    public var subject: String
    /// The wrapped key.
    public var wrapped: WrappedDataKey

    /// Creates a stored key.
    public init(subject: String, wrapped: WrappedDataKey) {
        self.subject = subject
        self.wrapped = wrapped
    }
}

/// Everything one atomic write changes.
///
/// A backend applies a batch in one transaction: all of it
/// or none of it.
public struct WriteBatch: Sendable {
    /// Data keys to create; a backend refuses one whose subject already has a key.
    public var newDataKeys: [StoredDataKey] = []
    /// Data keys the batch relies on, by subject: the write fails if any of them changed meanwhile.
    public var expectedKeyIDs: [String: [UInt8]] = [:]
    /// Records to insert or replace, with their lookups.
    public var records: [StoredRecord] = []
    /// Data keys re-wrapped under a newer version, each with the version it replaces.
    public var rewrapped: [(key: StoredDataKey, previousVersion: Int)] = []

    /// An empty batch.
    public init() {}
}

/// What erasing a subject removed.
public struct ErasureReport: Sendable, Hashable, Codable {
    /// Whether a data key was destroyed.
    public var dataKeyDestroyed: Bool
    /// How many records were removed.
    public var recordsRemoved: Int
    /// How many blind-index entries were removed.
    public var lookupsRemoved: Int
    /// Whether the subject had been erased before (the erasure's time is the first one's).
    public var alreadyErased: Bool

    enum CodingKeys: String, CodingKey {
        case dataKeyDestroyed = "data_key_destroyed"
        case recordsRemoved = "records_removed"
        case lookupsRemoved = "lookups_removed"
        case alreadyErased = "already_erased"
    }

    /// Creates a report.
    public init(dataKeyDestroyed: Bool, recordsRemoved: Int, lookupsRemoved: Int, alreadyErased: Bool = false) {
        self.dataKeyDestroyed = dataKeyDestroyed
        self.recordsRemoved = recordsRemoved
        self.lookupsRemoved = lookupsRemoved
        self.alreadyErased = alreadyErased
    }
}

/// A storage backend for sealed records and wrapped data keys.
///
/// It never sees a clear value of a
/// classified field nor a clear data key; `EncryptedStore` does the cryptography on top of it.
///
/// SQLite (`SQLiteRecordStore`) is the embedded default; every backend passes the same
/// conformance tests.
public protocol RecordStore: Sendable {
    /// Applies a batch atomically.
    /// - Throws: `.conflict` when a data key it creates or relies on changed meanwhile (retry),
    ///   `.subjectErased` when it writes records of an erased subject.
    func apply(_ batch: WriteBatch) async throws

    /// Applies batches as `next` makes them, all in one transaction: all of them or none.
    ///
    /// `next` (called one call at a time, until it returns nil) seals the next batch while the
    /// backend writes the one before; a backend asks for a batch only when few are waiting, so
    /// sealed batches do not pile up.
    /// - Parameters:
    ///   - next: the next batch, nil after the last; an error undoes everything.
    ///   - written: called with the number of records written so far after each batch.
    /// - Throws: as `apply(_:)`, or the error `next` threw.
    func apply(
        batches next: @escaping @Sendable () async throws -> WriteBatch?,
        written: @escaping @Sendable (Int) -> Void
    ) async throws

    /// One record and its subject's wrapped data key.
    func record(collection: String, id: String) async throws -> (StoredRecord, WrappedDataKey?)?

    /// One record without its subject's wrapped data key, for a reader that keeps the subject's
    /// key unwrapped already.
    ///
    /// A record exists only while its subject's data key does (erasure removes both in one
    /// transaction), so a record found here is still readable.
    func recordOnly(collection: String, id: String) async throws -> StoredRecord?

    /// The wrapped data key of one subject; nil when there is none (never made, or erased).
    func dataKey(subject: String) async throws -> WrappedDataKey?

    /// A page of records in id order, starting after `afterID`.
    func records(
        collection: String,
        after afterID: String?,
        limit: Int
    ) async throws
        -> [(StoredRecord, WrappedDataKey?)]

    /// The records whose blind index for `field` equals `digest`, in id order, each with its
    /// subject's wrapped data key (nil once erased).
    ///
    /// Each field's digests are made under its own key, so a backend may keep its entries by
    /// digest alone (the SQLite store does).
    func records(
        collection: String,
        field: String,
        digest: [UInt8]
    ) async throws -> [(StoredRecord, WrappedDataKey?)]

    /// The records of `records(collection:field:digest:)` without their subjects' wrapped
    /// data keys (see `recordOnly(collection:id:)`).
    func recordsOnly(collection: String, field: String, digest: [UInt8]) async throws -> [StoredRecord]

    /// The wrapped data keys of some subjects.
    func dataKeys(subjects: Set<String>) async throws -> [String: WrappedDataKey]

    /// Up to `limit` data keys wrapped under a version other than `version`, in subject order,
    /// starting after `afterSubject`.
    func dataKeys(
        notWrappedUnder version: Int,
        after afterSubject: String?,
        limit: Int
    ) async throws
        -> [StoredDataKey]

    /// How many data keys each key-encryption-key version wraps.
    func dataKeyCountsByVersion() async throws -> [Int: Int]

    /// Number of records in a collection.
    func count(collection: String) async throws -> Int

    /// Whether a subject was erased.
    func isErased(subject: String) async throws -> Bool

    /// Which of `subjects` were erased.
    func erasedSubjects(among subjects: Set<String>) async throws -> Set<String>

    /// Destroys a subject's data key and removes its records and lookups, leaving a tombstone.
    func erase(subject: String, at time: Int64) async throws -> ErasureReport

    /// A metadata value.
    func metadata(_ key: String) async throws -> String?

    /// Sets a metadata value.
    func setMetadata(_ key: String, _ value: String) async throws
}

extension TutelaError.Code {
    /// A concurrent writer changed what this write relied on; the write may be retried.
    public static let conflict = Self("conflict")
}

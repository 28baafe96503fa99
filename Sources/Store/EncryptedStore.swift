import Foundation
import KeyManagement
import Synchronization
import TutelaCore

/// The customer-data store: encrypts every classified field under its subject's data key on the
/// way in, decrypts on the way out, and keeps blind indexes for lookups.
///
/// It is the only code that holds clear data keys; backends see sealed payloads only.
public final class EncryptedStore: Sendable {
    /// The schema records are checked against.
    public let schema: Schema
    /// The storage backend.
    public let backend: any RecordStore
    /// The cipher over the keyring in force, replaced when the keyring file changes.
    private let cipherState: Mutex<EnvelopeCipher>
    private let cachedDataKeys: Int
    private var cipher: EnvelopeCipher { cipherState.withLock { $0 } }
    // The blind-index keys of each collection's fields, by field position (nil: no lookup).
    private let lookupKeys: [String: [KeyedHMAC?]]
    // Sealed groups' names, encoded once per collection and set of fields.
    private let fieldGroups = Mutex<[GroupKey: FieldGroup]>([:])

    /// Creates a store.
    /// - Parameters:
    ///   - backend: where sealed records live.
    ///   - schema: the collections and field classes.
    ///   - keyring: the key-encryption keys and index secret.
    ///   - tenant: bound into every ciphertext and data key.
    ///   - cachedDataKeys: how many unwrapped data keys to keep for later reads (see
    ///     `EnvelopeCipher.unwrap`); 0 unwraps on every read.
    public init(
        backend: any RecordStore,
        schema: Schema,
        keyring: Keyring,
        tenant: String,
        cachedDataKeys: Int = EnvelopeCipher.defaultCachedDataKeys
    ) {
        self.backend = backend
        self.schema = schema
        self.cachedDataKeys = cachedDataKeys
        self.cipherState = Mutex(EnvelopeCipher(keyring: keyring, tenant: tenant, cachedDataKeys: cachedDataKeys))
        let indexer = BlindIndexer(keyring: keyring, tenant: tenant)
        self.lookupKeys = schema.collections.mapValues { collection in
            collection.fields.map { field in
                field.lookup.map { _ in indexer.key(collection: collection.name, field: field.name) }
            }
        }
    }

    /// The keyring in use.
    public var keyring: Keyring { cipher.keyring }

    /// The number of unwrapped data keys kept for later reads.
    public var cachedDataKeyCount: Int { cipher.cachedDataKeyCount }

    /// Puts a newer state of the same keyring in force (a rotation, a disabled or destroyed
    /// version, made by another process): new data keys are wrapped under its active version
    /// and keys re-wrapped under a new version open.
    /// - Throws: `.invalidState` for a keyring with another id.
    public func replaceKeyring(_ keyring: Keyring) throws {
        try cipherState.withLock { cipher in
            guard keyring.id == cipher.keyring.id else {
                throw TutelaError(.invalidState, "the keyring file now holds another keyring; restart to use it")
            }
            cipher = EnvelopeCipher(keyring: keyring, tenant: cipher.tenant, cachedDataKeys: cachedDataKeys)
        }
    }

    // MARK: Writing

    /// Stores records atomically: all of them or, on any error, none.
    /// - Throws: `.subjectErased` for a subject that was erased, `.storage` on backend failure.
    /// - Parameter written: called with the number of records written so far, as the write
    ///   proceeds.
    public func put(_ records: [Record], written: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        try await put(count: records.count, record: { records[$0] }, written: written)
    }

    /// Stores `count` records made on demand by `record` (from 0 up), atomically.
    ///
    /// The records are made as they are sealed, a batch at a time, so that a caller that can
    /// make them again cheaply (an import reading its file a second time) never holds them all.
    /// `record` may be called more than once for an index: when another writer created one of
    /// the subjects' data keys first, the whole write starts again.
    /// - Throws: as `put(_:)`, or what `record` throws; nothing is then stored.
    public func put(
        count: Int,
        record: @escaping @Sendable (Int) throws -> Record,
        written: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws {
        guard count > 0 else { return }
        do {
            try await write(count: count, record: record, written: written)
        } catch let error as TutelaError where error.code == .conflict {
            // Another writer created a data key for one of these subjects first: seal again with it.
            try await write(count: count, record: record, written: written)
        }
    }

    /// Records per sealed batch when a write is streamed to the backend.
    public static let streamedBatchSize = 256

    /// Seals and writes records in one transaction.
    ///
    /// Beyond one batch's worth, the records are made and sealed batch by batch while the
    /// backend writes the batches sealed before, so that the sealing (on every core) and the
    /// database writes (on the writer's thread) overlap.
    private func write(
        count: Int,
        record: @escaping @Sendable (Int) throws -> Record,
        written: @escaping @Sendable (Int) -> Void
    ) async throws {
        guard count > Self.streamedBatchSize else {
            try await backend.apply(try await seal((0..<count).map(record)))
            written(count)
            return
        }
        let sealer = BatchSealer(store: self, count: count, record: record)
        try await backend.apply(batches: { try await sealer.next() }, written: written)
    }

    /// The write batch that `put` applies: data keys found or made, every record sealed.
    package func seal(_ records: [Record]) async throws -> WriteBatch {
        var known: [String: DataKey] = [:]
        return try await seal(records, known: &known)
    }

    /// Seals records whose subjects' data keys are in `known` or are found or made here (and then
    /// added to `known`): a batch creates or relies on a data key only the first time a write
    /// meets its subject.
    fileprivate func seal(_ records: [Record], known: inout [String: DataKey]) async throws -> WriteBatch {
        var keys: [String: DataKey] = [:]
        keys.reserveCapacity(records.count)
        var unresolved: Set<String> = []
        for record in records where keys[record.subject] == nil {
            if let key = known[record.subject] {
                keys[record.subject] = key
            } else {
                unresolved.insert(record.subject)
            }
        }
        let subjects = Array(unresolved)
        let existing = try await backend.dataKeys(subjects: unresolved)
        // Unwrapping, key creation and field sealing are independent per subject and record:
        // spread them over the cores in chunks, keeping the input order.
        let cipher = self.cipher
        let resolved = try await Self.concurrentMapChunks(subjects) { chunk in
            // One draw from the kernel for the chunk's new keys (a system call each cost a
            // twentieth of a key's making).
            let fresh = chunk.count { existing[$0] == nil }
            var random = try AES256GCM.randomBytes(fresh * EnvelopeCipher.dataKeyRandomLength)
            defer { EnvelopeCipher.zero(&random) }
            var offset = 0
            return try chunk.map { subject -> (String, DataKey, WrappedDataKey, Bool) in
                if let wrapped = existing[subject] {
                    // Not kept: a write's subjects are known for the rest of the write already.
                    return (subject, try cipher.unwrap(wrapped, subject: subject, keep: false), wrapped, false)
                }
                let end = offset + EnvelopeCipher.dataKeyRandomLength
                let (key, wrapped) = try random.withUnsafeBytes {
                    try cipher.makeDataKey(
                        forSubject: subject,
                        random: UnsafeRawBufferPointer(rebasing: $0[offset..<end])
                    )
                }
                offset = end
                return (subject, key, wrapped, true)
            }
        }
        var batch = WriteBatch()
        for (subject, key, wrapped, isNew) in resolved {
            keys[subject] = key
            known[subject] = key
            if isNew {
                batch.newDataKeys.append(StoredDataKey(subject: subject, wrapped: wrapped))
            } else {
                batch.expectedKeyIDs[subject] = wrapped.id
            }
        }
        let sealingKeys = keys
        let schema = schema
        let lookupKeys = lookupKeys
        batch.records = try await Self.concurrentMapChunks(records) { chunk in
            var sealer = RecordSealer(schema: schema, lookupKeys: lookupKeys, cipher: cipher)
            return try chunk.map { record in
                guard let key = sealingKeys[record.subject] else {
                    throw TutelaError(.invalidState, "no data key for a record's subject")
                }
                return try sealer.seal(record, with: key)
            }
        }
        return batch
    }

    /// Maps `items` in order, in chunks that run concurrently when there are enough of them.
    fileprivate static func concurrentMap<Item: Sendable, Result: Sendable>(
        _ items: [Item],
        _ transform: @escaping @Sendable (Item) throws -> Result
    ) async throws -> [Result] {
        try await concurrentMapChunks(items) { try $0.map(transform) }
    }

    /// Maps `items` in order, a chunk at a time (`transform` returns one result per item of its
    /// chunk), the chunks running concurrently when there are several.
    fileprivate static func concurrentMapChunks<Item: Sendable, Result: Sendable>(
        _ items: [Item],
        _ transform: @escaping @Sendable (ArraySlice<Item>) throws -> [Result]
    ) async throws -> [Result] {
        let chunkSize = 128
        guard items.count > chunkSize else { return try transform(items[...]) }
        return try await withThrowingTaskGroup(of: (Int, [Result]).self) { group in
            for start in stride(from: 0, to: items.count, by: chunkSize) {
                let chunk = items[start..<min(start + chunkSize, items.count)]
                group.addTask { (start, try transform(chunk)) }
            }
            var parts: [(Int, [Result])] = []
            for try await part in group { parts.append(part) }
            return parts.sorted { $0.0 < $1.0 }.flatMap(\.1)
        }
    }

    // MARK: Reading

    /// One record, decrypted.
    /// - Throws: `.notFound`; `.ciphertextTampered` or `.ciphertextMisplaced` naming the field.
    public func get(collection: String, id: String, withheld: Set<String> = []) async throws -> Record {
        let definition = try schema.collection(collection)
        // A record that is its own subject (a customer) whose data key is kept is read without
        // the key's row: one search instead of two.
        let cipher = self.cipher
        if definition.keyField == definition.subjectField, let key = cipher.keptDataKey(subject: id),
            let stored = try await backend.recordOnly(collection: collection, id: id), stored.subject == id
        {
            return try open(stored, withheld: withheld, cipher: cipher) { key }
        }
        guard let (stored, key) = try await backend.record(collection: collection, id: id) else {
            if definition.keyField == definition.subjectField, try await backend.isErased(subject: id) {
                throw TutelaError(.subjectErased, "\(collection)/\(id) was erased")
            }
            throw TutelaError(.notFound, "no record \(collection)/\(id)")
        }
        return try open(stored, key: key, withheld: withheld)
    }

    /// Records whose `field` equals `value` after the field's normalization, found through the
    /// blind index without decrypting the collection.
    /// - Throws: `.invalidInput` when the field has no lookup.
    public func find(
        collection: String,
        field: String,
        value: String,
        withheld: Set<String> = []
    ) async throws -> [Record] {
        let definition = try schema.collection(collection)
        guard let position = definition.position(of: field), let normalization = definition.fields[position].lookup,
            let key = lookupKeys[collection]?[position]
        else {
            throw TutelaError(.invalidInput, "field '\(collection).\(field)' has no lookup index")
        }
        guard let normalized = normalization.indexable(value) else {
            // The value is not named: it is what a caller typed, perhaps customer data.
            throw TutelaError(
                .invalidInput,
                "the value to look up by '\(collection).\(field)' matches nothing: \(normalization.unindexableReason)"
            )
        }
        // The field's key set up when the store was made, as sealing uses it.
        let digest = BlindIndexer.digest(of: normalized, key: key)
        // The records alone, then the wrapped keys of the subjects whose keys are not kept.
        let cipher = self.cipher
        var records: [Record] = []
        for stored in try await backend.recordsOnly(collection: collection, field: field, digest: digest) {
            if let key = cipher.keptDataKey(subject: stored.subject) {
                records.append(try open(stored, withheld: withheld, cipher: cipher) { key })
                continue
            }
            // No key now for a record found a moment ago: its subject was erased in between,
            // and the record with it.
            guard let wrapped = try await backend.dataKey(subject: stored.subject) else { continue }
            records.append(
                try open(stored, withheld: withheld, cipher: cipher) {
                    try cipher.unwrap(wrapped, subject: stored.subject)
                }
            )
        }
        return records
    }

    /// A page of records in id order.
    public func page(
        collection: String,
        after afterID: String?,
        limit: Int,
        withheld: Set<String> = []
    ) async throws -> [Record] {
        _ = try schema.collection(collection)
        let cipher = self.cipher
        // A page is one statement, so a subject has the same wrapped key in all its rows: it is
        // unwrapped once per page, and not kept beyond it (a scan would push out the keys kept
        // for the customers read often).
        var keys: [String: DataKey] = [:]
        return try await backend.records(collection: collection, after: afterID, limit: limit).map { stored, wrapped in
            try open(stored, withheld: withheld, cipher: cipher) {
                if let key = keys[stored.subject] { return key }
                guard let wrapped else { throw Self.destroyedKey(of: stored) }
                let key = try cipher.unwrap(wrapped, subject: stored.subject, keep: false)
                keys[stored.subject] = key
                return key
            }
        }
    }

    private static func destroyedKey(of stored: StoredRecord) -> TutelaError {
        TutelaError(.subjectErased, "the data key of \(stored.collection)/\(stored.id) was destroyed")
    }

    /// Decrypts a stored record.
    ///
    /// Sealed fields named in `withheld` are not made into values: they are listed in the
    /// record's `withheld` instead of `fields`, so a governed read whose decision hides a field
    /// never holds its clear value beyond the decrypted group's bytes, which are zeroed once read
    /// (a field of an older record, sealed on its own, is not decrypted at all).
    public func open(_ stored: StoredRecord, key wrapped: WrappedDataKey?, withheld: Set<String> = []) throws -> Record
    {
        let cipher = self.cipher
        return try open(stored, withheld: withheld, cipher: cipher) {
            guard let wrapped else { throw Self.destroyedKey(of: stored) }
            return try cipher.unwrap(wrapped, subject: stored.subject)
        }
    }

    /// Decrypts a stored record with the data key `resolve` gives, asked for at most once and
    /// only when a sealed field is read.
    private func open(
        _ stored: StoredRecord,
        withheld: Set<String>,
        cipher: EnvelopeCipher,
        key resolve: () throws -> DataKey
    ) throws -> Record {
        let collection = try schema.collection(stored.collection)
        var dataKey: DataKey?
        func key() throws -> DataKey {
            if let dataKey { return dataKey }
            let key = try resolve()
            dataKey = key
            return key
        }
        var present: Set<String> = []
        var fields: [String: FieldValue] = [:]
        fields.reserveCapacity(collection.fields.count)
        var buffers = FieldBuffers()
        // Format 1 only: the context of a field sealed on its own.
        var context: FieldContext?
        var grouped: [String] = []
        // The group's fields by schema position, while they come in the schema's order (as
        // written); a payload in another order gets a group context of its own.
        var groupedFields: GroupKey.Fields? = GroupKey.Fields()
        // Entries are stored in the schema's field order: the next definition is usually the match.
        var next = 0
        try RecordPayload.forEach(in: stored.payload, record: "\(collection.name)/\(stored.id)") { nameBytes, entry in
            let (name, index) = Self.name(nameBytes, in: collection, from: &next)
            switch entry {
            case .clear(let value):
                fields[name] = value
            case .grouped:
                if grouped.isEmpty { grouped.reserveCapacity(collection.fields.count) }
                grouped.append(name)
                if let index, groupedFields?.isBelow(index) == true {
                    groupedFields?.add(index)
                } else {
                    groupedFields = nil
                }
            case .sealed where !withheld.isEmpty && withheld.contains(name):
                present.insert(name)
            case .sealed(let ciphertext):
                var place =
                    context
                    ?? FieldContext(tenant: cipher.tenant, collection: collection.name, recordID: stored.id, field: "")
                place.field = name
                context = place
                fields[name] = try cipher.open(ciphertext, with: try key(), context: place, buffers: &buffers)
            }
        }
        if !grouped.isEmpty {
            guard
                let range = try RecordPayload.groupRange(in: stored.payload, record: "\(collection.name)/\(stored.id)")
            else {
                throw TutelaError(
                    .ciphertextTampered,
                    "the stored payload of \(collection.name)/\(stored.id) is damaged or was altered: "
                        + "it lists sealed fields but holds no sealed group"
                )
            }
            let group =
                groupedFields.map { fieldGroup(GroupKey(collection: collection.name, fields: $0), names: grouped) }
                ?? FieldGroup(grouped)
            let groupContext = FieldContext(
                tenant: cipher.tenant,
                collection: collection.name,
                recordID: stored.id,
                group: group
            )
            try cipher.open(encoded: stored.payload[range], with: try key(), context: groupContext, buffers: &buffers) {
                reader in
                do {
                    for name in grouped {
                        // A withheld field's value is stepped over, never made into a value.
                        if !withheld.isEmpty && withheld.contains(name) {
                            try FieldValue.skip(in: &reader)
                            present.insert(name)
                        } else {
                            fields[name] = try FieldValue.decode(from: &reader)
                        }
                    }
                    guard reader.isAtEnd else { throw TutelaError(.invalidInput, "trailing bytes") }
                } catch {
                    throw TutelaError(
                        .ciphertextTampered,
                        "the sealed fields of \(collection.name)/\(stored.id) do not match their names"
                    )
                }
            }
        }
        var record = Record(collection: collection.name, id: stored.id, subject: stored.subject, fields: fields)
        record.withheld = present
        return record
    }

    /// The field name stored as `bytes`: the schema's own string when the collection defines it
    /// (searched from `next`, the position after the previous match), a new one otherwise.
    private static func name(
        _ bytes: ArraySlice<UInt8>,
        in collection: CollectionDefinition,
        from next: inout Int
    ) -> (name: String, index: Int?) {
        let definitions = collection.fields
        for step in 0..<definitions.count {
            let index = (next + step) % definitions.count
            var name = definitions[index].name
            let equal = name.withUTF8 { utf8 in
                utf8.count == bytes.count
                    && bytes.withUnsafeBufferPointer { stored in
                        guard let left = utf8.baseAddress, let right = stored.baseAddress else { return utf8.isEmpty }
                        return memcmp(left, right, utf8.count) == 0
                    }
            }
            if equal {
                next = index + 1
                return (name, index)
            }
        }
        return (String(decoding: bytes, as: UTF8.self), nil)
    }

    /// The sealed group of `key`'s fields, whose names are `names`: encoded once and kept.
    private func fieldGroup(_ key: GroupKey?, names: [String]) -> FieldGroup {
        guard let key else { return FieldGroup(names) }
        if let group = fieldGroups.withLock({ $0[key] }) { return group }
        let group = FieldGroup(names)
        fieldGroups.withLock { groups in
            // A collection has few sets of present fields; the bound only guards memory.
            if groups.count < 4096 { groups[key] = group }
        }
        return group
    }

    /// Seals a detail under a subject's data key, for an audit event: readable while the
    /// subject exists, unreadable once they are erased.
    /// - Returns: base64 of the ciphertext, or nil when the subject has no data key.
    public func sealDetail(_ text: String, forSubject subject: String, requestID: String) async throws -> String? {
        guard let wrapped = try await backend.dataKeys(subjects: [subject])[subject] else { return nil }
        let key = try cipher.unwrap(wrapped, subject: subject)
        let context = FieldContext(tenant: cipher.tenant, collection: "audit", recordID: requestID, field: "detail")
        return Data(try cipher.seal(.string(text), with: key, context: context)).base64EncodedString()
    }

    /// Opens a detail sealed by `sealDetail`.
    /// - Throws: `.subjectErased` when the subject's key is gone.
    public func openDetail(_ sealed: String, forSubject subject: String, requestID: String) async throws -> String {
        guard let bytes = Data(base64Encoded: sealed) else {
            throw TutelaError(.invalidInput, "the detail is not base64")
        }
        guard let wrapped = try await backend.dataKeys(subjects: [subject])[subject] else {
            throw TutelaError(.subjectErased, "the customer was erased; the detail is unreadable")
        }
        let key = try cipher.unwrap(wrapped, subject: subject)
        let context = FieldContext(tenant: cipher.tenant, collection: "audit", recordID: requestID, field: "detail")
        return try cipher.open(Array(bytes), with: key, context: context).displayText
    }

    // MARK: Keys

    /// Erases a subject for good: destroys their data key, so every copy encrypted under it is
    /// unreadable, and removes their records and index entries.
    public func erase(subject: String, at time: Int64) async throws -> ErasureReport {
        defer { cipher.forgetDataKey(subject: subject) }
        return try await backend.erase(subject: subject, at: time)
    }

    /// One re-wrapping batch's outcome.
    public struct RewrapBatch: Sendable {
        /// How many keys were re-wrapped.
        public var count = 0
        /// The cursor for the next batch.
        public var cursor: String?
        /// Keys that failed authentication (their stored form was altered), by subject, with
        /// the error: they are left as they were.
        public var unreadable: [(subject: String, error: TutelaError)] = []
        /// How many keys the batch looked at, re-wrapped or not: 0 when none is left after the
        /// cursor.
        public var examined: Int { count + unreadable.count }
    }

    /// Re-wraps up to `limit` data keys under the active key version in one atomic batch,
    /// taking subjects in order after `afterSubject`.
    ///
    /// A key that fails authentication is left under its version and reported, and the others
    /// are re-wrapped: its subject's data cannot be read either way, and it must not hold up
    /// the rotation of every other key. Any other failure (a disabled version) stops the batch.
    public func rewrapBatch(after afterSubject: String?, limit: Int) async throws -> RewrapBatch {
        let active = keyring.activeVersion
        let keys = try await backend.dataKeys(notWrappedUnder: active, after: afterSubject, limit: limit)
        var result = RewrapBatch(cursor: afterSubject)
        guard let last = keys.last else { return result }
        var batch = WriteBatch()
        for stored in keys {
            do {
                let rewrapped = try cipher.rewrap(stored.wrapped, subject: stored.subject)
                batch.rewrapped.append(
                    (StoredDataKey(subject: stored.subject, wrapped: rewrapped), stored.wrapped.kekVersion)
                )
            } catch let error as TutelaError where error.code == .authenticationFailed {
                result.unreadable.append((stored.subject, error))
            }
        }
        if !batch.rewrapped.isEmpty { try await backend.apply(batch) }
        result.count = batch.rewrapped.count
        result.cursor = last.subject
        return result
    }
}

/// Seals the records of one chunk of a write.
///
/// Sealing runs on every core at once. What it reads of the schema per record (field names,
/// classes, index keys, encoded group names) is copied here per chunk, into storage no other
/// thread touches: shared, reference-counted schema values had every core counting references on
/// the same memory for every field of every record.
private struct RecordSealer {
    /// A field as sealing needs it.
    struct Field {
        let name: String
        let encrypted: Bool
        let lookup: (LookupNormalization, KeyedHMAC)?
    }

    /// A collection's fields, in schema order.
    struct Plan {
        let collection: String
        let fields: [Field]
    }

    private let schema: Schema
    private let lookupKeys: [String: [KeyedHMAC?]]
    private let cipher: EnvelopeCipher
    private var plans: [String: Plan] = [:]
    private var groups: [GroupKey: FieldGroup] = [:]
    private var buffers = FieldBuffers()

    init(schema: Schema, lookupKeys: [String: [KeyedHMAC?]], cipher: EnvelopeCipher) {
        self.schema = schema
        self.lookupKeys = lookupKeys
        self.cipher = cipher
    }

    /// A fresh copy of a string, with storage of its own (short strings have none).
    private static func own(_ text: String) -> String {
        String(decoding: Array(text.utf8), as: UTF8.self)
    }

    private mutating func plan(_ collection: String) throws -> Plan {
        if let plan = plans[collection] { return plan }
        let definition = try schema.collection(collection)
        let keys = lookupKeys[collection]
        let plan = Plan(
            collection: Self.own(definition.name),
            fields: definition.fields.enumerated().map { index, field in
                Field(
                    name: Self.own(field.name),
                    encrypted: field.isEncrypted,
                    // Made from the same schema: every field with a lookup has its key.
                    lookup: field.lookup.flatMap { normalization in keys?[index].map { (normalization, $0) } }
                )
            }
        )
        plans[Self.own(collection)] = plan
        return plan
    }

    private mutating func group(_ key: GroupKey?, names: [String]) -> FieldGroup {
        guard let key else { return FieldGroup(names) }
        if let group = groups[key] { return group }
        let group = FieldGroup(names.map(Self.own))
        groups[key] = group
        return group
    }

    mutating func seal(_ record: Record, with key: DataKey) throws -> StoredRecord {
        let plan = try plan(record.collection)
        var payload = RecordPayload.Writer(fields: plan.fields.count)
        var lookups: [Lookup] = []
        var sealedFields = GroupKey.Fields()
        for index in plan.fields.indices {
            let field = plan.fields[index]
            guard let value = record.fields[field.name], !value.isNull else { continue }
            if field.encrypted {
                payload.append(field.name, sealed: value)
                sealedFields.add(index)
            } else {
                payload.append(field.name, clear: value)
            }
            if let (normalization, indexKey) = field.lookup, case .string(let text) = value,
                let normalized = normalization.indexable(text)
            {
                if lookups.isEmpty { lookups.reserveCapacity(4) }
                lookups.append(Lookup(field: field.name, digest: BlindIndexer.digest(of: normalized, key: indexKey)))
            }
        }
        // Every sealed field of the record in one ciphertext: one AES-GCM operation and one
        // header per record instead of one per field (see Keys/README.md, "Record payloads").
        let sealed = try payload.finish { values, names, output in
            let context = FieldContext(
                tenant: cipher.tenant,
                collection: plan.collection,
                recordID: record.id,
                group: group(GroupKey(collection: plan.collection, fields: sealedFields), names: names)
            )
            try cipher.seal(encoded: values, with: key, context: context, buffers: &buffers, appendingTo: &output)
        }
        return StoredRecord(
            collection: plan.collection,
            id: record.id,
            subject: record.subject,
            payload: sealed,
            lookups: lookups
        )
    }
}

/// A collection and a set of its fields, by position in the schema.
private struct GroupKey: Hashable {
    /// A set of field positions below 64; nil when a field lies beyond (such a group is not kept).
    struct Fields: Hashable {
        private(set) var bits: UInt64? = 0

        /// Adds a position.
        mutating func add(_ index: Int) {
            guard let current = bits, index < 64 else {
                bits = nil
                return
            }
            bits = current | 1 << UInt64(index)
        }

        /// Whether every position in the set is below `index`.
        func isBelow(_ index: Int) -> Bool {
            guard let bits else { return false }
            return index < 64 && bits >> UInt64(index) == 0
        }
    }

    let collection: String
    let fields: Fields

    init?(collection: String, fields: Fields) {
        guard fields.bits != nil else { return nil }
        self.collection = collection
        self.fields = fields
    }
}

/// The batches of one streamed write, made and sealed one at a time as the backend asks.
private actor BatchSealer {
    private let store: EncryptedStore
    private let count: Int
    private let record: @Sendable (Int) throws -> Record
    private var start = 0
    // Data keys found or made so far in this write, by subject.
    private var known: [String: DataKey] = [:]

    init(store: EncryptedStore, count: Int, record: @escaping @Sendable (Int) throws -> Record) {
        self.store = store
        self.count = count
        self.record = record
    }

    /// The next batch sealed; nil after the last.
    func next() async throws -> WriteBatch? {
        guard start < count else { return nil }
        try Task.checkCancellation()
        let end = min(start + EncryptedStore.streamedBatchSize, count)
        let record = self.record
        let part = try await EncryptedStore.concurrentMap(Array(start..<end)) { try record($0) }
        start = end
        // Taken out while sealing, so that adding keys does not copy the whole dictionary.
        var keys = known
        known = [:]
        defer { known = keys }
        return try await store.seal(part, known: &keys)
    }
}

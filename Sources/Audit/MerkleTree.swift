import Crypto

/// RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification.
///
/// Leaves hash as SHA-256(0x00 ‖ data), interior nodes as SHA-256(0x01 ‖ left ‖ right), and a
/// tree of n leaves splits at the largest power of two below n.
public enum MerkleTree {
    /// A 32-byte hash.
    public typealias Hash = [UInt8]

    /// The hash of an empty tree.
    public static let emptyRoot: Hash = Array(SHA256.hash(data: [UInt8]()))

    /// The leaf hash of an entry.
    public static func leafHash(_ data: [UInt8]) -> Hash {
        hash(prefix: 0, data, nil)
    }

    /// The hash of an interior node.
    public static func nodeHash(_ left: Hash, _ right: Hash) -> Hash {
        hash(prefix: 1, left, right)
    }

    /// SHA-256 of a prefix byte and one or two byte strings, fed to the hasher as buffers: the
    /// generic `DataProtocol` path and copying the digest byte by byte cost more than hashing
    /// a leaf (the audit writer hashes every entry and one node per entry on average).
    private static func hash(prefix: UInt8, _ first: [UInt8], _ second: [UInt8]?) -> Hash {
        var hasher = SHA256()
        withUnsafeBytes(of: prefix) { hasher.update(bufferPointer: $0) }
        first.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        second?.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return hasher.finalize().withUnsafeBytes { Array($0) }
    }

    /// The root of the tree over `leaves` (leaf hashes).
    public static func root(_ leaves: ArraySlice<Hash>) -> Hash {
        switch leaves.count {
        case 0: return emptyRoot
        case 1: return leaves[leaves.startIndex]
        default:
            let split = largestPowerOfTwo(below: leaves.count)
            let middle = leaves.startIndex + split
            return nodeHash(root(leaves[leaves.startIndex..<middle]), root(leaves[middle...]))
        }
    }

    /// The audit path of leaf `index` in the tree over `leaves`.
    public static func inclusionProof(index: Int, leaves: ArraySlice<Hash>) -> [Hash] {
        guard leaves.count > 1 else { return [] }
        let split = largestPowerOfTwo(below: leaves.count)
        let middle = leaves.startIndex + split
        if index < split {
            return inclusionProof(index: index, leaves: leaves[leaves.startIndex..<middle]) + [root(leaves[middle...])]
        }
        return inclusionProof(index: index - split, leaves: leaves[middle...]) + [
            root(leaves[leaves.startIndex..<middle])
        ]
    }

    /// The consistency proof between the first `oldSize` leaves and all of `leaves`.
    public static func consistencyProof(oldSize: Int, leaves: ArraySlice<Hash>) -> [Hash] {
        guard oldSize > 0, oldSize < leaves.count else { return [] }
        return subproof(oldSize, leaves, complete: true)
    }

    private static func subproof(_ m: Int, _ leaves: ArraySlice<Hash>, complete: Bool) -> [Hash] {
        let n = leaves.count
        if m == n { return complete ? [] : [root(leaves)] }
        let k = largestPowerOfTwo(below: n)
        let middle = leaves.startIndex + k
        if m <= k {
            return subproof(m, leaves[leaves.startIndex..<middle], complete: complete) + [root(leaves[middle...])]
        }
        return subproof(m - k, leaves[middle...], complete: false) + [root(leaves[leaves.startIndex..<middle])]
    }

    /// Checks an inclusion proof (RFC 9162 section 2.1.3.2).
    public static func verifyInclusion(leaf: Hash, index: Int, size: Int, proof: [Hash], root: Hash) -> Bool {
        guard index >= 0, index < size else { return false }
        var fn = index
        var sn = size - 1
        var result = leaf
        for element in proof {
            guard sn != 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                result = nodeHash(element, result)
                if fn & 1 == 0 {
                    while fn & 1 == 0, fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                result = nodeHash(result, element)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && result == root
    }

    /// Checks a consistency proof (RFC 9162 section 2.1.4.2).
    public static func verifyConsistency(
        oldSize: Int,
        newSize: Int,
        oldRoot: Hash,
        newRoot: Hash,
        proof: [Hash]
    ) -> Bool {
        guard oldSize > 0, oldSize <= newSize else { return oldSize == 0 }
        if oldSize == newSize { return proof.isEmpty && oldRoot == newRoot }
        var path = proof
        if oldSize & (oldSize - 1) == 0 { path.insert(oldRoot, at: 0) }
        guard !path.isEmpty else { return false }
        var fn = oldSize - 1
        var sn = newSize - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for element in path.dropFirst() {
            guard sn != 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(element, fr)
                sr = nodeHash(element, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0, fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = nodeHash(sr, element)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && fr == oldRoot && sr == newRoot
    }

    static func largestPowerOfTwo(below n: Int) -> Int {
        var k = 1
        while k << 1 < n { k <<= 1 }
        return k
    }
}

/// The right edge of a Merkle tree.
///
/// It keeps the roots of the tree's perfect subtrees, largest first. Appending a leaf and
/// computing the root cost O(log n), so the log never rereads old entries to grow.
public struct MerkleFrontier: Sendable {
    /// The number of leaves.
    public internal(set) var size = 0
    var stack: [(height: Int, hash: MerkleTree.Hash)] = []

    /// An empty frontier.
    public init() {}

    /// Appends a leaf hash.
    public mutating func append(_ leaf: MerkleTree.Hash) {
        var node = (height: 0, hash: leaf)
        while let last = stack.last, last.height == node.height {
            stack.removeLast()
            node = (node.height + 1, MerkleTree.nodeHash(last.hash, node.hash))
        }
        stack.append(node)
        size += 1
    }

    /// The current root.
    public var root: MerkleTree.Hash {
        guard var result = stack.last?.hash else { return MerkleTree.emptyRoot }
        for entry in stack.dropLast().reversed() { result = MerkleTree.nodeHash(entry.hash, result) }
        return result
    }
}

extension MerkleFrontier {
    /// The stored form: the size as 8 bytes big-endian, then per subtree one height byte and 32
    /// hash bytes.
    public var encoded: [UInt8] {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: UInt64(size).bigEndian) { bytes.append(contentsOf: $0) }
        for entry in stack {
            bytes.append(UInt8(entry.height))
            bytes.append(contentsOf: entry.hash)
        }
        return bytes
    }

    /// Decodes the stored form; nil when it is not consistent.
    public init?(encoded bytes: [UInt8]) {
        guard bytes.count >= 8, (bytes.count - 8) % 33 == 0 else { return nil }
        let size = bytes.prefix(8).reduce(0) { $0 << 8 | Int($1) }
        var stack: [(height: Int, hash: MerkleTree.Hash)] = []
        var offset = 8
        var total = 0
        while offset < bytes.count {
            let height = Int(bytes[offset])
            guard height < 63, stack.last.map({ $0.height > height }) ?? true else { return nil }
            stack.append((height, Array(bytes[(offset + 1)..<(offset + 33)])))
            total += 1 << height
            offset += 33
        }
        guard total == size else { return nil }
        self.init()
        self.size = size
        self.stack = stack
    }
}

/// The tree over a run of leaves, built as the leaves stream in, keeping only the nodes that the
/// inclusion proofs of the leaves in `kept` use (32 bytes a node, flat per level).
///
/// Pairing each level's nodes in order and carrying an unpaired last node up unchanged builds
/// the same tree as RFC 6962's split at the largest power of two. A proof of leaf `i` takes, at
/// each level, the sibling of the node above `i`; for the leaves of a range those are the nodes
/// between the range's ends at that level, widened to whole pairs. So the memory is about 64
/// bytes per kept leaf plus two nodes per level, whatever the size of the tree: an archive of
/// the oldest entries of a log of a hundred million no longer holds every level of the tree.
public struct MerkleLevels: Sendable {
    /// The leaves whose proofs can be asked for.
    public let kept: Range<Int>
    // Per level: the kept nodes, from `lowestKept(level)` on; how many nodes the level has so
    // far; a left node still waiting for its right sibling.
    private var stored: [[UInt8]] = []
    private var counts: [Int] = []
    private var waiting: [MerkleTree.Hash?] = []
    private var top: MerkleTree.Hash?
    /// The number of leaves.
    public private(set) var size = 0

    /// An empty tree that keeps what the proofs of the leaves in `kept` need (all by default).
    public init(keeping kept: Range<Int> = 0..<Int.max) {
        self.kept = kept
    }

    /// Adds a leaf hash; `close` must follow the last one.
    public mutating func append(_ leaf: MerkleTree.Hash) {
        size += 1
        add(leaf, at: 0)
    }

    /// Carries every unpaired last node up unchanged and takes the root.
    public mutating func close() {
        var level = 0
        while level < counts.count {
            if let last = waiting[level] {
                // A level's only node has nothing above it: it is the root.
                guard counts[level] > 1 else {
                    top = last
                    return
                }
                waiting[level] = nil
                add(last, at: level + 1)
            }
            level += 1
        }
    }

    /// Adds the next node of `level`, and the node it completes above with the one waiting.
    private mutating func add(_ node: MerkleTree.Hash, at level: Int) {
        var hash = node
        var level = level
        while true {
            if level == counts.count {
                stored.append([])
                counts.append(0)
                waiting.append(nil)
            }
            let index = counts[level]
            counts[level] += 1
            if keeps(index, at: level) { stored[level].append(contentsOf: hash) }
            guard index & 1 == 1, let left = waiting[level] else {
                waiting[level] = hash
                return
            }
            waiting[level] = nil
            hash = MerkleTree.nodeHash(left, hash)
            level += 1
        }
    }

    /// The root (after `close`).
    public var root: MerkleTree.Hash { top ?? MerkleTree.emptyRoot }

    /// Leaf `index`'s hash; `index` must be in `kept`.
    public func leaf(_ index: Int) -> MerkleTree.Hash { node(0, index) }

    /// The audit path of leaf `index` (after `close`), as `MerkleTree.inclusionProof` gives it;
    /// `index` must be in `kept`.
    public func inclusionProof(index: Int) -> [MerkleTree.Hash] {
        var proof: [MerkleTree.Hash] = []
        var position = index
        for level in 0..<max(0, counts.count - 1) {
            let sibling = position ^ 1
            if sibling < counts[level] { proof.append(node(level, sibling)) }
            position >>= 1
        }
        return proof
    }

    /// The number of nodes held, for the tests of the memory bound.
    var storedNodes: Int { stored.reduce(0) { $0 + $1.count / 32 } }

    /// The first node of `level` that is kept: the left one of the pair above the range's start.
    private func lowestKept(_ level: Int) -> Int { (kept.lowerBound >> level) & ~1 }

    private func keeps(_ index: Int, at level: Int) -> Bool {
        !kept.isEmpty && index >= lowestKept(level) && index <= ((kept.upperBound - 1) >> level) | 1
    }

    private func node(_ level: Int, _ index: Int) -> MerkleTree.Hash {
        precondition(keeps(index, at: level), "a node outside the kept range was asked for")
        let offset = (index - lowestKept(level)) * 32
        return Array(stored[level][offset..<(offset + 32)])
    }
}

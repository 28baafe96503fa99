import Testing
import TutelaCore

@testable import Audit

@Suite("RFC 6962 Merkle tree")
struct MerkleTreeTests {
    /// The leaves of the Certificate Transparency reference tests and the roots of their first
    /// 1 to 8 leaves.
    static let leaves = [
        "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
    ]
    static let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]

    @Test("roots match the reference values, and the frontier agrees")
    func knownRoots() {
        let hashes = Self.leaves.map { MerkleTree.leafHash(hex($0)) }
        var frontier = MerkleFrontier()
        for size in 1...8 {
            frontier.append(hashes[size - 1])
            #expect(Hex.encode(MerkleTree.root(hashes[0..<size])) == Self.roots[size - 1])
            #expect(Hex.encode(frontier.root) == Self.roots[size - 1])
            #expect(MerkleFrontier(encoded: frontier.encoded)?.root == frontier.root)
        }
        #expect(Hex.encode(MerkleTree.emptyRoot) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test("every inclusion and consistency proof up to 40 leaves verifies, and altered ones do not")
    func proofs() {
        let hashes = (0..<40).map { MerkleTree.leafHash([UInt8(truncatingIfNeeded: $0), 7]) }
        for size in 1...40 {
            let tree = hashes[0..<size]
            let root = MerkleTree.root(tree)
            var levels = MerkleLevels()
            for leaf in tree { levels.append(leaf) }
            levels.close()
            #expect(levels.size == size && levels.root == root)
            for index in 0..<size {
                let proof = MerkleTree.inclusionProof(index: index, leaves: tree)
                #expect(levels.leaf(index) == hashes[index])
                #expect(levels.inclusionProof(index: index) == proof)
                #expect(
                    MerkleTree.verifyInclusion(leaf: hashes[index], index: index, size: size, proof: proof, root: root)
                )
                #expect(
                    !MerkleTree.verifyInclusion(
                        leaf: hashes[(index + 1) % 40],
                        index: index,
                        size: size,
                        proof: proof,
                        root: root
                    )
                )
                if let first = proof.first {
                    var altered = proof
                    altered[0] = MerkleTree.leafHash(first)
                    #expect(
                        !MerkleTree.verifyInclusion(
                            leaf: hashes[index],
                            index: index,
                            size: size,
                            proof: altered,
                            root: root
                        )
                    )
                }
            }
            for oldSize in 1...size {
                let proof = MerkleTree.consistencyProof(oldSize: oldSize, leaves: tree)
                let oldRoot = MerkleTree.root(hashes[0..<oldSize])
                #expect(
                    MerkleTree.verifyConsistency(
                        oldSize: oldSize,
                        newSize: size,
                        oldRoot: oldRoot,
                        newRoot: root,
                        proof: proof
                    )
                )
                if oldSize < size {
                    #expect(
                        !MerkleTree.verifyConsistency(
                            oldSize: oldSize,
                            newSize: size,
                            oldRoot: root,
                            newRoot: root,
                            proof: proof
                        )
                    )
                }
            }
        }
    }

    @Test(
        "a tree that keeps a range gives that range's leaves, proofs and root as the whole tree does, in bounded memory"
    )
    func keptRanges() {
        let hashes = (0..<70).map { MerkleTree.leafHash([UInt8(truncatingIfNeeded: $0), 9]) }
        for size in 1...70 {
            let tree = hashes[0..<size]
            let root = MerkleTree.root(tree)
            for (from, to) in [(0, size), (0, 1), (size - 1, size), (size / 3, size / 2 + 1), (size / 2, size)]
            where from < to {
                var levels = MerkleLevels(keeping: from..<to)
                for leaf in tree { levels.append(leaf) }
                levels.close()
                #expect(levels.size == size && levels.root == root)
                for index in from..<to {
                    #expect(levels.leaf(index) == hashes[index])
                    #expect(
                        levels.inclusionProof(index: index) == MerkleTree.inclusionProof(index: index, leaves: tree)
                    )
                }
                // Two nodes a kept leaf at the bottom, halving each level up, and a pair per level
                // for the range's ends: never the whole tree.
                let height = Int.bitWidth - (size - 1).leadingZeroBitCount + 1
                #expect(levels.storedNodes <= 2 * (to - from) + 4 * height)
            }
        }
        var oldest = MerkleLevels(keeping: 0..<10)
        for index in 0..<100_000 { oldest.append(MerkleTree.leafHash([UInt8(truncatingIfNeeded: index)])) }
        oldest.close()
        #expect(oldest.storedNodes < 100)
    }
}

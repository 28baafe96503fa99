import Governance
import Testing
import TutelaCore

@Suite("Hex and request ids")
struct HexTests {
    @Test("a 64-bit value is 16 lowercase digits, most significant first, as its bytes would be")
    func integer() {
        #expect(Hex.encode(UInt64(0x0123_4567_89ab_cdef)) == "0123456789abcdef")
        #expect(Hex.encode(UInt64(0)) == "0000000000000000")
        #expect(Hex.encode(UInt64.max) == "ffffffffffffffff")
        for _ in 0..<100 {
            let value = UInt64.random(in: .min ... .max)
            let bytes = (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) }
            #expect(Hex.encode(value) == Hex.encode(bytes))
        }
    }

    @Test("request ids are 16 hex digits and differ, also when made concurrently")
    func requestIDs() async {
        let ids = await withTaskGroup(of: [String].self) { group in
            for _ in 0..<4 { group.addTask { (0..<25_000).map { _ in Tutela.makeRequestID() } } }
            return await group.reduce(into: [String]()) { $0 += $1 }
        }
        #expect(ids.count == 100_000)
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.utf8.count == 16 && Hex.decode($0) != nil })
    }
}

import Crypto
import Foundation
import KeyManagement
import TutelaCore

/// Throughput of the primitives under the store: AES-256-GCM and AES-256-SIV.
enum CryptoBenchmark {
    static func run(into report: BenchReport) throws {
        let key = SymmetricKey(size: .bits256)
        let block = [UInt8](repeating: 0x5a, count: 4096)
        let blocks = 4000
        let gcmSeconds = try measure {
            for _ in 0..<blocks { _ = try AES.GCM.seal(block, using: key) }
        }
        report.record("crypto", "aes_gcm_4k_mb_per_s", Double(blocks * block.count) / gcmSeconds / 1e6)

        let siv = try AESSIV(key: [UInt8](repeating: 7, count: 64))
        let sivSeconds = try measure {
            for _ in 0..<blocks { _ = try siv.seal(block, authenticating: [[1, 2, 3]]) }
        }
        report.record("crypto", "aes_siv_4k_mb_per_s", Double(blocks * block.count) / sivSeconds / 1e6)

        let small = [UInt8](repeating: 0x41, count: 32)
        let aad = [UInt8](repeating: 0x42, count: 90)
        let smallCount = 50_000
        let smallSeconds = try measure {
            for _ in 0..<smallCount { _ = try AES.GCM.seal(small, using: key, authenticating: aad) }
        }
        report.record("crypto", "aes_gcm_32b_ns", smallSeconds / Double(smallCount) * 1e9)
        let hashSeconds = measure {
            for _ in 0..<smallCount { _ = SHA256.hash(data: aad) }
        }
        report.record("crypto", "sha256_90b_ns", hashSeconds / Double(smallCount) * 1e9)

        let keyring = Keyring.generate(now: 0)
        let cipher = EnvelopeCipher(keyring: keyring, tenant: "bench")
        let (dataKey, _) = try cipher.makeDataKey(forSubject: "s")
        let context = FieldContext(tenant: "bench", collection: "customers", recordID: "c000001", field: "email")
        let value = FieldValue.string("someone.somewhere@example.com")
        let fields = 50_000
        // As the store seals and opens the fields of a record: working buffers reused.
        var buffers = FieldBuffers()
        var sealed: [UInt8] = []
        let sealSeconds = try measure {
            for _ in 0..<fields {
                sealed.removeAll(keepingCapacity: true)
                try cipher.seal(value, with: dataKey, context: context, buffers: &buffers, appendingTo: &sealed)
            }
        }
        report.record("crypto", "field_seal_ns", sealSeconds / Double(fields) * 1e9)
        let openSeconds = try measure {
            for _ in 0..<fields { _ = try cipher.open(sealed[...], with: dataKey, context: context, buffers: &buffers) }
        }
        report.record("crypto", "field_open_ns", openSeconds / Double(fields) * 1e9)

        let keyCount = 20_000
        let keySeconds = try measure {
            for _ in 0..<keyCount { _ = try cipher.makeDataKey(forSubject: "c000001") }
        }
        report.record("crypto", "data_key_create_ns", keySeconds / Double(keyCount) * 1e9)

        let indexer = BlindIndexer(keyring: keyring, tenant: "bench")
        let indexSeconds = measure {
            for _ in 0..<fields {
                _ = indexer.digest(of: "someone.somewhere@example.com", collection: "customers", field: "email")
            }
        }
        report.record("crypto", "blind_index_ns", indexSeconds / Double(fields) * 1e9)

        let tokenizer = DeterministicTokenizer(keyring: keyring, tenant: "bench")
        let tokenSeconds = try measure {
            for _ in 0..<fields {
                _ = try tokenizer.token(for: "someone.somewhere@example.com", domain: "customers.email")
            }
        }
        report.record("crypto", "siv_token_ns", tokenSeconds / Double(fields) * 1e9)
    }
}

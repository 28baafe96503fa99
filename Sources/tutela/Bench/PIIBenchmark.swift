import Foundation
import Masking

/// PII detection quality on the project's labelled set, and throughput on customer-service text.
enum PIIBenchmark {
    static func run(into report: BenchReport) {
        let set = PIIEvaluationSet.generate(count: 5000, seed: 3)
        let detector = PIIDetector()
        let scores = set.score(detector)
        var f1Sum = 0.0
        for type in PIIType.allCases {
            guard let score = scores[type] else { continue }
            report.record("pii", "\(type.rawValue)_precision", score.precision)
            report.record("pii", "\(type.rawValue)_recall", score.recall)
            report.record("pii", "\(type.rawValue)_f1", score.f1)
            f1Sum += score.f1
        }
        report.record("pii", "macro_f1", f1Sum / Double(max(1, scores.count)))
        let texts = set.messages.map(\.text)
        let bytes = texts.reduce(0) { $0 + $1.utf8.count }
        let rounds = 5
        var findings = 0
        let seconds = measure {
            for _ in 0..<rounds {
                for text in texts { findings += detector.findings(in: text).count }
            }
        }
        report.record("pii", "detect_mb_per_s", Double(bytes * rounds) / seconds / 1e6)
        report.record("pii", "messages", Double(texts.count))
    }
}

/// Percentiles of latency samples (nanoseconds), reported in milliseconds.
struct LatencySummary: Sendable, Codable {
    var count: Int
    var p50: Double
    var p95: Double
    var p99: Double
    var max: Double

    init(nanos samples: [UInt64]) {
        let sorted = samples.sorted()
        count = sorted.count
        func at(_ q: Double) -> Double {
            guard !sorted.isEmpty else { return .nan }
            let index = Swift.min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.up)) - 1)
            return Double(sorted[Swift.max(0, index)]) / 1e6
        }
        p50 = at(0.50)
        p95 = at(0.95)
        p99 = at(0.99)
        max = sorted.last.map { Double($0) / 1e6 } ?? .nan
    }
}

/// The median of several runs' values (the middle one, or the mean of the two middle ones).
func median(_ values: [Double]) -> Double {
    let sorted = values.filter { !$0.isNaN }.sorted()
    guard !sorted.isEmpty else { return .nan }
    let mid = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

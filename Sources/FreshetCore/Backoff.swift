/// Capped exponential backoff with full jitter, for reconnects.
public struct Backoff: Sendable {
    public var base: Double
    public var cap: Double
    public private(set) var attempt = 0

    public init(base: Double = 0.1, cap: Double = 10) {
        self.base = base
        self.cap = cap
    }

    /// The next delay in seconds: a random value up to `min(cap, base * 2^attempt)`, at least `base / 2`.
    public mutating func next() -> Double {
        let ceiling = min(cap, base * Double(1 << min(attempt, 20)))
        attempt += 1
        return max(base / 2, Double.random(in: 0...ceiling))
    }

    public mutating func reset() { attempt = 0 }
}

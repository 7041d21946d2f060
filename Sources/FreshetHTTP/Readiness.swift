/// Answers `/readyz`: the reasons Freshet is not ready, empty when it is.
public struct Readiness: Sendable {
    public let reasons: @Sendable () -> [String]

    public init(reasons: @escaping @Sendable () -> [String]) {
        self.reasons = reasons
    }
}

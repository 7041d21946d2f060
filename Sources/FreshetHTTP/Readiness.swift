/// Answers `/readyz`: the reasons Freshet is not ready, empty when it is.
package struct Readiness: Sendable {
    package let reasons: @Sendable () -> [String]

    package init(reasons: @escaping @Sendable () -> [String]) {
        self.reasons = reasons
    }
}

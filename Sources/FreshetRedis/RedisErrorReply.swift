/// An error reply from Redis (`-READONLY You can't write against a read only replica.`), classified.
///
/// Every reply is checked: an error reply is a failure of its command, never "done". Replies that mean "this server
/// cannot take writes now" are an outage, handled like a lost connection (the backlog is kept and retried); any other
/// is a refusal of that one command.
package struct RedisErrorReply: Sendable, Equatable, CustomStringConvertible {
    /// The reply as Redis sent it, without the leading `-`.
    package let text: String

    package init(_ text: String) { self.text = text }

    /// The reply's first word (`READONLY`, `OOM`, `NOPERM`, `ERR`, …): the `reply` label of
    /// `freshet_redis_errors_total`.
    package var word: String {
        let first = text.prefix { $0 != " " }
        // Keep the label set small and printable: an unexpected reply is counted as OTHER.
        guard !first.isEmpty, first.count <= 24, first.allSatisfy({ $0.isUppercase || $0.isNumber || $0 == "_" }) else {
            return "OTHER"
        }
        return String(first)
    }

    /// The first words of "not now" replies: the server is a replica (a failover moved the master), loading its
    /// data set, cut off from its master, failing to persist, running a script, or a cluster slot is moving (a
    /// redirection that still did not settle after the cluster client's retries).
    package static let notNowWords: Set<String> = [
        "READONLY", "LOADING", "MASTERDOWN", "MISCONF", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS", "MOVED", "ASK",
    ]

    /// Whether the reply means the server cannot take writes now (an outage), rather than a refusal of one command.
    package var isNotNow: Bool { Self.notNowWords.contains(word) }

    /// The reply shortened for a log line or `/readyz` (a reply never carries a value Freshet sent).
    package var description: String { text.count > 200 ? String(text.prefix(200)) + "…" : text }
}

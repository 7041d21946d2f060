/// One thing to do in Redis for a change.
public enum RedisOperation: Sendable, Hashable {
    /// `UNLINK key`.
    case unlink(String)
    /// `SET key value [PX ttl]`.
    case set(key: String, value: String, ttlMilliseconds: Int?)
    /// `SCAN MATCH pattern` + `UNLINK` in batches: every key a template can render (truncate, gap repair).
    case unlinkMatching(pattern: String)

    /// The key or pattern acted on.
    public var key: String {
        switch self {
        case .unlink(let key), .set(let key, _, _): return key
        case .unlinkMatching(let pattern): return pattern
        }
    }

    /// The metric label: `delete`, `set` or `flush`.
    public var action: String {
        switch self {
        case .unlink: return "delete"
        case .set: return "set"
        case .unlinkMatching: return "flush"
        }
    }

    /// The command's arguments, for a single-key operation.
    public var arguments: [String]? {
        switch self {
        case .unlink(let key): return ["UNLINK", key]
        case .set(let key, let value, let ttl?): return ["SET", key, value, "PX", String(ttl)]
        case .set(let key, let value, nil): return ["SET", key, value]
        case .unlinkMatching: return nil
        }
    }
}

/// What a credential lets a subscriber read.
public enum AccessGrant: Sendable, Equatable {
    /// Any topic (a static token, or no auth configured).
    case everything
    /// The topics a JWT's `topics` claim lists, as patterns.
    case topics([TopicPattern])
}

/// Decides which topic patterns a subscriber gets, given what it asked for and what its credential grants.
public enum AccessPolicy {
    public enum Decision: Sendable, Equatable {
        /// Subscribe to these patterns (empty: every topic).
        case allowed([TopicPattern])
        /// 403, with the reason.
        case forbidden(String)
    }

    /// A requested pattern is allowed only when every topic it can match is matched by a claim pattern
    /// (`users/*` grants `users/1`; `users/1` does not grant `users/*`). No request means every topic the grant allows.
    public static func decide(requested: [TopicPattern], grant: AccessGrant) -> Decision {
        switch grant {
        case .everything:
            return .allowed(requested)
        case .topics(let claims):
            guard !claims.isEmpty else { return .forbidden("the token grants no topics") }
            guard !requested.isEmpty else { return .allowed(claims) }
            for pattern in requested where !claims.contains(where: { pattern.isCovered(by: $0) }) {
                return .forbidden("the token does not grant topic \"\(pattern.source)\"")
            }
            return .allowed(requested)
        }
    }
}

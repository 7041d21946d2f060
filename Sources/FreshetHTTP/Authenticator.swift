import Crypto
import Foundation
import FreshetCore

/// Checks `/events` credentials: static bearer tokens, and JWTs (HS256/384/512, RS256, ES256) with a `topics` claim,
/// verified with jwt-kit (`JWTVerifier`).
///
/// Static tokens are compared as SHA-256 digests without an early exit. Tokens are never logged.
package struct Authenticator: Sendable {
    /// Why a request was refused with 401.
    package struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        package var reason: String
        package var description: String { reason }
    }

    /// A JWT setting that cannot be used (unreadable file, wrong key type); `field` is its configuration path.
    package struct SetupError: Error, Sendable, CustomStringConvertible {
        package var field: String
        package var message: String
        package var description: String { "\(field): \(message)" }

        init(_ field: String, _ message: String) {
            self.field = field
            self.message = message
        }
    }

    private let tokenDigests: [[UInt8]]
    private let jwt: JWTVerifier?

    /// Reads the key files now, so that a bad setting stops Freshet at start (exit 2), not on the first request.
    package init(_ settings: AuthSettings) throws(SetupError) {
        tokenDigests = settings.tokens.map { Array(SHA256.hash(data: Data($0.utf8))) }
        jwt = try settings.jwt.map { settings throws(SetupError) in try JWTVerifier(settings) }
    }

    /// Equal-length byte arrays compared without an early exit.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<a.count { difference |= a[i] ^ b[i] }
        return difference == 0
    }

    /// What `token` grants, or why it is refused. Either kind is accepted when both are configured. `now` is the
    /// clock for `exp` and `nbf`.
    package func authenticate(_ token: String?, now: Date = Date()) async -> Result<AccessGrant, Failure> {
        guard let token, !token.isEmpty else { return .failure(Failure(reason: "missing token")) }
        let digest = Array(SHA256.hash(data: Data(token.utf8)))
        var matched = false
        for candidate in tokenDigests where Self.constantTimeEqual(candidate, digest) { matched = true }
        if matched { return .success(.everything) }
        guard let jwt else { return .failure(Failure(reason: "invalid token")) }
        return await jwt.verify(token, now: now)
    }
}

import Crypto
import Foundation
import FreshetCore

/// Checks `/events` credentials: static bearer tokens and HS256 JWTs with a `topics` claim.
///
/// Secrets are compared in constant time (SHA-256 digests compared without an early exit, and
/// `HMAC.isValidAuthenticationCode`). Tokens are never logged.
public struct Authenticator: Sendable {
    /// Why a request was refused with 401.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    private let tokenDigests: [[UInt8]]
    private let jwtSecret: [UInt8]?

    public init(_ settings: AuthSettings) {
        tokenDigests = settings.tokens.map { Array(SHA256.hash(data: Data($0.utf8))) }
        jwtSecret = settings.jwtSecret.map { Array($0.utf8) }
    }

    /// Equal-length byte arrays compared without an early exit.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<a.count { difference |= a[i] ^ b[i] }
        return difference == 0
    }

    /// What `token` grants, or why it is refused. Either kind is accepted when both are configured.
    public func authenticate(_ token: String?, now: Date = Date()) -> Result<AccessGrant, Failure> {
        guard let token, !token.isEmpty else { return .failure(Failure(reason: "missing token")) }
        let digest = Array(SHA256.hash(data: Data(token.utf8)))
        var matched = false
        for candidate in tokenDigests where Self.constantTimeEqual(candidate, digest) { matched = true }
        if matched { return .success(.everything) }
        guard let jwtSecret else { return .failure(Failure(reason: "invalid token")) }
        return verifyJWT(token, key: SymmetricKey(data: jwtSecret), now: now)
    }

    func verifyJWT(_ token: String, key: SymmetricKey, now: Date) -> Result<AccessGrant, Failure> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerData = base64URL(parts[0]), let payloadData = base64URL(parts[1]),
              let signature = base64URL(parts[2])
        else { return .failure(Failure(reason: "invalid token")) }
        guard case .object(let header)? = try? JSONParser.parse([UInt8](headerData)), header["alg"] == .string("HS256") else {
            return .failure(Failure(reason: "invalid token: only HS256 JWTs are accepted"))
        }
        let signed = Data((parts[0] + "." + parts[1]).utf8)
        guard HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signed, using: key) else {
            return .failure(Failure(reason: "invalid token signature"))
        }
        guard case .object(let claims)? = try? JSONParser.parse([UInt8](payloadData)) else {
            return .failure(Failure(reason: "invalid token payload"))
        }
        let nowSeconds = now.timeIntervalSince1970
        if case .number(let exp)? = claims["exp"], let expiry = Double(exp), nowSeconds >= expiry {
            return .failure(Failure(reason: "token expired"))
        }
        if case .number(let nbf)? = claims["nbf"], let notBefore = Double(nbf), nowSeconds < notBefore {
            return .failure(Failure(reason: "token not yet valid"))
        }
        switch claims["topics"] {
        case .array(let items)?:
            return .success(.topics(items.compactMap(\.stringValue).filter { !$0.isEmpty }.map(TopicPattern.init)))
        case .string(let single)?:
            return .success(.topics(single.isEmpty ? [] : [TopicPattern(single)]))
        default:
            return .success(.topics([]))
        }
    }

    private func base64URL(_ text: Substring) -> Data? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }
}

import Foundation
import FreshetCore
import JWTKit

/// The JWT half of ``Authenticator``.
///
/// jwt-kit ignores the header's `alg` when it picks a key (it goes by `kid`, else the collection's default key,
/// and verifies with that key's own algorithm), so the header is read here first: `alg` must be one Freshet accepts
/// and equal to the algorithm of the key that jwt-kit will use. One collection per HMAC digest, because one secret
/// serves HS256/384/512 and a collection holds one default key.
struct JWTVerifier: Sendable {
    enum PublicKey: Sendable {
        case rsa(JWTKit.Insecure.RSA.PublicKey)  // `Insecure` alone is ambiguous: Crypto has one too
        case es256(ES256PublicKey)

        var algorithm: String {
            switch self {
            case .rsa: "RS256"
            case .es256: "ES256"
            }
        }
    }

    static let hmacAlgorithms: [(name: String, digest: DigestAlgorithm, minimumBytes: Int)] = [
        ("HS256", .sha256, 32), ("HS384", .sha384, 48), ("HS512", .sha512, 64),
    ]

    /// "HS256"/"HS384"/"HS512" → a collection whose only key is the secret. A digest the secret is too short for
    /// is left out (jwt-kit's HMAC signer asserts key length ≥ digest length: a crash in a debug build).
    let hmac: [String: JWTKeyCollection]
    let hasSecret: Bool
    /// The `public_key` or `jwks` keys; `nil` when neither is configured.
    let asymmetric: JWTKeyCollection?
    /// JWKS only: kid → algorithm of that key. Empty for a PEM key, which is used whatever the token's kid.
    let algorithmByKID: [String: String]
    /// The algorithm of the key jwt-kit falls back to (the PEM key, or a JWKS's only key); `nil` for a JWKS of several.
    let defaultAlgorithm: String?
    let leeway: TimeInterval
    let audience: String?
    let issuer: String?
    /// Puts the parsed keys into the collections on first use (jwt-kit's `add` methods are actor-isolated, so they
    /// cannot run in this synchronous init; nothing is started here).
    let registry: JWTKeyRegistry

    init(_ settings: JWTSettings) throws(Authenticator.SetupError) {
        // The configuration parser has checked: one of secret/public_key/jwks, a secret of 32 bytes or more, leeway ≥ 0.
        leeway = settings.leeway
        audience = settings.audience
        issuer = settings.issuer

        var hmac: [String: JWTKeyCollection] = [:]
        var hmacKeys: [(JWTKeyCollection, HMACKey, DigestAlgorithm)] = []
        if let secret = settings.secret {
            let bytes = Array(secret.utf8)
                for entry in Self.hmacAlgorithms where bytes.count >= entry.minimumBytes {
                let collection = JWTKeyCollection()
                hmac[entry.name] = collection
                hmacKeys.append((collection, HMACKey(from: bytes), entry.digest))
            }
        }
        self.hmac = hmac
        hasSecret = settings.secret != nil

        var keys: [(kid: String?, key: PublicKey)] = []
        if let path = settings.publicKeyPath {
            keys = [(nil, try JWTKeyFiles.loadPEM(path))]
        } else if let path = settings.jwksPath {
            keys = try JWTKeyFiles.loadJWKS(path)
        }
        let asymmetricCollection = keys.isEmpty ? nil : JWTKeyCollection()
        asymmetric = asymmetricCollection
        algorithmByKID = Dictionary(uniqueKeysWithValues: keys.compactMap { entry in entry.kid.map { ($0, entry.key.algorithm) } })
        defaultAlgorithm = keys.count == 1 ? keys[0].key.algorithm : nil

        registry = JWTKeyRegistry(hmac: hmacKeys, asymmetric: asymmetricCollection, publicKeys: keys)
    }

    func verify(_ token: String, now: Date) async -> Result<AccessGrant, Authenticator.Failure> {
        func refuse(_ reason: String) -> Result<AccessGrant, Authenticator.Failure> {
            .failure(Authenticator.Failure(reason: reason))
        }
        guard let header = Self.header(of: token) else { return refuse("malformed token") }
        guard let alg = header.alg else { return refuse("malformed token: no alg") }

        let collection: JWTKeyCollection
        switch alg {
        case "none":
            return refuse("invalid token: unsigned tokens (alg none) are not accepted")
        case "HS256", "HS384", "HS512":
            guard let found = hmac[alg] else {
                return refuse(hasSecret ? "invalid token: the secret is too short for \(alg)" : "invalid token: \(alg) is not accepted")
            }
            collection = found
        case "RS256", "ES256":
            guard let asymmetric else { return refuse("invalid token: \(alg) is not accepted") }
            let keyAlgorithm: String?
            if algorithmByKID.isEmpty {
                keyAlgorithm = defaultAlgorithm  // the PEM key: jwt-kit uses it whatever the kid
            } else if let kid = header.kid {
                guard let known = algorithmByKID[kid] else { return refuse("invalid token: unknown kid") }
                keyAlgorithm = known
            } else {
                guard let only = defaultAlgorithm else { return refuse("invalid token: no kid") }
                keyAlgorithm = only
            }
            guard keyAlgorithm == alg else { return refuse("invalid token: \(alg) does not match the key's algorithm") }
            collection = asymmetric
        default:
            return refuse("invalid token: \(alg) is not accepted")
        }

        await registry.registerOnce()
        let claims: FreshetClaims
        do {
            // Belt and braces: the key jwt-kit will pick for this header must be of the header's algorithm.
            let key = try await collection.getKey(for: header.kid.map { JWKIdentifier(string: $0) }, alg: alg)
            guard key.name == alg else { return refuse("invalid token: \(alg) does not match the key's algorithm") }
            claims = try await collection.verify(token, as: FreshetClaims.self)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            return refuse("invalid token signature")
        } catch let error as JWTError where error.errorType == .malformedToken {
            return refuse("malformed token")  // includes a non-numeric exp/nbf (decoded only after the signature checked)
        } catch {
            return refuse("invalid token")  // e.g. an ES256 signature that is not 64 raw bytes (CryptoKitError)
        }

        if let exp = claims.exp {
            do { try exp.verifyNotExpired(currentDate: now.addingTimeInterval(-leeway)) } catch { return refuse("token expired") }
        }
        // Not NotBeforeClaim.verifyNotBefore: it refuses nbf == now; RFC 7519 (and Freshet so far) accept it.
        if let nbf = claims.nbf, nbf.value > now.addingTimeInterval(leeway) { return refuse("token not yet valid") }
        if let audience {
            guard let aud = claims.aud, (try? aud.verifyIntendedAudience(includes: audience)) != nil else {
                return refuse("token not intended for this audience")
            }
        }
        if let issuer, claims.iss?.value != issuer { return refuse("token issuer not accepted") }
        return .success(.topics(claims.topics.map(TopicPattern.init)))
    }

    /// The header, read before verification only to route the token. `nil` when it is not base64url JSON.
    static func header(of token: String) -> JWTHeader? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let data = base64URL(parts[0]) else { return nil }
        return try? JSONDecoder().decode(JWTHeader.self, from: data)
    }

    static func base64URL(_ text: Substring) -> Data? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }
}

/// Adds the parsed keys to jwt-kit's collections, once, on the first verification.
actor JWTKeyRegistry {
    private var pending: (hmac: [(JWTKeyCollection, HMACKey, DigestAlgorithm)], asymmetric: JWTKeyCollection?,
                          publicKeys: [(kid: String?, key: JWTVerifier.PublicKey)])?

    init(hmac: [(JWTKeyCollection, HMACKey, DigestAlgorithm)], asymmetric: JWTKeyCollection?,
         publicKeys: [(kid: String?, key: JWTVerifier.PublicKey)]) {
        pending = (hmac, asymmetric, publicKeys)
    }

    func registerOnce() async {
        guard let (hmac, asymmetric, publicKeys) = pending else { return }
        pending = nil
        for (collection, key, digest) in hmac {
            await collection.add(hmac: key, digestAlgorithm: digest)
        }
        guard let asymmetric else { return }
        for (kid, key) in publicKeys {
            let identifier = kid.map { JWKIdentifier(string: $0) }
            switch key {
            case .rsa(let rsa): await asymmetric.add(rsa: rsa, digestAlgorithm: .sha256, kid: identifier)
            case .es256(let ec): await asymmetric.add(ecdsa: ec, kid: identifier)
            }
        }
    }
}

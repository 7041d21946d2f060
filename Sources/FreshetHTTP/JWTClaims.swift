import Foundation
import JWTKit

/// The claims Freshet reads. `exp`/`nbf`, when present, must be JSON numbers: decoded with `decode`, not
/// `decodeIfPresent`, so a string or `null` fails the payload (jwt-kit reports `JWTError.malformedToken`).
/// Time claims are checked by ``JWTVerifier`` against an injectable clock, not in ``verify(using:)``.
struct FreshetClaims: JWTPayload {
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var aud: AudienceClaim?
    var iss: IssuerClaim?
    /// `topics`: a list of patterns or one pattern; anything else (or absent) grants nothing. Empty strings dropped.
    var topics: [String]

    enum CodingKeys: String, CodingKey { case exp, nbf, aud, iss, topics }

    init(exp: Date? = nil, nbf: Date? = nil, aud: [String]? = nil, iss: String? = nil, topics: [String] = []) {
        self.exp = exp.map { ExpirationClaim(value: $0) }
        self.nbf = nbf.map { NotBeforeClaim(value: $0) }
        self.aud = aud.map { AudienceClaim(value: $0) }
        self.iss = iss.map { IssuerClaim(value: $0) }
        self.topics = topics
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        exp = c.contains(.exp) ? try c.decode(ExpirationClaim.self, forKey: .exp) : nil
        nbf = c.contains(.nbf) ? try c.decode(NotBeforeClaim.self, forKey: .nbf) : nil
        // Ill-typed aud/iss count as absent: they only matter when an audience/issuer is configured, and then fail it.
        aud = try? c.decodeIfPresent(AudienceClaim.self, forKey: .aud)
        iss = try? c.decodeIfPresent(IssuerClaim.self, forKey: .iss)
        if let single = try? c.decode(String.self, forKey: .topics) {
            topics = single.isEmpty ? [] : [single]
        } else if var list = try? c.nestedUnkeyedContainer(forKey: .topics) {
            var found: [String] = []
            while !list.isAtEnd {
                if let topic = try? list.decode(String.self) {
                    if !topic.isEmpty { found.append(topic) }
                } else if (try? list.decode(SkipValue.self)) == nil {
                    break
                }
            }
            topics = found
        } else {
            topics = []
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(exp, forKey: .exp)
        try c.encodeIfPresent(nbf, forKey: .nbf)
        try c.encodeIfPresent(aud, forKey: .aud)
        try c.encodeIfPresent(iss, forKey: .iss)
        try c.encode(topics, forKey: .topics)
    }

    /// Required by `JWTPayload`; jwt-kit calls it after the signature checks. Nothing here: see the type's doc.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Consumes one array element of any type (a non-string in `topics`).
private struct SkipValue: Decodable {
    init(from decoder: any Decoder) throws {}
}

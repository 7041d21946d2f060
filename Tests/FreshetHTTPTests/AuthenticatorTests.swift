import Crypto
import CryptoExtras
import Foundation
import FreshetCore
@testable import FreshetHTTP
import Testing

/// JWT verification (jwt-kit underneath) against tokens made here, signed with keys made here: every accepted
/// algorithm, and every way a token must be refused.
struct AuthenticatorTests {
    static let secret = String(repeating: "k", count: 64)
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let rsa = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
    static let ec = P256.Signing.PrivateKey()

    static func b64(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// A token with this header and payload, signed as `alg` says (`none`: no signature).
    static func token(alg: String, kid: String? = nil, claims: String, hmacKey: String = secret) throws -> String {
        let kidField = kid.map { #","kid":"\#($0)""# } ?? ""
        let head = b64(Data(#"{"alg":"\#(alg)","typ":"JWT"\#(kidField)}"#.utf8)) + "." + b64(Data(claims.utf8))
        let input = Data(head.utf8)
        let signature: Data
        switch alg {
        case "HS256": signature = Data(HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: Data(hmacKey.utf8))))
        case "HS384": signature = Data(HMAC<SHA384>.authenticationCode(for: input, using: SymmetricKey(data: Data(hmacKey.utf8))))
        case "HS512": signature = Data(HMAC<SHA512>.authenticationCode(for: input, using: SymmetricKey(data: Data(hmacKey.utf8))))
        case "RS256": signature = try rsa.signature(for: SHA256.hash(data: input), padding: .insecurePKCS1v1_5).rawRepresentation
        case "ES256": signature = try ec.signature(for: input).rawRepresentation
        default: signature = Data()
        }
        return head + "." + b64(signature)
    }

    static let topics = #"{"topics":["users/*"],"exp":1800000100}"#

    func authenticator(_ jwt: JWTSettings, tokens: [String] = []) throws -> Authenticator {
        try Authenticator(AuthSettings(tokens: tokens, jwt: jwt))
    }

    func file(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("freshet-jwt-\(UUID().uuidString)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func accepted(_ auth: Authenticator, _ token: String) async -> AccessGrant? {
        if case .success(let grant) = await auth.authenticate(token, now: Self.now) { return grant }
        return nil
    }

    func refusal(_ auth: Authenticator, _ token: String) async -> String? {
        if case .failure(let failure) = await auth.authenticate(token, now: Self.now) { return failure.reason }
        return nil
    }

    @Test func everyHMACDigestWithALongEnoughSecret() async throws {
        let auth = try authenticator(JWTSettings(secret: Self.secret))
        for alg in ["HS256", "HS384", "HS512"] {
            #expect(await accepted(auth, try Self.token(alg: alg, claims: Self.topics)) == .topics([TopicPattern("users/*")]), "\(alg)")
        }
        let short = try authenticator(JWTSettings(secret: String(repeating: "s", count: 32)))
        let hs512 = try Self.token(alg: "HS512", claims: Self.topics, hmacKey: String(repeating: "s", count: 32))
        #expect(await refusal(short, hs512) != nil)  // a 32-byte secret is too short for HS512
        #expect(await refusal(auth, try Self.token(alg: "HS256", claims: Self.topics, hmacKey: String(repeating: "x", count: 64))) == "invalid token signature")
    }

    @Test func unsignedTokensAndForeignAlgorithmsAreRefused() async throws {
        let auth = try authenticator(JWTSettings(secret: Self.secret))
        #expect(await refusal(auth, try Self.token(alg: "none", claims: Self.topics)) != nil)
        #expect(await refusal(auth, try Self.token(alg: "RS256", claims: Self.topics)) != nil)  // no public key configured
        #expect(await refusal(auth, "not.a.jwt") != nil)
        #expect(await refusal(auth, "garbage") != nil)
    }

    @Test func anRSAKeyIsNeverUsedAsAnHMACSecret() async throws {
        let pem = Self.rsa.publicKey.pemRepresentation
        let auth = try authenticator(JWTSettings(publicKeyPath: try file(pem)))
        #expect(await accepted(auth, try Self.token(alg: "RS256", claims: Self.topics)) != nil)
        // The classic confusion: HS256 "signed" with the public key's PEM text as the secret.
        #expect(await refusal(auth, try Self.token(alg: "HS256", claims: Self.topics, hmacKey: pem)) != nil)
        #expect(await refusal(auth, try Self.token(alg: "ES256", claims: Self.topics)) != nil)  // not the key's algorithm
    }

    @Test func es256WithAPEMKey() async throws {
        let auth = try authenticator(JWTSettings(publicKeyPath: try file(Self.ec.publicKey.pemRepresentation)))
        #expect(await accepted(auth, try Self.token(alg: "ES256", claims: Self.topics)) != nil)
        #expect(await refusal(auth, try Self.token(alg: "RS256", claims: Self.topics)) != nil)
    }

    @Test func aJWKSPicksTheKeyByKid() async throws {
        let primitives = try Self.rsa.publicKey.getKeyPrimitives()
        let xy = Self.ec.publicKey.rawRepresentation
        let jwks = """
            {"keys":[
              {"kty":"RSA","kid":"r1","use":"sig","alg":"RS256","n":"\(Self.b64(primitives.modulus))","e":"\(Self.b64(primitives.publicExponent))"},
              {"kty":"EC","kid":"e1","crv":"P-256","x":"\(Self.b64(xy.prefix(32)))","y":"\(Self.b64(xy.suffix(32)))"},
              {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}
            ]}
            """
        let auth = try authenticator(JWTSettings(jwksPath: try file(jwks)))
        #expect(await accepted(auth, try Self.token(alg: "RS256", kid: "r1", claims: Self.topics)) != nil)
        #expect(await accepted(auth, try Self.token(alg: "ES256", kid: "e1", claims: Self.topics)) != nil)
        #expect(await refusal(auth, try Self.token(alg: "ES256", kid: "r1", claims: Self.topics)) != nil)  // kid's key is RSA
        #expect(await refusal(auth, try Self.token(alg: "RS256", kid: "nope", claims: Self.topics)) != nil)
        #expect(await refusal(auth, try Self.token(alg: "RS256", claims: Self.topics)) != nil)  // several keys: kid needed
    }

    @Test func timeClaimsMustBeNumbersAndHonourTheLeeway() async throws {
        let strict = try authenticator(JWTSettings(secret: Self.secret))
        let lenient = try authenticator(JWTSettings(secret: Self.secret, leeway: 60))
        let stringExp = try Self.token(alg: "HS256", claims: #"{"topics":["a"],"exp":"1900000000"}"#)
        #expect(await refusal(strict, stringExp) != nil)  // malformed, not "no expiry"
        let nullExp = try Self.token(alg: "HS256", claims: #"{"topics":["a"],"exp":null}"#)
        #expect(await refusal(strict, nullExp) != nil)
        let justExpired = try Self.token(alg: "HS256", claims: #"{"topics":["a"],"exp":1799999970}"#)
        #expect(await refusal(strict, justExpired) == "token expired")
        #expect(await accepted(lenient, justExpired) != nil)
        let soon = try Self.token(alg: "HS256", claims: #"{"topics":["a"],"nbf":1800000030}"#)
        #expect(await refusal(strict, soon) == "token not yet valid")
        #expect(await accepted(lenient, soon) != nil)
        let noTopics = try Self.token(alg: "HS256", claims: #"{"exp":1800000100}"#)
        #expect(await accepted(strict, noTopics) == .topics([]))  // authenticated, may read nothing
    }

    @Test func audienceAndIssuerWhenConfigured() async throws {
        let auth = try authenticator(JWTSettings(secret: Self.secret, audience: "freshet", issuer: "https://idp.example/"))
        let good = try Self.token(alg: "HS256", claims: #"{"topics":["a"],"aud":["x","freshet"],"iss":"https://idp.example/"}"#)
        #expect(await accepted(auth, good) != nil)
        let single = try Self.token(alg: "HS256", claims: #"{"topics":["a"],"aud":"freshet","iss":"https://idp.example/"}"#)
        #expect(await accepted(auth, single) != nil)
        #expect(await refusal(auth, try Self.token(alg: "HS256", claims: #"{"topics":["a"],"aud":"other","iss":"https://idp.example/"}"#)) != nil)
        #expect(await refusal(auth, try Self.token(alg: "HS256", claims: #"{"topics":["a"],"aud":"freshet","iss":"https://evil/"}"#)) != nil)
        #expect(await refusal(auth, try Self.token(alg: "HS256", claims: #"{"topics":["a"]}"#)) != nil)
    }

    @Test func staticTokensStillWorkBesideJWTs() async throws {
        let auth = try authenticator(JWTSettings(secret: Self.secret), tokens: ["static-token"])
        #expect(await accepted(auth, "static-token") == .everything)
        #expect(await refusal(auth, "other-token") != nil)
        if case .failure(let failure) = await auth.authenticate(nil, now: Self.now) { #expect(failure.reason == "missing token") }
    }

    @Test func unusableKeyFilesNameTheirField() throws {
        #expect(throws: Authenticator.SetupError.self) { try authenticator(JWTSettings(publicKeyPath: "/nonexistent.pem")) }
        do {
            _ = try authenticator(JWTSettings(jwksPath: try file(#"{"keys":[]}"#)))
            Issue.record("an empty JWKS was accepted")
        } catch let error as Authenticator.SetupError {
            #expect(error.field == "http.auth.jwt.jwks")
        }
        do {
            _ = try authenticator(JWTSettings(publicKeyPath: try file(Self.ec.pemRepresentation)))
            Issue.record("a private key was accepted")
        } catch let error as Authenticator.SetupError {
            #expect(error.field == "http.auth.jwt.public_key" && error.message.contains("private key"))
        }
    }
}

import Foundation
import JWTKit

/// Reads the public keys of `http.auth.jwt.public_key` (PEM) and `http.auth.jwt.jwks` (JWKS) at start; every problem
/// is a `SetupError` naming the field.
enum JWTKeyFiles {
    static func loadPEM(_ path: String) throws(Authenticator.SetupError) -> JWTVerifier.PublicKey {
        let field = "http.auth.jwt.public_key"
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw Authenticator.SetupError(field, "cannot read \(path): \(error.localizedDescription)")
        }
        if text.contains("PRIVATE KEY-----") {
            throw Authenticator.SetupError(field, "\(path) holds a private key; give the public key or a certificate")
        }
        if text.contains("-----BEGIN CERTIFICATE-----") {
            // The certificate's validity dates and chain are not checked: it is only a key container.
            if let key = try? JWTKit.Insecure.RSA.PublicKey(certificatePEM: text) { return .rsa(key) }
            if let key = try? ES256PublicKey(certificate: text) { return .es256(key) }
            throw Authenticator.SetupError(field, "the certificate in \(path) holds neither an RSA key of 2048 bits or more nor a P-256 key")
        }
        let rsaError: any Error
        do { return .rsa(try JWTKit.Insecure.RSA.PublicKey(pem: text)) } catch { rsaError = error }
        if let key = try? ES256PublicKey(pem: text) { return .es256(key) }
        throw Authenticator.SetupError(
            field, "\(path) is neither an RSA public key of 2048 bits or more (\(rsaError)) nor a P-256 EC public key")
    }

    /// RS256 and ES256 signing keys of a JWKS. Keys for encryption, of other types (`oct`, `OKP`) or algorithms are
    /// skipped. Keys are built here from n/e and x/y rather than with `JWTKeyCollection.add(jwks:)`, which refuses a
    /// whole set for one key of an unknown `kty`/`alg`, requires a kid on every key, and lets the first token's `alg`
    /// fix the algorithm of a key whose JWK has no `alg`.
    static func loadJWKS(_ path: String) throws(Authenticator.SetupError) -> [(kid: String?, key: JWTVerifier.PublicKey)] {
        let field = "http.auth.jwt.jwks"
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw Authenticator.SetupError(field, "cannot read \(path): \(error.localizedDescription)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let entries = object["keys"] as? [Any]
        else { throw Authenticator.SetupError(field, "\(path) is not a JWKS (a JSON object with a \"keys\" array)") }

        var keys: [(kid: String?, key: JWTVerifier.PublicKey)] = []
        var kids = Set<String>()
        for (index, entry) in entries.enumerated() {
            guard let fields = entry as? [String: Any] else {
                throw Authenticator.SetupError(field, "key #\(index + 1) in \(path) is not a JSON object")
            }
            if let use = fields["use"] as? String, use != "sig" { continue }
            guard let json = try? JSONSerialization.data(withJSONObject: fields),
                  let jwk = try? JWK(json: String(decoding: json, as: UTF8.self))
            else { continue }  // a kty or alg jwt-kit does not know
            let kid = jwk.keyIdentifier?.string
            let label = kid.map { "key \"\($0)\"" } ?? "key #\(index + 1)"
            let alg = jwk.algorithm
            let key: JWTVerifier.PublicKey
            do {
                if jwk.keyType == .rsa, alg == nil || alg == JWK.Algorithm.rs256 {
                    guard let n = jwk.modulus, let e = jwk.exponent else { throw Authenticator.SetupError(field, "no n or e") }
                    key = .rsa(try JWTKit.Insecure.RSA.PublicKey(modulus: n, exponent: e))
                } else if jwk.keyType == .ecdsa, alg == nil || alg == JWK.Algorithm.es256,
                          jwk.curve == nil || jwk.curve?.rawValue == "P-256" {
                    guard let x = jwk.x, let y = jwk.y else { throw Authenticator.SetupError(field, "no x or y") }
                    key = .es256(try ES256PublicKey(parameters: (x, y)))
                } else {
                    continue  // RS384, PS256, ES384, EdDSA, P-384 …: not accepted by Freshet
                }
            } catch let error as Authenticator.SetupError {
                throw Authenticator.SetupError(field, "\(label) in \(path): \(error.message)")
            } catch {
                throw Authenticator.SetupError(field, "\(label) in \(path) is not a usable key: \(error)")
            }
            if let kid {
                guard kids.insert(kid).inserted else {
                    throw Authenticator.SetupError(field, "kid \"\(kid)\" appears twice in \(path)")
                }
            }
            keys.append((kid, key))
        }
        guard !keys.isEmpty else { throw Authenticator.SetupError(field, "\(path) has no RS256 or ES256 signing key") }
        if keys.count > 1, keys.contains(where: { $0.kid == nil }) {
            throw Authenticator.SetupError(field, "every key in \(path) needs a kid when it has more than one")
        }
        return keys
    }
}

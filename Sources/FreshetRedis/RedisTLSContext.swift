import CHiredis
import FreshetCore

/// The TLS settings of `redis.tls` made ready for connections: an OpenSSL client context (trusted CAs, optional client
/// certificate) shared by every connection of a writer, and the name each connection verifies.
///
/// Certificates are verified by default, the server's name included (a host name or an IP address in its subject
/// alternative names); `insecure_skip_verify` turns both off.
package final class RedisTLSContext: @unchecked Sendable {
    // An OpenSSL `SSL_CTX` is safe to share between threads once set up; it is only read after `init`.
    private let context: OpaquePointer
    private let serverName: String?
    private let verify: Bool

    /// Reads the files `settings` names. Throws the reason (naming the file) when one cannot be used.
    package init(_ settings: RedisTLSSettings) throws(RedisError) {
        var message = [CChar](repeating: 0, count: 512)
        let verify = !settings.insecureSkipVerify
        let made = message.withUnsafeMutableBufferPointer { buffer in
            freshet_tls_context(settings.ca, settings.cert, settings.key, verify ? 1 : 0, buffer.baseAddress, buffer.count)
        }
        guard let made else {
            throw RedisError(code: .connectionFailed, message: String(cString: message))
        }
        self.context = made
        self.serverName = settings.serverName
        self.verify = verify
    }

    deinit { freshet_tls_context_free(context) }

    /// Starts TLS on a connected hiredict context, verifying the certificate for `host` (or `server_name`).
    func start(on connection: UnsafeMutablePointer<redictContext>, host: String) throws(RedisError) {
        var message = [CChar](repeating: 0, count: 512)
        let status = message.withUnsafeMutableBufferPointer { buffer in
            freshet_tls_start(connection, context, serverName ?? host, verify ? 1 : 0, buffer.baseAddress, buffer.count)
        }
        guard status == 0 else { throw RedisError(code: .connectionFailed, message: String(cString: message)) }
    }
}

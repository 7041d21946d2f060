import FreshetCore
import Hummingbird
import HummingbirdCore
import HummingbirdHTTP2
import NIOCore
import NIOSSL

/// Builds the HTTP server: HTTP/1.1, or with `http.tls` HTTPS serving HTTP/2 (ALPN `h2`) and HTTP/1.1, each
/// connection (each HTTP/2 stream) with Freshet's channel handlers: `ConnectionGuard` (the bounds) and
/// `EventStreamHandler` (SSE writes), and kept in `connections`. Plain HTTP/1.1 connections start with
/// `EventsFrontDoor`, which serves `GET /events` on Freshet's own path and hands the rest to Hummingbird.
package enum ServerBuilder {
    /// A TLS file that cannot be used, with the field that names it.
    package struct Problem: Error, Sendable {
        package var field: String
        package var message: String
    }

    /// - Parameter events: what Freshet's own `/events` path needs (plain HTTP/1.1 only).
    package static func make(connections: OpenConnections, http: HTTPSettings, events: EventsServer) throws(Problem) -> HTTPServerBuilder {
        guard let tls = http.tls else {
            // The front door counted the connection and checked `max_connections` before handing it over; the guard
            // keeps the head deadline of each later request on the connection.
            let afterFrontDoor = ConnectionGuard.Limits(requestTimeout: http.requestTimeout, maxConnections: .max)
            let handlers = HTTP1Channel.Configuration(additionalChannelHandlers: [
                ConnectionGuard(limits: afterFrontDoor, connections: connections), EventStreamHandler(connections: connections),
            ])
            return HTTPServerBuilder { responder in
                FreshetHTTP1Channel(inner: HTTP1Channel(responder: responder, configuration: handlers), events: events)
            }
        }
        let limits = ConnectionGuard.Limits(requestTimeout: http.requestTimeout, maxConnections: http.maxConnections)
        let handlers = HTTP1Channel.Configuration(additionalChannelHandlers: [
            ConnectionGuard(limits: limits, connections: connections), EventStreamHandler(connections: connections),
        ])
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(tls.cert)
        } catch {
            throw Problem(field: "http.tls.cert", message: "cannot read a PEM certificate chain from \(tls.cert): \(error)")
        }
        guard !chain.isEmpty else { throw Problem(field: "http.tls.cert", message: "\(tls.cert) holds no certificate") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: tls.key, format: .pem)
        } catch {
            throw Problem(field: "http.tls.key", message: "cannot read a PEM private key from \(tls.key): \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        do {
            return try .http2Upgrade(tlsConfiguration: configuration, configuration: .init(streamConfiguration: handlers))
        } catch {
            throw Problem(field: "http.tls", message: "cannot use the certificate and key: \(error)")
        }
    }
}

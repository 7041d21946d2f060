import Foundation
import FreshetCore
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

/// Freshet's HTTP endpoints: `/events` (SSE), `/`, `/freshet.js`, `/healthz`, `/readyz`, and `/metrics`.
package enum Routes {
    /// Everything `/events` needs besides the hub.
    package struct EventsOptions: Sendable {
        /// `nil` leaves `/events` open.
        package var authenticator: Authenticator?
        package var cors: CORSSettings
        package var logger: Logger
        /// Topics one subscription may name (`http.max_topics`).
        package var maxTopics: Int

        package init(authenticator: Authenticator?, cors: CORSSettings, logger: Logger, maxTopics: Int = 100) {
            self.authenticator = authenticator
            self.cors = cors
            self.logger = logger
            self.maxTopics = maxTopics
        }
    }

    package static func add(to router: Router<FreshetRequestContext>, hub: EventHub, readiness: Readiness, options: EventsOptions) {
        router.get("/healthz") { _, _ in
            jsonResponse(.ok, #"{"status":"ok"}"#)
        }
        router.get("/readyz") { _, _ in
            let reasons = readiness.reasons()
            if reasons.isEmpty { return jsonResponse(.ok, #"{"status":"ready"}"#) }
            let body: JSONObject = [
                "status": .string("unavailable"),
                "reasons": .array(reasons.map { JSONValue.string($0) }),
            ]
            return jsonResponse(.serviceUnavailable, JSONValue.object(body).jsonText)
        }
        router.get("/") { _, _ in
            asset(PackageResources.inspector_html, type: "text/html; charset=utf-8")
        }
        router.get("/freshet.js") { _, _ in
            asset(PackageResources.freshet_js, type: "text/javascript; charset=utf-8")
        }

        let cors = CORSPolicy(settings: options.cors)
        router.on("/events", method: .options) { request, _ in
            Response(status: .noContent, headers: cors.headers(origin: request.headers[.origin], preflight: true))
        }
        let endpoint = EventsEndpoint(options: options)
        router.get("/events") { request, context -> Response in
            let decision = await endpoint.decide(EventsEndpoint.Request(
                query: request.uri.queryParameters.map { (name: String($0.key), value: String($0.value)) },
                origin: request.headers[.origin], lastEventID: request.headers[.lastEventID],
                authorization: request.headers[.authorization], cookie: request.headers[.cookie]
            ))
            let stream: HubStream
            let headers: HTTPFields
            switch decision {
            case .refuse(let status, let message, let fields):
                return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(string: EventsEndpoint.Decision.body(message))))
            case .stream(let subscription, let fields):
                stream = hub.subscribe(subscription)
                headers = fields
            }
            let channel = context.channel
            stream.bind(to: channel)
            // Events are written from the hub on the connection's event loop; the response only waits for the end.
            guard await stream.attach(to: channel) else {
                stream.cancel()
                return jsonResponse(.internalServerError, EventsEndpoint.Decision.body("the connection has no event stream handler (or is already closed)"))
            }
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                await stream.waitUntilFinished()
                try await writer.finish(nil)
            })
        }
    }

    /// `GET /metrics`: Prometheus text format.
    package static func addMetrics(to router: Router<FreshetRequestContext>, text: @escaping @Sendable () -> [UInt8]) {
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: text())))
        }
    }

    static func asset(_ bytes: [UInt8], type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func jsonResponse(_ status: HTTPResponse.Status, _ text: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

extension HTTPField.Name {
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
}

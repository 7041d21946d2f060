import Foundation
import FreshetCore
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

/// Freshet's HTTP endpoints: `/events` (SSE), `/`, `/freshet.js`, `/healthz`, `/readyz`, and `/metrics`.
package enum Routes {
    /// Query parameters `/events` accepts; any other is a 400.
    static let eventsParameters: Set<String> = ["topic", "lastEventId", "access_token"]

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
        let authenticator = options.authenticator
        router.on("/events", method: .options) { request, _ in
            Response(status: .noContent, headers: cors.headers(origin: request.headers[.origin], preflight: true))
        }
        router.get("/events") { request, context -> Response in
            let corsHeaders = cors.headers(origin: request.headers[.origin], preflight: false)
            func refuse(_ status: HTTPResponse.Status, _ message: String) -> Response {
                var response = jsonResponse(status, JSONValue.object(["error": .string(message)]).jsonText)
                response.headers.append(contentsOf: corsHeaders)
                if status == .unauthorized { response.headers[.wwwAuthenticate] = #"Bearer realm="freshet""# }
                return response
            }
            var patterns: [TopicPattern] = []
            var lastEventID = request.headers[.lastEventID]
            var queryToken: String?
            for (name, value) in request.uri.queryParameters {
                let name = String(name)
                guard eventsParameters.contains(name) else {
                    return refuse(.badRequest, "unknown query parameter \"\(name)\"; allowed: topic, lastEventId, access_token")
                }
                switch name {
                case "topic":
                    let topic = String(value)
                    guard !topic.isEmpty else { return refuse(.badRequest, "empty topic") }
                    guard patterns.count < options.maxTopics else {
                        return refuse(.badRequest, "more than \(options.maxTopics) topics in one subscription (http.max_topics)")
                    }
                    patterns.append(TopicPattern(topic))
                case "lastEventId":
                    lastEventID = lastEventID ?? String(value)
                default:
                    queryToken = String(value)
                }
            }
            if let authenticator {
                let token = bearerToken(request.headers[.authorization]) ?? queryToken ?? cookie("freshet_token", in: request.headers[.cookie])
                switch await authenticator.authenticate(token) {
                case .failure(let failure):
                    options.logger.notice("refused an /events request", metadata: ["status": "401", "reason": "\(failure.reason)"])
                    return refuse(.unauthorized, failure.reason)
                case .success(let grant):
                    switch AccessPolicy.decide(requested: patterns, grant: grant) {
                    case .forbidden(let reason):
                        options.logger.notice("refused an /events request", metadata: ["status": "403", "reason": "\(reason)"])
                        return refuse(.forbidden, reason)
                    case .allowed(let allowed):
                        patterns = allowed
                    }
                }
            }

            let stream = hub.subscribe(SubscriptionRequest(patterns: patterns, lastEventID: lastEventID))
            let channel = context.channel
            // Dropped for falling behind: its stream ends with a resync; give the write two seconds, then close anyway
            // (a client that never reads would hold the connection forever).
            stream.onDrop {
                channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
            }
            channel.closeFuture.whenComplete { _ in stream.cancel() }  // released as soon as the client goes
            // Events are written from the hub on the connection's event loop; the response only waits for the end.
            guard await stream.attach(to: channel) else {
                stream.cancel()
                return refuse(.internalServerError, "the connection has no event stream handler (or is already closed)")
            }

            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream; charset=utf-8"
            headers[.cacheControl] = "no-cache"
            headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
            headers.append(contentsOf: corsHeaders)
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

    static func bearerToken(_ header: String?) -> String? {
        guard let header, header.lowercased().hasPrefix("bearer ") else { return nil }
        return String(header.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
    }

    static func cookie(_ name: String, in header: String?) -> String? {
        guard let header else { return nil }
        for part in header.split(separator: ";") {
            let pair = part.trimmingCharacters(in: .whitespaces)
            if pair.hasPrefix(name + "=") { return String(pair.dropFirst(name.count + 1)).removingPercentEncoding }
        }
        return nil
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

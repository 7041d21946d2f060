import FreshetCore
import HTTPTypes
import Hummingbird
import NIOCore

/// Freshet's HTTP endpoints: `/events` (SSE), `/healthz`, `/readyz`.
public enum Routes {
    /// Query parameters `/events` accepts; any other is a 400.
    static let eventsParameters: Set<String> = ["topic", "lastEventId", "access_token"]

    public static func add(to router: Router<BasicRequestContext>, hub: EventHub, readiness: Readiness) {
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
        router.get("/events") { request, _ -> Response in
            var patterns: [TopicPattern] = []
            var lastEventID = request.headers[.lastEventID]
            for (name, value) in request.uri.queryParameters {
                let name = String(name)
                guard eventsParameters.contains(name) else {
                    return jsonResponse(.badRequest, JSONValue.object([
                        "error": .string("unknown query parameter \"\(name)\"; allowed: topic, lastEventId, access_token"),
                    ]).jsonText)
                }
                switch name {
                case "topic":
                    let topic = String(value)
                    guard !topic.isEmpty else {
                        return jsonResponse(.badRequest, #"{"error":"empty topic"}"#)
                    }
                    patterns.append(TopicPattern(topic))
                case "lastEventId":
                    lastEventID = lastEventID ?? String(value)
                default:
                    break
                }
            }
            let stream = hub.subscribe(SubscriptionRequest(patterns: patterns, lastEventID: lastEventID))
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream; charset=utf-8"
            headers[.cacheControl] = "no-cache"
            headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                for await buffer in stream {
                    try await writer.write(buffer)
                    stream.written(buffer)
                }
                try await writer.finish(nil)
            })
        }
    }

    /// `GET /metrics`: Prometheus text format.
    public static func addMetrics(to router: Router<BasicRequestContext>, text: @escaping @Sendable () -> [UInt8]) {
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: text())))
        }
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

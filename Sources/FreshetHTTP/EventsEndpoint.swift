import Foundation
import FreshetCore
import HTTPTypes

/// What `/events` answers to a request, whichever server path read it (Hummingbird's route, or Freshet's own HTTP/1.1
/// path, `EventsFrontDoor`): the query, authentication, the topic grant and CORS, decided once for both.
package struct EventsEndpoint: Sendable {
    /// Query parameters `/events` accepts; any other is a 400.
    static let parameters: Set<String> = ["topic", "lastEventId", "access_token"]

    let options: Routes.EventsOptions
    let cors: CORSPolicy

    package init(options: Routes.EventsOptions) {
        self.options = options
        self.cors = CORSPolicy(settings: options.cors)
    }

    /// The parts of a request `/events` reads.
    struct Request {
        /// Decoded query parameters, in order.
        var query: [(name: String, value: String)]
        var origin: String?
        var lastEventID: String?
        var authorization: String?
        var cookie: String?
    }

    /// The answer: a refusal (its status, message and headers), or the subscription to stream with its headers.
    enum Decision {
        case refuse(HTTPResponse.Status, message: String, headers: HTTPFields)
        case stream(SubscriptionRequest, headers: HTTPFields)

        /// A refusal's JSON body.
        static func body(_ message: String) -> String { JSONValue.object(["error": .string(message)]).jsonText }
    }

    func decide(_ request: Request) async -> Decision {
        let corsHeaders = cors.headers(origin: request.origin, preflight: false)
        func refuse(_ status: HTTPResponse.Status, _ message: String) -> Decision {
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            headers.append(contentsOf: corsHeaders)
            if status == .unauthorized { headers[.wwwAuthenticate] = #"Bearer realm="freshet""# }
            return .refuse(status, message: message, headers: headers)
        }
        var patterns: [TopicPattern] = []
        var lastEventID = request.lastEventID
        var queryToken: String?
        for (name, value) in request.query {
            guard Self.parameters.contains(name) else {
                return refuse(.badRequest, "unknown query parameter \"\(name)\"; allowed: topic, lastEventId, access_token")
            }
            switch name {
            case "topic":
                guard !value.isEmpty else { return refuse(.badRequest, "empty topic") }
                guard patterns.count < options.maxTopics else {
                    return refuse(.badRequest, "more than \(options.maxTopics) topics in one subscription (http.max_topics)")
                }
                patterns.append(TopicPattern(value))
            case "lastEventId":
                lastEventID = lastEventID ?? value
            default:
                queryToken = value
            }
        }
        if let authenticator = options.authenticator {
            let token = Self.bearerToken(request.authorization) ?? queryToken ?? Self.cookie("freshet_token", in: request.cookie)
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
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-cache"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        headers.append(contentsOf: corsHeaders)
        return .stream(SubscriptionRequest(patterns: patterns, lastEventID: lastEventID), headers: headers)
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
}

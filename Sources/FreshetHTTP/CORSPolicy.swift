import FreshetCore
import HTTPTypes

/// Answers CORS for `/events` from `http.cors.allowed_origins`.
struct CORSPolicy: Sendable {
    let settings: CORSSettings

    /// The headers to add for a request from `origin`, or none when the origin is not allowed (or CORS is off).
    func headers(origin: String?, preflight: Bool) -> HTTPFields {
        var fields = HTTPFields()
        guard let origin else { return fields }
        if settings.allowAny {
            fields[.accessControlAllowOrigin] = "*"
        } else if settings.allowedOrigins.contains(origin) {
            fields[.accessControlAllowOrigin] = origin
            fields[.accessControlAllowCredentials] = "true"
            fields[.vary] = "Origin"
        } else {
            return fields
        }
        if preflight {
            fields[.accessControlAllowMethods] = "GET, OPTIONS"
            fields[.accessControlAllowHeaders] = "Authorization, Last-Event-ID, Cache-Control"
            fields[.accessControlMaxAge] = "600"
        }
        return fields
    }
}

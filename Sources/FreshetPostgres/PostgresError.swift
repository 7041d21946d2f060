import FreshetCore

/// An error from PostgreSQL or libpq, with the context a user needs. Messages never contain a password.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, coarsely; match on it, not on the message.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let raw: String
        public static let connectionFailed = Code(raw: "connection failed")
        public static let connectionLost = Code(raw: "connection lost")
        public static let queryFailed = Code(raw: "query failed")
        public static let listenUnsupported = Code(raw: "LISTEN unsupported")
        public var description: String { raw }
    }

    public var code: Code
    /// libpq's or the server's message.
    public var message: String
    /// The SQLSTATE, when the server sent one.
    public var sqlState: String?

    public init(code: Code, message: String, sqlState: String? = nil) {
        self.code = code
        self.message = message.trimmingCharacters(in: .whitespacesAndNewlines)
        self.sqlState = sqlState
    }

    public var description: String {
        "PostgreSQL \(code): \(message)" + (sqlState.map { " (SQLSTATE \($0))" } ?? "")
    }
}

import Foundation

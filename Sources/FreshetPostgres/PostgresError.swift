import FreshetCore

/// An error from PostgreSQL or libpq, with the context a user needs. Messages never contain a password.
package struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, coarsely; match on it, not on the message.
    package struct Code: Sendable, Hashable, CustomStringConvertible {
        let raw: String
        package static let connectionFailed = Code(raw: "connection failed")
        package static let connectionLost = Code(raw: "connection lost")
        package static let queryFailed = Code(raw: "query failed")
        package static let listenUnsupported = Code(raw: "LISTEN unsupported")
        package var description: String { raw }
    }

    package var code: Code
    /// libpq's or the server's message.
    package var message: String
    /// The SQLSTATE, when the server sent one.
    package var sqlState: String?

    package init(code: Code, message: String, sqlState: String? = nil) {
        self.code = code
        self.message = message.trimmingCharacters(in: .whitespacesAndNewlines)
        self.sqlState = sqlState
    }

    package var description: String {
        "PostgreSQL \(code): \(message)" + (sqlState.map { " (SQLSTATE \($0))" } ?? "")
    }
}

import Foundation

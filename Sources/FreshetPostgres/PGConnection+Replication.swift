import CLibPQ
import FreshetCore

/// The replication protocol on a `PGConnection`: a walsender session and its COPY BOTH stream.
extension PGConnection {
    /// Connects a walsender session on the database (`replication=database`): it takes replication commands and
    /// simple-protocol SQL only.
    package static func connectReplication(_ conninfo: String) throws(PostgresError) -> PGConnection {
        try connect(conninfo, applicationName: "freshet_replication", forced: [("replication", "database")])
    }

    /// Runs a replication command (simple protocol) and returns its rows, like `execute`.
    @discardableResult
    package func command(_ text: String) throws(PostgresError) -> [[String?]] {
        try execute(text)
    }

    /// Sends `START_REPLICATION …` and enters the COPY BOTH stream (non-blocking from here on).
    package func startReplication(_ command: String) throws(PostgresError) {
        guard let result = PQexec(pgconn, command) else {
            throw PostgresError(code: .connectionLost, message: errorMessage)
        }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COPY_BOTH else {
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            throw PostgresError(code: .queryFailed, message: String(cString: PQresultErrorMessage(result)), sqlState: state)
        }
        _ = PQsetnonblocking(pgconn, 1)
    }

    /// What one non-blocking read of the COPY stream gave.
    package enum CopyRead {
        /// One CopyData message.
        case message([UInt8])
        /// Nothing buffered: poll the socket, then `consumeInput()`.
        case wouldBlock
    }

    /// Takes one CopyData message libpq has buffered. Throws when the stream ended or failed (with the server's error
    /// and SQLSTATE when there is one).
    package func readCopyData() throws(PostgresError) -> CopyRead {
        var buffer: UnsafeMutablePointer<CChar>?
        let length = PQgetCopyData(pgconn, &buffer, 1)
        if length > 0, let buffer {
            defer { PQfreemem(buffer) }
            return .message(Array(UnsafeRawBufferPointer(start: buffer, count: Int(length))))
        }
        if length == 0 { return .wouldBlock }
        // -1: the stream ended (an error result follows); -2: failure.
        var failure = PostgresError(code: .connectionLost, message: length == -1 ? "replication stream ended" : errorMessage)
        while let result = PQgetResult(pgconn) {
            let status = PQresultStatus(result)
            if status == PGRES_COPY_BOTH || status == PGRES_COPY_IN || status == PGRES_COPY_OUT {
                PQclear(result)
                break  // still in COPY: libpq would return this again and again
            }
            if status == PGRES_FATAL_ERROR {
                let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
                failure = PostgresError(code: .connectionLost, message: String(cString: PQresultErrorMessage(result)), sqlState: state)
            }
            PQclear(result)
        }
        throw failure
    }

    /// Queues a CopyData message (a standby status update) and flushes what it can without blocking. Returns true
    /// when everything was sent; false when some waits in libpq's buffer (poll for POLLOUT, then `flushOutput()`).
    package func sendCopyData(_ bytes: [UInt8]) throws(PostgresError) -> Bool {
        for _ in 0..<2 {
            let sent = bytes.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { PQputCopyData(pgconn, $0.baseAddress, Int32(buffer.count)) }
            }
            if sent == 1 { return try flushOutput() }
            guard sent == 0 else { throw PostgresError(code: .connectionLost, message: errorMessage) }
            _ = try flushOutput()  // the buffer was full: make room, try once more
        }
        return false
    }

    /// Flushes output queued earlier; true when everything was sent.
    package func flushOutput() throws(PostgresError) -> Bool {
        let result = PQflush(pgconn)
        guard result >= 0 else { throw PostgresError(code: .connectionLost, message: errorMessage) }
        return result == 0
    }
}

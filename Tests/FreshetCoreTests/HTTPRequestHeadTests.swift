import FreshetCore
import Testing

/// The narrow head parser of Freshet's own `/events` path: what it accepts, and that it declines (nil) rather than
/// guesses on anything unusual — the full HTTP server then answers those.
@Suite struct HTTPRequestHeadTests {
    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func findsTheEndOfTheHead() {
        #expect(HTTPRequestHead.length(in: bytes("GET / HTTP/1.1\r\nHost: a\r\n")) == nil)
        #expect(HTTPRequestHead.length(in: bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\n")) == 27)
        #expect(HTTPRequestHead.length(in: bytes("GET / HTTP/1.1\r\n\r\nGET")) == 18, "pipelined bytes after it are not part of it")
        #expect(HTTPRequestHead.length(in: bytes("GET / HTTP/1.1\r\r\n\r\n")) == 19, "a stray CR restarts the match")
        #expect(HTTPRequestHead.length(in: bytes("GET / HTTP/1.1\n\n")) == nil, "bare LFs never end a head here")
    }

    @Test func parsesAnEventSourceRequest() throws {
        let head = try #require(HTTPRequestHead.parse(bytes(
            "GET /events?topic=users%2F1&lastEventId=5-1 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID:  7-2 \r\nCookie: a=1\r\ncookie: b=2\r\n\r\n"
        )))
        #expect(head.method == "GET")
        #expect(head.path == "/events")
        #expect(head.target == "/events?topic=users%2F1&lastEventId=5-1")
        #expect(head.version == "HTTP/1.1")
        #expect(head.field("last-event-id") == "7-2", "case-insensitive, surrounding blanks trimmed")
        #expect(head.fields("cookie") == ["a=1", "b=2"])
        #expect(head.field("authorization") == nil)
        #expect(!head.mayCarryMore)
    }

    @Test func declinesWhatItDoesNotHandle() {
        let declined = [
            "GET /events HTTP/1.1\r\nHost: x\r\n",  // not a whole head
            "GET /events HTTP/1.1\nHost: x\r\n\r\n",  // a bare LF
            "GET /events HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",  // obsolete line folding
            "GET /events HTTP/1.1\r\nNo colon here\r\n\r\n",
            "GET /events HTTP/1.1\r\n: empty name\r\n\r\n",
            "GET /events HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET /events HTTP/1.1\r\nHost: a\u{01}b\r\n\r\n",  // a control character
            "GET  /events HTTP/1.1\r\n\r\n",  // two spaces
            "GET events HTTP/1.1\r\n\r\n",  // not an origin-form target
            "GET /events HTTP/2.0\r\n\r\n",
            "GET /events\r\n\r\n",  // HTTP/0.9
            "G(T /events HTTP/1.1\r\n\r\n",
        ]
        for text in declined { #expect(HTTPRequestHead.parse(bytes(text)) == nil, "\(text.debugDescription)") }
    }

    @Test func knowsWhenARequestMayCarryMore() throws {
        func head(_ fields: String) throws -> HTTPRequestHead { try #require(HTTPRequestHead.parse(bytes("GET /events HTTP/1.1\r\n\(fields)\r\n"))) }
        #expect(try !head("Content-Length: 0\r\n").mayCarryMore)
        #expect(try head("Content-Length: 5\r\n").mayCarryMore)
        #expect(try head("Transfer-Encoding: chunked\r\n").mayCarryMore)
        #expect(try head("Upgrade: websocket\r\nConnection: Upgrade\r\n").mayCarryMore)
        #expect(try head("Expect: 100-continue\r\n").mayCarryMore)
    }

    @Test func onlyAPlainGetOfThePathIsTakenWhole() {
        func plain(_ text: String) -> Bool { HTTPRequestHead.plainGet("/events", in: bytes(text)) != nil }
        #expect(plain("GET /events HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(plain("GET /events?topic=a&topic=b HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"))
        #expect(!plain("GET /events HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n"), "a pipelined request after it")
        #expect(!plain("GET /events HTTP/1.1\r\nHost: x\r\n"), "not a whole head yet")
        #expect(!plain("GET /events HTTP/1.0\r\n\r\n"))
        #expect(!plain("POST /events HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"))
        #expect(!plain("OPTIONS /events HTTP/1.1\r\n\r\n"))
        #expect(!plain("GET /events/x HTTP/1.1\r\n\r\n"))
        #expect(!plain("GET /eventsx HTTP/1.1\r\n\r\n"))
        #expect(!plain("GET /metrics HTTP/1.1\r\n\r\n"))
        #expect(!plain("GET /events HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"))
    }
}

import Foundation
import Glibc

/// The machine's floor for SSE fan-out: the same bytes Freshet writes (an HTTP/1.1 chunked `text/event-stream`, one
/// SSE message per chunk) written to the same kind of sockets by a minimal loop — one `write(2)` per subscriber per
/// event, nothing else. Its CPU time per delivery (the writing thread's own clock) is what Freshet's is compared with.
final class BareFanout: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private var sockets: [Int32] = []

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(listener, pointer, length) == 0 && getsockname(listener, pointer, &length) == 0
            }
        }
        guard bound, listen(listener, 4096) == 0 else { throw BenchError("bare fan-out: cannot listen (errno \(errno))") }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// What the floor cost and how fast its bytes arrived.
    struct Measurement {
        /// The writing thread's CPU seconds per delivery.
        var cpuPerDelivery: Double
        var sse: LatencySummary
        /// Deliveries a socket could not take at once (not counted as delivered).
        var unwritten: Int
    }

    /// The whole floor: `subscribers` SSE subscribers (the bench's own client) on a bare loop that writes `changes`
    /// events at `rate` per second.
    static func measure(subscribers: Int, changes: Int, rate: Double) throws -> Measurement {
        let floor = try BareFanout()
        defer { floor.close() }
        floor.accept(subscribers)
        let clients = try SSESubscribers(port: floor.port, count: subscribers, expectedChanges: changes, topic: BenchEnvironment.topic)
        defer { clients.close() }
        let sent = TimeTable(count: changes)
        let (cpu, unwritten) = floor.run(changes: changes, rate: rate, sent: sent)
        clients.waitForAll(changes, timeout: 30)
        var latencies: [UInt64] = []
        for table in clients.receipts { latencies.append(contentsOf: table.latencies(from: sent)) }
        return Measurement(
            cpuPerDelivery: cpu / Double(max(changes * subscribers - unwritten, 1)), sse: LatencySummary(nanos: latencies),
            unwritten: unwritten
        )
    }

    /// Accepts `count` subscribers (each sends its request; each gets the response head), on a thread of its own.
    func accept(_ count: Int) {
        let head = Array("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while sockets.count < count {
                let fd = Glibc.accept(listener, nil, nil)
                guard fd >= 0 else { continue }
                // The request: read until its blank line (small; one or two reads).
                var seen: [UInt8] = []
                while !seen.suffix(4).elementsEqual("\r\n\r\n".utf8) {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n <= 0 { break }
                    seen.append(contentsOf: buffer[0..<n])
                }
                _ = head.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                sockets.append(fd)
            }
        }
        thread.start()
    }

    /// Writes `changes` events at `rate` per second to every subscriber; returns when each event went out (`sent[i]`)
    /// and the writing thread's CPU seconds. An event a socket cannot take now is counted as not delivered.
    func run(changes: Int, rate: Double, sent: TimeTable) -> (cpuSeconds: Double, unwritten: Int) {
        var unwritten = 0
        let start = monotonicNanos()
        var cpu = 0.0
        for i in 0..<changes {
            sleep(untilNanos: start + UInt64(Double(i) / rate * 1e9))
            let cpuStart = Self.threadCPU()  // the writes only, not the sleeps between events
            let payload = "id: 1-\(i + 1)\nevent: change\ndata: {\"op\":\"update\",\"table\":\"public.bench_items\",\"key\":{\"id\":\(i + 1)},\"row\":{\"id\":\(i + 1),\"seq\":\(i)},\"topics\":[\"bench_items\",\"bench_items/\(i + 1)\"]}\n\n"
            let body = Array(payload.utf8)
            let chunk = Array(String(body.count, radix: 16).utf8) + [13, 10] + body + [13, 10]
            sent.record(i, at: monotonicNanos())
            chunk.withUnsafeBytes { bytes in
                for fd in sockets where write(fd, bytes.baseAddress, bytes.count) != bytes.count { unwritten += 1 }
            }
            cpu += Self.threadCPU() - cpuStart
        }
        return (cpu, unwritten)
    }

    func close() {
        for fd in sockets { Glibc.close(fd) }
        Glibc.close(listener)
    }

    private static func threadCPU() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

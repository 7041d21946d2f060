import Foundation
import Glibc

/// A TCP relay on loopback in front of a server, that can turn into a black hole: it keeps every connection open
/// (so the kernel still acknowledges what is sent, and keepalives are answered) but passes nothing on. That is what a
/// silent network partition looks like to a client whose peer's host is alive but unreachable.
final class BlackholeProxy: @unchecked Sendable {
    let port: Int
    private let upstreamPort: Int
    private let listener: Int32
    private let lock = NSLock()
    private var swallowing = false
    private var closed = false

    init(upstreamPort: Int) {
        self.upstreamPort = upstreamPort
        (listener, port) = TestServers.boundSocket(listening: true)
        listen(listener, 16)
        Thread.detachNewThread { self.acceptLoop() }
    }

    /// From now on, nothing is relayed (connections stay open).
    func swallow() { lock.withLock { swallowing = true } }

    private var isSwallowing: Bool { lock.withLock { swallowing } }
    private var isClosed: Bool { lock.withLock { closed } }

    private func acceptLoop() {
        while !isClosed {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard TestServers.connectLoopback(upstream, port: upstreamPort) else {
                close(client)
                close(upstream)
                continue
            }
            Thread.detachNewThread { self.relay(client, upstream) }
        }
    }

    private func relay(_ a: Int32, _ b: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while !isClosed {
            if isSwallowing {  // hold everything: nothing read, nothing passed on (and no busy loop on pending data)
                usleep(100_000)
                continue
            }
            var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 2, 100) >= 0 else { break }
            for (from, to) in [(0, b), (1, a)] where fds[from].revents != 0 {
                let n = read(fds[from].fd, &buffer, buffer.count)
                if n <= 0 {
                    close(a)
                    close(b)
                    return
                }
                _ = buffer.withUnsafeBytes { write(to, $0.baseAddress, n) }
            }
        }
    }

    deinit {
        lock.withLock { closed = true }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}

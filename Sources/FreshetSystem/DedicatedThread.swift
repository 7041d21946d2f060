import Foundation

/// Runs a blocking loop on a thread of its own and waits for it without blocking the cooperative pool.
///
/// The listener and the Redis writer each own a C connection that only their thread touches; both start it this way.
/// `stop` is called on graceful shutdown and on cancellation (`cancelStop` too, when given, for an immediate stop);
/// it must make `body` return.
package func runOnDedicatedThread(
    name: String, body: @escaping @Sendable () -> Void, stop: @escaping @Sendable () -> Void,
    cancelStop: (@Sendable () -> Void)? = nil
) async {
    await withTaskCancellationHandler {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let thread = Thread {
                body()
                done.resume()
            }
            thread.name = name
            thread.start()
        }
    } onCancel: {
        stop()
        cancelStop?()
    }
}

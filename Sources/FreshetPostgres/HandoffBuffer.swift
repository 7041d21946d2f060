import Foundation

/// A bounded queue from one producer thread to one async consumer.
///
/// When full, `push` blocks the producing thread: the listener then stops reading from PostgreSQL, which keeps the
/// notifications in its own queue, so nothing is dropped and Freshet's memory stays bounded.
final class HandoffBuffer<Element: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [Element] = []
    private var head = 0
    private var waiter: CheckedContinuation<Element?, Never>?
    private var finished = false
    private var cancelled = false
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// Adds an element, waiting while the buffer is full. Returns false once the consumer is gone or `cancel` ran.
    @discardableResult
    func push(_ element: Element) -> Bool {
        condition.lock()
        while items.count - head >= capacity && !cancelled {
            condition.wait()
        }
        if cancelled || finished {
            condition.unlock()
            return false
        }
        if let waiter {
            self.waiter = nil
            condition.unlock()
            waiter.resume(returning: element)
            return true
        }
        items.append(element)
        condition.unlock()
        return true
    }

    /// No more elements will come; the consumer gets the rest, then `nil`.
    func finish() {
        condition.lock()
        finished = true
        let waiter = self.waiter
        self.waiter = nil
        condition.broadcast()
        condition.unlock()
        waiter?.resume(returning: nil)
    }

    /// Wakes a blocked producer and makes every later push fail.
    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
        finish()
    }

    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return items.count - head
    }

    func next() async -> Element? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Element?, Never>) in
                condition.lock()
                if head < items.count {
                    let element = items[head]
                    head += 1
                    if head > 1024 && head * 2 > items.count {
                        items.removeFirst(head)
                        head = 0
                    }
                    condition.signal()
                    condition.unlock()
                    continuation.resume(returning: element)
                } else if finished || cancelled {
                    condition.unlock()
                    continuation.resume(returning: nil)
                } else {
                    waiter = continuation
                    condition.unlock()
                }
            }
        } onCancel: {
            self.cancel()
        }
    }
}

/// What the listener reports, in order: connection state changes and notifications between them.
package enum ListenerEvent: Sendable, Equatable {
    /// LISTEN is active. `reconnected` is false the first time: anything sent before this may have been missed.
    case connected(backendPID: Int32, reconnected: Bool)
    /// One notification on Freshet's channel.
    case notification(String)
    /// The connection was lost; notifications sent until the next `connected` are gone.
    case disconnected(reason: String)
}

/// The listener's events as an `AsyncSequence`, fed by its thread through a bounded buffer.
package struct ListenerEvents: AsyncSequence, Sendable {
    package typealias Element = ListenerEvent
    let buffer: HandoffBuffer<ListenerEvent>

    package struct AsyncIterator: AsyncIteratorProtocol {
        let buffer: HandoffBuffer<ListenerEvent>
        package mutating func next() async -> ListenerEvent? { await buffer.next() }
    }

    package func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: buffer) }
}

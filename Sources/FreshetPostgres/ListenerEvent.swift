/// What the listener reports, in order: connection state changes and notifications between them.
package enum ListenerEvent: Sendable, Equatable {
    /// LISTEN is active. `reconnected` is false the first time: anything sent before this may have been missed.
    case connected(backendPID: Int32, reconnected: Bool)
    /// One notification on Freshet's channel.
    case notification(String)
    /// The connection was lost; notifications sent until the next `connected` are gone.
    case disconnected(reason: String)
}

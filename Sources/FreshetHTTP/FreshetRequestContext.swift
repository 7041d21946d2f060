import Hummingbird
import Logging
import NIOCore

/// The request context: Hummingbird's core context plus the connection's channel, so that `/events` can notice a
/// client that went away and close a subscriber that fell behind.
public struct FreshetRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}

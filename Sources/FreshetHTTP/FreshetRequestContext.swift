import Hummingbird
import Logging
import NIOCore

/// The request context: Hummingbird's core context plus the connection's channel, so that `/events` can notice a
/// client that went away and close a subscriber that fell behind.
package struct FreshetRequestContext: RequestContext {
    package var coreContext: CoreRequestContextStorage
    package let channel: any Channel

    package init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}

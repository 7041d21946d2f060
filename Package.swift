// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "freshet",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "freshet", targets: ["freshet"]),
        .executable(name: "freshet-bench", targets: ["freshet-bench"]),
        .library(name: "Freshet", targets: ["Freshet"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "4.1.0"..<"5.0.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.20.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.27.0"),
    ],
    targets: [
        // C libraries, wrapped as system modules.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredict",
            providers: [.apt(["libhiredict-dev"])]
        ),

        // Pure logic: no I/O.
        .target(
            name: "FreshetCore",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
            ]
        ),

        // The operating system: dedicated threads, thread priority, open-file limit.
        .target(name: "FreshetSystem"),

        // One module per external system.
        .target(
            name: "FreshetPostgres",
            dependencies: [
                "CLibPQ",
                "FreshetCore",
                "FreshetSystem",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "FreshetRedis",
            dependencies: [
                "CHiredis",
                .product(name: "DequeModule", package: "swift-collections"),
                "FreshetCore",
                "FreshetSystem",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "FreshetHTTP",
            dependencies: [
                "FreshetCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [
                // The browser assets are files in the repo, compiled into the binary.
                .embedInCode("Assets/inspector.html"),
                .embedInCode("Assets/freshet.js"),
            ]
        ),

        // Wiring: the application the CLI and the tests both start.
        .target(
            name: "Freshet",
            dependencies: [
                "FreshetCore",
                "FreshetPostgres",
                "FreshetRedis",
                "FreshetHTTP",
                "FreshetSystem",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "freshet",
            dependencies: [
                "Freshet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The benchmark tool (docs/benchmarks.md): drives a real Freshet, PostgreSQL and Redis.
        .target(name: "CEpoll"),
        .executableTarget(
            name: "freshet-bench",
            dependencies: [
                "CEpoll",
                "FreshetCore",
                "FreshetSystem",
                "FreshetPostgres",
                "FreshetRedis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        .testTarget(
            name: "FreshetCoreTests",
            dependencies: ["FreshetCore"]
        ),
        // The SSE write path's bounds, on an embedded event loop.
        .testTarget(
            name: "FreshetHTTPTests",
            dependencies: [
                "FreshetCore",
                "FreshetHTTP",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The Redis writer's rules and batching, without a server.
        .testTarget(
            name: "FreshetRedisTests",
            dependencies: ["FreshetCore", "FreshetRedis"]
        ),
        .testTarget(
            name: "FreshetIntegrationTests",
            dependencies: [
                "freshet",  // built so that the CLI tests can run the real binary
                "freshet-bench",  // and the benchmark tool's smoke test
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
                "Freshet",
                "FreshetCore",
                "FreshetPostgres",
                "FreshetRedis",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)

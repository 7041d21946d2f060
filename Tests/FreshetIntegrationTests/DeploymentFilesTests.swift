import Foundation
import FreshetCore
import Testing
import Yams

/// What can be checked of the container files without a Docker engine: the compose file parses and names files that
/// exist, and the Dockerfile installs the packages the scripts install.
@Suite struct DeploymentFilesTests {
    static var root: URL {
        var dir = URL(fileURLWithPath: #filePath)
        while dir.path != "/" {
            dir = dir.deletingLastPathComponent()
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { return dir }
        }
        return dir
    }

    func read(_ path: String) throws -> String {
        try String(contentsOf: Self.root.appendingPathComponent(path), encoding: .utf8)
    }

    @Test func composeFileParsesAndNamesExistingFiles() throws {
        let compose = try #require(try Yams.load(yaml: try read("docker-compose.yml")) as? [String: Any])
        let services = try #require(compose["services"] as? [String: Any])
        #expect(Set(services.keys).isSuperset(of: ["postgres", "redis", "freshet", "app"]))
        for (name, value) in services {
            let service = try #require(value as? [String: Any])
            if let build = service["build"] as? String {
                #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(build).appendingPathComponent("Dockerfile").path), "\(name): \(build)/Dockerfile")
            }
            for volume in service["volumes"] as? [String] ?? [] {
                let source = String(volume.split(separator: ":")[0])
                if source.hasPrefix(".") {
                    #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(source).path), "\(name): \(source)")
                }
            }
        }
        let freshet = try #require(services["freshet"] as? [String: Any])
        let dependsOn = try #require(freshet["depends_on"] as? [String: Any])
        for dependency in ["postgres", "redis"] {
            #expect((dependsOn[dependency] as? [String: Any])?["condition"] as? String == "service_healthy")
        }
        let environment = try #require(freshet["environment"] as? [String: Any])
        #expect(environment["DATABASE_URL"] != nil && environment["REDIS_URL"] != nil)
    }

    @Test func theReplicatedExampleRunsTwoRelayedReplicasBehindAnUnbufferedProxy() throws {
        let config = try FreshetConfig.parse(yaml: try read("examples/replicated/freshet.yml"))
        #expect(config.http.relay == .redis)
        #expect(config.postgres.source == .replication)
        let compose = try #require(try Yams.load(yaml: try read("examples/replicated/docker-compose.yml")) as? [String: Any])
        let services = try #require(compose["services"] as? [String: Any])
        #expect(Set(services.keys).isSuperset(of: ["freshet-a", "freshet-b", "proxy", "postgres", "redis"]))
        for name in ["freshet-a", "freshet-b"] {
            let service = try #require(services[name] as? [String: Any])
            #expect(service["restart"] as? String == "unless-stopped")
            let build = try #require(service["build"] as? String)
            #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent("examples/replicated").appendingPathComponent(build).appendingPathComponent("Dockerfile").path))
        }
        let nginx = try read("examples/replicated/nginx.conf")
        #expect(nginx.contains("proxy_buffering off") && nginx.contains("freshet-a:8080") && nginx.contains("freshet-b:8080"))
    }

    @Test func dockerfileMirrorsTheScriptsPackages() throws {
        let dockerfile = try read("Dockerfile")
        let servers = try read("scripts/lib/servers.sh")
        let line = try #require(servers.split(separator: "\n").first { $0.hasPrefix("FRESHET_APT_PACKAGES=") })
        let backports = try #require(servers.split(separator: "\n").first { $0.hasPrefix("FRESHET_BACKPORTS_PACKAGES=") })
        let scriptPackages = Set((line.split(separator: "\"")[1] + " " + backports.split(separator: "\"")[1]).split(separator: " ").map(String.init))
        // Build stage: the -dev packages and pkg-config the scripts install (hiredict from bookworm-backports).
        #expect(dockerfile.contains("bookworm-backports"))
        for package in ["libpq-dev", "libssl-dev", "libhiredict-dev", "pkg-config"] {
            #expect(scriptPackages.contains(package))
            #expect(dockerfile.contains(package), "Dockerfile lacks \(package)")
        }
        // Runtime: the libraries those -dev packages link against, and nothing to build with.
        let runtime = String(dockerfile[dockerfile.range(of: "FROM debian")!.lowerBound...])
        #expect(runtime.contains("libpq5") && runtime.contains("libhiredict1.3.1"))
        #expect(!runtime.contains("-dev"))
        #expect(runtime.contains("USER freshet"))
        #expect(runtime.contains("HEALTHCHECK") && runtime.contains("/healthz"))
        #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(".dockerignore").path))
    }
}

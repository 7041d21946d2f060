import ArgumentParser
import Foundation
import Freshet
import FreshetCore
import Logging

/// `freshet`: the command line. Thin: parse, load the config, call into the `Freshet` module.
@main
struct FreshetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "freshet",
        abstract: "Reactive cache invalidation: PostgreSQL row changes → Redis keys deleted or rewritten → Server-Sent Events.",
        version: FreshetVersion.current,
        subcommands: [Run.self, Check.self, Tail.self, Triggers.self],
        defaultSubcommand: nil
    )
}

/// Options every command takes.
struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Configuration file (default ./freshet.yml; env FRESHET_CONFIG).")
    var config: String?

    func load() throws -> FreshetConfig {
        do {
            return try ConfigLoader.load(flag: config)
        } catch {
            FileHandle.standardError.write(Data("freshet: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

enum FreshetVersion {
    static let current = "0.1.0"
}

/// Prints a line to stdout and flushes it at once.
@Sendable func printLine(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Maps an error to the contract's exit codes: 2 for configuration problems, 1 for anything else.
func fail(_ error: Error) -> ExitCode {
    if let exit = error as? ExitCode { return exit }
    if let config = error as? ConfigError {
        FileHandle.standardError.write(Data("freshet: \(config)\n".utf8))
        return ExitCode(2)
    }
    FileHandle.standardError.write(Data("freshet: \(error)\n".utf8))
    return ExitCode(1)
}

func makeLogger(_ config: FreshetConfig) -> Logger {
    let level = Logger.Level(rawValue: config.log.level) ?? .info
    let format = config.log.format
    LoggingSystem.bootstrap { label in
        var handler: LogHandler = format == .json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    return Logger(label: "freshet")
}

extension FreshetCommand {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the sidecar: install triggers, listen, invalidate, stream events.")
        @OptionGroup var options: ConfigOption
        @Flag(name: .long, help: "Do not install the triggers at start.") var noInstall = false
        @Flag(name: .long, help: "Print the effective configuration (secrets redacted) and exit.") var printConfig = false

        func run() async throws {
            let config = try options.load()
            if printConfig {
                FileHandle.standardOutput.write(Data(ConfigPrinter.yaml(config).utf8))
                return
            }
            let logger = makeLogger(config)
            do {
                let metrics = config.http.metrics ? MetricsExport.bootstrap() : nil
                let app = try FreshetApplication(
                    config: config, options: RunOptions(installTriggers: !noInstall, metrics: metrics), logger: logger
                )
                SecondSignal.install(logger: logger)
                ProcessTuning.apply(logger: logger)
                try await app.run()
            } catch {
                // Logged through the configured handler, so JSON logs stay one object per line.
                logger.critical("freshet stopped: \(error)")
                throw error is ConfigError ? ExitCode(2) : ExitCode(1)
            }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate the config and check that PostgreSQL, Redis and every table and column exist.")
        @OptionGroup var options: ConfigOption

        func run() async throws {
            let config = try options.load()
            do {
                let report = try OneShotCommands.check(config)
                report.lines.forEach(printLine)
                if !report.ok { throw ExitCode(1) }
            } catch {
                throw fail(error)
            }
        }
    }

    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print each change as one JSON line (event + Redis operations run would perform). Acts on nothing.")
        @OptionGroup var options: ConfigOption

        func run() async throws {
            let config = try options.load()
            let logger = makeLogger(config)
            do {
                try await OneShotCommands.tail(config, logger: logger, print: printLine)
            } catch {
                throw fail(error)
            }
        }
    }

    struct Triggers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print, install or remove Freshet's triggers.",
            subcommands: [SQLCommand.self, Install.self, Uninstall.self]
        )

        struct SQLCommand: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "sql", abstract: "Print the trigger DDL (reads primary keys; changes nothing).")
            @OptionGroup var options: ConfigOption
            func run() async throws {
                let config = try options.load()
                do { printLine(try OneShotCommands.triggerSQL(config)) } catch { throw fail(error) }
            }
        }

        struct Install: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Install the triggers (idempotent).")
            @OptionGroup var options: ConfigOption
            func run() async throws {
                let config = try options.load()
                do {
                    let tables = try OneShotCommands.applyTriggers(config, install: true)
                    printLine("installed triggers on \(tables.map(\.name).joined(separator: ", "))")
                } catch { throw fail(error) }
            }
        }

        struct Uninstall: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove the triggers (and Freshet's function once unused).")
            @OptionGroup var options: ConfigOption
            func run() async throws {
                let config = try options.load()
                do {
                    let tables = try OneShotCommands.applyTriggers(config, install: false)
                    printLine("removed triggers from \(tables.map(\.name).joined(separator: ", "))")
                } catch { throw fail(error) }
            }
        }
    }
}


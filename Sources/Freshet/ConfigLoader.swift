import Foundation
import FreshetCore

/// Reads the configuration file named by `--config`, `FRESHET_CONFIG`, or `./freshet.yml`, in that order.
public enum ConfigLoader {
    public static func path(flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let flag { return flag }
        if let env = environment["FRESHET_CONFIG"], !env.isEmpty { return env }
        return "freshet.yml"
    }

    /// Loads and validates the file; every problem is a `ConfigError` (exit 2).
    public static func load(flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError) -> FreshetConfig {
        let path = path(flag: flag, environment: environment)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, problems: [ConfigProblem(field: "", message: "cannot read \(path) (set --config or FRESHET_CONFIG)")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, problems: [ConfigProblem(field: "", message: "\(path) is not UTF-8 text")])
        }
        return try FreshetConfig.parse(yaml: text, environment: environment, file: path)
    }
}

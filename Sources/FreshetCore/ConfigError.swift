/// One thing wrong with the configuration, naming the field (`tables[0].redis[1].key`) and, where known, the file line.
public struct ConfigProblem: Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var line: Int?
    public var message: String

    public init(field: String, line: Int? = nil, message: String) {
        self.field = field
        self.line = line
        self.message = message
    }

    public var description: String {
        let place = line.map { "line \($0): " } ?? ""
        return field.isEmpty ? "\(place)\(message)" : "\(place)\(field): \(message)"
    }
}

/// Every problem found in a configuration. The CLI prints them all and exits with code 2.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String?
    public var problems: [ConfigProblem]

    public init(file: String? = nil, problems: [ConfigProblem]) {
        self.file = file
        self.problems = problems
    }

    public var description: String {
        let header = "invalid configuration" + (file.map { " in \($0)" } ?? "")
        return ([header + ":"] + problems.map { "  - \($0)" }).joined(separator: "\n")
    }
}

import FreshetCore

/// Applies the trigger DDL from `TriggerSQL`.
package enum TriggerInstaller {
    package static func install(_ tables: [ResolvedTable], channel: String, on connection: PGConnection) throws(PostgresError) {
        do {
            try connection.execute(TriggerSQL.install(tables: tables, channel: channel))
        } catch {
            _ = try? connection.execute("ROLLBACK")
            throw error
        }
    }

    package static func uninstall(_ tables: [ResolvedTable], on connection: PGConnection) throws(PostgresError) {
        do {
            try connection.execute(TriggerSQL.uninstall(tables: tables))
        } catch {
            _ = try? connection.execute("ROLLBACK")
            throw error
        }
    }
}

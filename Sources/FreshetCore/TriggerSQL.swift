/// Generates the DDL that installs and removes Freshet's triggers.
///
/// Everything Freshet creates lives in the `freshet` schema (one function, `freshet.notify_change()`) or is named
/// `freshet_*` (the triggers). Every identifier is quoted, every literal escaped, and the function pins its
/// `search_path`, so neither a table name nor a hostile `search_path` can inject SQL.
public enum TriggerSQL {
    /// The schema holding Freshet's function.
    public static let schemaName = "freshet"
    /// The row trigger's name on each table.
    public static let rowTriggerName = "freshet_change"
    /// The statement trigger's name on each table.
    public static let truncateTriggerName = "freshet_truncate"
    /// NOTIFY's payload limit is 8000 bytes; stay under it.
    public static let payloadLimit = 7900

    /// The whole install script: idempotent, in one transaction, serialised with an advisory lock.
    public static func install(tables: [ResolvedTable], channel: String) -> String {
        var sql = """
            BEGIN;
            SET LOCAL client_min_messages = warning;
            SELECT pg_catalog.pg_advisory_xact_lock(\(advisoryLockKey));
            CREATE SCHEMA IF NOT EXISTS \(SQL.quoteIdentifier(schemaName));
            \(functionDefinition)

            """
        for table in tables {
            sql += triggerDefinition(table: table, channel: channel)
        }
        sql += "COMMIT;\n"
        return sql
    }

    /// Removes the triggers of the given tables, and the function once no trigger uses it any more.
    public static func uninstall(tables: [ResolvedTable]) -> String {
        var sql = "BEGIN;\nSET LOCAL client_min_messages = warning;\nSELECT pg_catalog.pg_advisory_xact_lock(\(advisoryLockKey));\n"
        for table in tables {
            let name = table.schema.quotedName
            sql += "DROP TRIGGER IF EXISTS \(SQL.quoteIdentifier(rowTriggerName)) ON \(name);\n"
            sql += "DROP TRIGGER IF EXISTS \(SQL.quoteIdentifier(truncateTriggerName)) ON \(name);\n"
        }
        sql += """
            DO $freshet$
            BEGIN
              IF NOT EXISTS (
                SELECT 1 FROM pg_catalog.pg_trigger t
                JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
                JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = \(SQL.quoteLiteral(schemaName))
              ) THEN
                DROP SCHEMA IF EXISTS \(SQL.quoteIdentifier(schemaName)) CASCADE;
              END IF;
            END
            $freshet$;
            COMMIT;

            """
        return sql
    }

    /// A fixed key so that concurrent installs from several replicas queue up instead of racing.
    static let advisoryLockKey = 0x66726573  // "fres"

    static func triggerDefinition(table: ResolvedTable, channel: String) -> String {
        let name = table.schema.quotedName
        let rowTrigger = SQL.quoteIdentifier(rowTriggerName)
        let truncateTrigger = SQL.quoteIdentifier(truncateTriggerName)
        let function = SQL.quoteIdentifier(schemaName) + "." + SQL.quoteIdentifier("notify_change")
        let arguments = [
            SQL.quoteLiteral(channel),
            SQL.quoteLiteral(arrayLiteral(table.config.ignoreColumns)),
            SQL.quoteLiteral(arrayLiteral(table.minimalColumns)),
            SQL.quoteLiteral(table.rowColumns.map(arrayLiteral) ?? "*"),
        ].joined(separator: ", ")
        return """
            DROP TRIGGER IF EXISTS \(rowTrigger) ON \(name);
            CREATE TRIGGER \(rowTrigger) AFTER INSERT OR UPDATE OR DELETE ON \(name)
              FOR EACH ROW EXECUTE FUNCTION \(function)(\(arguments));
            DROP TRIGGER IF EXISTS \(truncateTrigger) ON \(name);
            CREATE TRIGGER \(truncateTrigger) AFTER TRUNCATE ON \(name)
              FOR EACH STATEMENT EXECUTE FUNCTION \(function)(\(arguments));

            """
    }

    /// A PostgreSQL `text[]` literal: `{"a","b"}` with `"` and `\` escaped.
    static func arrayLiteral(_ items: [String]) -> String {
        let quoted = items.map { item -> String in
            var out = "\""
            for ch in item {
                if ch == "\"" || ch == "\\" { out.append("\\") }
                out.append(ch)
            }
            return out + "\""
        }
        return "{" + quoted.joined(separator: ",") + "}"
    }

    /// The trigger function. Arguments: channel, ignored columns, minimal columns, row columns (`*` for all).
    ///
    /// It never makes the application's write fail: an oversized payload is cut down to the minimal columns
    /// (`"partial":true`), then to no row at all (`"overflow":true`, Freshet invalidates the whole table), and any
    /// error is turned into an overflow notification and a WARNING instead of an exception.
    static let functionDefinition = """
        CREATE OR REPLACE FUNCTION "freshet"."notify_change"() RETURNS trigger
        LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp
        AS $freshet$
        DECLARE
          channel text := TG_ARGV[0];
          ignored text[] := TG_ARGV[1]::text[];
          minimal text[] := TG_ARGV[2]::text[];
          wanted text := TG_ARGV[3];
          old_row jsonb;
          new_row jsonb;
          head jsonb;
          payload text;
        BEGIN
          head := jsonb_build_object('v', 1, 'op', lower(TG_OP), 'schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME,
                                     'at', clock_timestamp());
          IF TG_OP = 'TRUNCATE' THEN
            PERFORM pg_notify(channel, head::text);
            RETURN NULL;
          END IF;
          BEGIN
            IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
            IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
            IF TG_OP = 'UPDATE' AND (old_row - ignored) = (new_row - ignored) THEN
              RETURN NULL;
            END IF;
            IF wanted <> '*' THEN
              old_row := (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(old_row) e WHERE e.key = ANY (wanted::text[]));
              new_row := (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(new_row) e WHERE e.key = ANY (wanted::text[]));
            END IF;
            payload := (head || jsonb_build_object('old', old_row, 'new', new_row))::text;
            IF octet_length(payload) > \(payloadLimit) THEN
              old_row := (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(old_row) e WHERE e.key = ANY (minimal));
              new_row := (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(new_row) e WHERE e.key = ANY (minimal));
              payload := (head || jsonb_build_object('old', old_row, 'new', new_row, 'partial', true))::text;
            END IF;
            IF octet_length(payload) > \(payloadLimit) THEN
              payload := (head || jsonb_build_object('overflow', true))::text;
            END IF;
            PERFORM pg_notify(channel, payload);
          EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'freshet: change on %.% sent without row data: %', TG_TABLE_SCHEMA, TG_TABLE_NAME, SQLERRM;
            PERFORM pg_notify(channel, (head || jsonb_build_object('overflow', true))::text);
          END;
          RETURN NULL;
        END
        $freshet$;
        """
}

/// Generates the DDL that installs and removes Freshet's triggers.
///
/// Everything Freshet creates lives in the `freshet` schema (one function, `freshet.notify_change()`) or is named
/// `freshet_*` (the triggers). Every identifier is quoted, every literal escaped, and the function pins its
/// `search_path`, so neither a table name nor a hostile `search_path` can inject SQL.
///
/// The triggers are statement-level with transition tables: a statement touching N rows runs the function once and
/// sends its rows packed into as few notifications as fit under NOTIFY's limit (`"rows":[…]`), instead of one
/// trigger call and one notification per row. A 200,000-row UPDATE costs the writer a few seconds less for it.
public enum TriggerSQL {
    /// The schema holding Freshet's function.
    public static let schemaName = "freshet"
    /// The statement triggers on each table, one per event (PostgreSQL allows transition tables on single-event
    /// triggers only), then the truncate trigger.
    public static let triggerNames = ["freshet_insert", "freshet_update", "freshet_delete", "freshet_truncate"]
    /// The row trigger of Freshet versions before statement-level triggers; install and uninstall remove it.
    static let legacyTriggerNames = ["freshet_change"]
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
            for trigger in legacyTriggerNames + triggerNames {
                sql += "DROP TRIGGER IF EXISTS \(SQL.quoteIdentifier(trigger)) ON \(name);\n"
            }
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
        let function = SQL.quoteIdentifier(schemaName) + "." + SQL.quoteIdentifier("notify_change")
        let arguments = [
            SQL.quoteLiteral(channel),
            SQL.quoteLiteral(arrayLiteral(table.config.ignoreColumns)),
            SQL.quoteLiteral(arrayLiteral(table.minimalColumns)),
            SQL.quoteLiteral(table.rowColumns.map(arrayLiteral) ?? "*"),
        ].joined(separator: ", ")
        let events: [(trigger: String, event: String, referencing: String)] = [
            ("freshet_insert", "INSERT", " REFERENCING NEW TABLE AS freshet_new"),
            ("freshet_update", "UPDATE", " REFERENCING OLD TABLE AS freshet_old NEW TABLE AS freshet_new"),
            ("freshet_delete", "DELETE", " REFERENCING OLD TABLE AS freshet_old"),
            ("freshet_truncate", "TRUNCATE", ""),
        ]
        var sql = ""
        for trigger in legacyTriggerNames {
            sql += "DROP TRIGGER IF EXISTS \(SQL.quoteIdentifier(trigger)) ON \(name);\n"
        }
        for (trigger, event, referencing) in events {
            sql += """
                DROP TRIGGER IF EXISTS \(SQL.quoteIdentifier(trigger)) ON \(name);
                CREATE TRIGGER \(SQL.quoteIdentifier(trigger)) AFTER \(event) ON \(name)\(referencing)
                  FOR EACH STATEMENT EXECUTE FUNCTION \(function)(\(arguments));

                """
        }
        return sql + "\n"
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

    /// SQL for the keys of the JSON row `row` that are not wanted (`'{}'` when every column is wanted): what the
    /// trigger leaves out. Read from the row itself, not the catalog (every row of a statement has the same columns).
    static func unwanted(_ row: String) -> String {
        "CASE WHEN wanted IS NULL THEN '{}'::text[] ELSE ARRAY(SELECT k FROM jsonb_object_keys(\(row)) k WHERE NOT (k = ANY (wanted))) END"
    }

    /// The trigger function. Arguments: channel, ignored columns, minimal columns, row columns (`*` for all).
    ///
    /// Runs once per statement. Each row becomes `{"old":…,"new":…}` holding only the row columns; rows are packed
    /// into notifications of at most `payloadLimit` bytes: `{"v":1,"op":…,"schema":…,"table":…,"at":…,"rows":[…]}`.
    ///
    /// A statement of **one row** (most writes) takes a short path: one query, no cursor, no pairing by position.
    /// Measured per single-row UPDATE (`scripts/bench-write-cost`, docs/benchmarks.md) the function costs about half
    /// of what it did before that path.
    ///
    /// The general path (several rows, or one too large to fit) pairs old and new rows of an UPDATE by their position
    /// in the transition tables (PostgreSQL fills both in the same order), so a row whose key changed keeps its old and
    /// new key; it reads the rows through a cursor, so a statement of millions of rows is streamed, not held in memory.
    /// It never makes the application's write fail: both paths run in one subtransaction (`BEGIN … EXCEPTION`, ~10 µs);
    /// a row too large to fit is cut down to the minimal columns (`"partial":true` on that row), and one that still
    /// does not fit, or any error (a row whose JSON would pass jsonb's 256 MB limit), becomes one key-less
    /// `"overflow":true` notification for the statement (Freshet invalidates the whole table) and a WARNING.
    ///
    /// The columns left out (`dropped`) are read from the statement's first row, not from the catalog: every row of a
    /// statement has the same columns, and a catalog query per statement cost more than the rest of the short path.
    static let functionDefinition = """
        CREATE OR REPLACE FUNCTION "freshet"."notify_change"() RETURNS trigger
        LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp
        AS $freshet$
        DECLARE
          channel text := TG_ARGV[0];
          ignored text[] := TG_ARGV[1]::text[];
          minimal text[] := TG_ARGV[2]::text[];
          wanted text[] := CASE WHEN TG_ARGV[3] = '*' THEN NULL ELSE TG_ARGV[3]::text[] END;
          dropped text[] := '{}';
          head text;
          prefix text;
          room integer;
          pending refcursor;
          item text;
          buffer text := '';
          overflow boolean := false;
        BEGIN
          -- The notification's head without its closing brace: {"v":1,"op":…,"schema":…,"table":…,"at":…
          head := '{"v":1,"op":"' || lower(TG_OP) || '","schema":' || to_json(TG_TABLE_SCHEMA::text)::text
                  || ',"table":' || to_json(TG_TABLE_NAME::text)::text || ',"at":' || to_json(clock_timestamp())::text;
          IF TG_OP = 'TRUNCATE' THEN
            PERFORM pg_notify(channel, head || '}');
            RETURN NULL;
          END IF;
          prefix := head || ',"rows":[';
          room := \(payloadLimit) - octet_length(prefix) - 2;
          -- Inside one subtransaction: an error (a row past jsonb's 256 MB, say) becomes an `overflow` notification,
          -- never the application's failed write.
          BEGIN
            -- One row: one query, no cursor. NULL item: an UPDATE of ignored columns only.
            IF TG_OP = 'INSERT' THEN
              IF (SELECT count(*) FROM (SELECT FROM freshet_new LIMIT 2) r) = 1 THEN
                SELECT jsonb_build_object('old', NULL, 'new', n.j - \(unwanted("n.j")))::text
                INTO item FROM (SELECT to_jsonb(t) AS j FROM freshet_new t) n;
                IF octet_length(item) <= room THEN
                  PERFORM pg_notify(channel, prefix || item || ']}');
                  RETURN NULL;
                END IF;
              END IF;
            ELSIF TG_OP = 'DELETE' THEN
              IF (SELECT count(*) FROM (SELECT FROM freshet_old LIMIT 2) r) = 1 THEN
                SELECT jsonb_build_object('old', o.j - \(unwanted("o.j")), 'new', NULL)::text
                INTO item FROM (SELECT to_jsonb(t) AS j FROM freshet_old t) o;
                IF octet_length(item) <= room THEN
                  PERFORM pg_notify(channel, prefix || item || ']}');
                  RETURN NULL;
                END IF;
              END IF;
            ELSIF (SELECT count(*) FROM (SELECT FROM freshet_new LIMIT 2) r) = 1 THEN
              SELECT CASE WHEN (o.j - ignored) IS DISTINCT FROM (n.j - ignored) THEN
                       jsonb_build_object('old', o.j - d.keys, 'new', n.j - d.keys)::text END
              INTO item
              FROM (SELECT to_jsonb(t) AS j FROM freshet_old t) o, (SELECT to_jsonb(t) AS j FROM freshet_new t) n,
                   LATERAL (SELECT \(unwanted("n.j")) AS keys) d;
              IF item IS NULL THEN
                RETURN NULL;
              END IF;
              IF octet_length(item) <= room THEN
                PERFORM pg_notify(channel, prefix || item || ']}');
                RETURN NULL;
              END IF;
            END IF;
            IF TG_OP = 'DELETE' THEN
              dropped := \(unwanted("(SELECT to_jsonb(t) FROM freshet_old t LIMIT 1)"));
            ELSE
              dropped := \(unwanted("(SELECT to_jsonb(t) FROM freshet_new t LIMIT 1)"));
            END IF;
            -- Each row as {"old":…,"new":…}; cut to the minimal columns (partial) when it alone would not fit.
            -- Static SQL, so that its plan is cached for the session; read through a cursor, so that a statement of
            -- millions of rows is streamed, not held in memory.
            IF TG_OP = 'INSERT' THEN
              OPEN pending FOR SELECT (CASE WHEN octet_length(x.item) <= room THEN x.item ELSE jsonb_build_object('old', NULL,
                       'new', (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(x.n) e WHERE e.key = ANY (minimal)),
                       'partial', true)::text END)
              FROM (SELECT n.j AS n, jsonb_build_object('old', NULL, 'new', n.j - dropped)::text AS item
                    FROM (SELECT to_jsonb(t) AS j FROM freshet_new t) n) x;
            ELSIF TG_OP = 'DELETE' THEN
              OPEN pending FOR SELECT (CASE WHEN octet_length(x.item) <= room THEN x.item ELSE jsonb_build_object(
                       'old', (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(x.o) e WHERE e.key = ANY (minimal)),
                       'new', NULL, 'partial', true)::text END)
              FROM (SELECT o.j AS o, jsonb_build_object('old', o.j - dropped, 'new', NULL)::text AS item
                    FROM (SELECT to_jsonb(t) AS j FROM freshet_old t) o) x;
            ELSE
              -- Old and new rows pair up by position: PostgreSQL fills both transition tables in the same order.
              OPEN pending FOR SELECT (CASE WHEN octet_length(x.item) <= room THEN x.item ELSE jsonb_build_object(
                       'old', (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(x.o) e WHERE e.key = ANY (minimal)),
                       'new', (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(x.n) e WHERE e.key = ANY (minimal)),
                       'partial', true)::text END)
              FROM (SELECT o.j AS o, n.j AS n, jsonb_build_object('old', o.j - dropped, 'new', n.j - dropped)::text AS item
                    FROM (SELECT row_number() OVER () AS i, to_jsonb(t) AS j FROM freshet_old t) o
                    JOIN (SELECT row_number() OVER () AS i, to_jsonb(t) AS j FROM freshet_new t) n USING (i)
                    WHERE (o.j - ignored) IS DISTINCT FROM (n.j - ignored)) x;
            END IF;
            -- Pack the rows into as few notifications as fit.
            LOOP
              FETCH pending INTO item;
              EXIT WHEN NOT FOUND;
              IF octet_length(item) > room THEN
                overflow := true;
                CONTINUE;
              END IF;
              IF buffer <> '' AND octet_length(buffer) + 1 + octet_length(item) > room THEN
                PERFORM pg_notify(channel, prefix || buffer || ']}');
                buffer := '';
              END IF;
              buffer := CASE WHEN buffer = '' THEN item ELSE buffer || ',' || item END;
            END LOOP;
            CLOSE pending;
            IF buffer <> '' THEN
              PERFORM pg_notify(channel, prefix || buffer || ']}');
            END IF;
            IF overflow THEN
              PERFORM pg_notify(channel, head || ',"overflow":true}');
            END IF;
          EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'freshet: change on %.% sent without row data: %', TG_TABLE_SCHEMA, TG_TABLE_NAME, SQLERRM;
            PERFORM pg_notify(channel, head || ',"overflow":true}');
          END;
          RETURN NULL;
        END
        $freshet$;
        """
}

#!/usr/bin/env python3
"""A small example app next to Freshet: cache-aside reads through Redis with no TTL, a page that refreshes itself
through freshet.js when a row changes. Python's standard library only; PostgreSQL through the `psql` client.

Environment:
  DATABASE_URL   PostgreSQL URL (required)
  REDIS_URL      redis://[:password@]host[:port][/db] (default redis://127.0.0.1:6379/0)
  FRESHET_URL    Freshet's URL as the browser sees it (default http://127.0.0.1:8080)
  KEY_TEMPLATE   the cache key of a user, as in Freshet's config (default user:{id})
  HOST, PORT     where to listen (default 127.0.0.1:8000)
"""
import html
import json
import os
import socket
import subprocess
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
FRESHET_URL = os.environ.get("FRESHET_URL", "http://127.0.0.1:8080").rstrip("/")
KEY_TEMPLATE = os.environ.get("KEY_TEMPLATE", "user:{id}")


class Redis:
    """Just enough RESP for GET and SET, one short connection per command."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 6379
        self.password = urllib.parse.unquote(u.password) if u.password else None
        self.db = int(u.path.strip("/") or 0)

    def _command(self, sock, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        sock.sendall(out)
        f = sock.makefile("rb")
        line = f.readline()
        if line.startswith(b"-"):
            raise RuntimeError(line[1:].strip().decode())
        if line.startswith(b"$"):
            n = int(line[1:])
            return None if n < 0 else f.read(n + 2)[:-2].decode()
        return line[1:].strip().decode()

    def call(self, *args):
        with socket.create_connection((self.host, self.port), timeout=5) as sock:
            if self.password:
                self._command(sock, "AUTH", self.password)
            if self.db:
                self._command(sock, "SELECT", str(self.db))
            return self._command(sock, *args)


redis = Redis(REDIS_URL)


def sql_json(query, *params):
    """Runs a query with psql and returns its single JSON value (psql -v binds the parameters safely)."""
    args = ["psql", DATABASE_URL, "-XAtq", "-v", "ON_ERROR_STOP=1"]
    for i, p in enumerate(params):
        args += ["-v", f"p{i}={p}"]
    result = subprocess.run(args, input=query, capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip())
    text = result.stdout.strip()
    return json.loads(text) if text else None


def load_user(user_id):
    """Cache-aside: Redis first, PostgreSQL on a miss, then cache without a TTL (Freshet invalidates)."""
    key = KEY_TEMPLATE.replace("{id}", str(user_id))
    cached = redis.call("GET", key)
    if cached is not None:
        return json.loads(cached), "hit"
    row = sql_json("SELECT row_to_json(u) FROM (SELECT id, name, email FROM users WHERE id = :'p0'::int) u", user_id)
    if row is not None:
        redis.call("SET", key, json.dumps(row))
    return row, "miss"


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example app · Freshet</title>
<style>
 body {{ font: 15px/1.5 system-ui, sans-serif; margin: 40px auto; max-width: 720px; color: #1c2430; }}
 h1 {{ font-size: 20px; }} table {{ width: 100%; border-collapse: collapse; }}
 td, th {{ text-align: left; padding: 8px; border-bottom: 1px solid #e3e6eb; }}
 .flash {{ animation: flash 1.5s ease-out; }} @keyframes flash {{ from {{ background: #ecfeff; }} to {{ background: none; }} }}
 #state {{ font-size: 12px; color: #6b7585; }}
</style></head>
<body>
<h1>Users <span id="state">connecting…</span></h1>
<p>Rows are cached in Redis with no TTL. Change one in PostgreSQL and this page updates, read fresh through the cache.</p>
<table><thead><tr><th>id</th><th>name</th><th>email</th><th>read from</th></tr></thead><tbody id="users">{rows}</tbody></table>
<script src="{freshet}/freshet.js"></script>
<script>
  function render(user, source) {{
    let tr = document.getElementById("user-" + user.id);
    if (!tr) {{ tr = document.createElement("tr"); tr.id = "user-" + user.id; document.getElementById("users").appendChild(tr); }}
    tr.innerHTML = "";
    for (const v of [user.id, user.name, user.email || "", source]) {{
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }}
    tr.className = "flash";
  }}
  Freshet.subscribe(["users/*"], async (change) => {{
    const id = change.key.id;
    if (change.op === "delete") {{ document.getElementById("user-" + id)?.remove(); return; }}
    const response = await fetch("/api/users/" + id);
    if (response.ok) render(await response.json(), response.headers.get("X-Cache"));
  }}, {{
    url: "{freshet}",
    onResync: () => location.reload(),
    onStatus: (s) => document.getElementById("state").textContent = s === "open" ? "live" : s,
  }});
</script>
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    def send(self, status, body, content_type="application/json", headers=None):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = urllib.parse.urlparse(self.path).path
        try:
            if path == "/":
                ids = sql_json("SELECT coalesce(json_agg(id ORDER BY id), '[]') FROM users") or []
                rows = ""
                for user_id in ids:
                    user, source = load_user(user_id)
                    if user:
                        cells = "".join(f"<td>{html.escape(str(user.get(c) or ''))}</td>" for c in ("id", "name", "email"))
                        rows += f'<tr id="user-{user_id}">{cells}<td>{source}</td></tr>'
                self.send(200, PAGE.format(rows=rows, freshet=html.escape(FRESHET_URL)), "text/html; charset=utf-8")
            elif path.startswith("/api/users/") and path.rsplit("/", 1)[1].isdigit():
                user, source = load_user(int(path.rsplit("/", 1)[1]))
                if user is None:
                    self.send(404, '{"error":"no such user"}')
                else:
                    self.send(200, json.dumps(user), headers={"X-Cache": source})
            elif path == "/healthz":
                self.send(200, '{"status":"ok"}')
            else:
                self.send(404, '{"error":"not found"}')
        except Exception as error:  # report, do not crash the server
            self.send(500, json.dumps({"error": str(error)}))

    def log_message(self, fmt, *args):
        sys.stderr.write("app: " + (fmt % args) + "\n")


def main():
    if not DATABASE_URL:
        sys.exit("app: DATABASE_URL is required")
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer((host, port), Handler)
    print(f"app: listening on http://{host}:{port} (Freshet at {FRESHET_URL})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

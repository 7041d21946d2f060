#!/usr/bin/env python3
"""The chaos soak behind scripts/soak. Needs DATABASE_URL, REDIS_URL, FRESHET_PG_DATA, FRESHET_PG_CTL,
FRESHET_REDIS_PORT and FRESHET_SERVERS_DIR from scripts/lib/servers.sh.

Writes: single-row UPDATEs on soak_items at random. Cache: every half second a batch of keys is filled the way an
app would (SET placeholder, read the row, SET old:<v> XX), so a key holding old:<v> while the row's v has moved on is
stale, unless Freshet deleted it. Faults, at random every few seconds: pg_terminate_backend of the listener, a
PostgreSQL restart, Redis SIGSTOP/SIGCONT, CLIENT KILL, slow and vanishing SSE clients.
"""
import argparse, json, os, random, signal, socket, subprocess, sys, time, urllib.request

DB, REDIS_PORT = os.environ["DATABASE_URL"], int(os.environ["FRESHET_REDIS_PORT"])
ROWS = 2000


def psql(sql, check=True):
    r = subprocess.run(["psql", DB, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise RuntimeError(r.stderr)
    return r.stdout if r.returncode == 0 else None


def redis(*args):
    out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in map(str, args))
    with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=5) as s:
        s.sendall(out)
        f = s.makefile("rb")
        line = f.readline()
        if line.startswith(b"$"):
            n = int(line[1:])
            return None if n < 0 else f.read(n + 2)[:-2].decode()
        if line.startswith(b"*"):
            items = []
            for _ in range(int(line[1:])):
                n = int(f.readline()[1:])
                items.append(f.read(n + 2)[:-2].decode() if n >= 0 else None)
            return items
        return line[1:].strip().decode()


def pg_ctl(*args):
    cmd = [os.environ["FRESHET_PG_CTL"], "-D", os.environ["FRESHET_PG_DATA"], *args]
    if os.getuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    subprocess.run(cmd, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def ready(port):
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200
    except Exception:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--freshet", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()

    psql(f"DROP TABLE IF EXISTS soak_items; CREATE TABLE soak_items (id int PRIMARY KEY, v int NOT NULL);"
         f"INSERT INTO soak_items SELECT g, 0 FROM generate_series(1, {ROWS}) g")
    port = 18000 + random.randint(0, 9000)
    config = os.path.join(a.work, "soak.yml")
    with open(config, "w") as f:
        f.write(f"""postgres: {{url: "{DB}"}}
redis: {{url: "redis://127.0.0.1:{REDIS_PORT}/0", timeout: 0.5, max_outage: 5, max_pending: 50000}}
http: {{listen: "127.0.0.1:{port}", client_buffer: 65536}}
log: {{level: warning}}
tables:
  - name: soak_items
    redis:
      - key: "soak:{{id}}"
      - key: "soakrow:{{id}}"
        action: set
""")
    log = open(os.path.join(a.work, "freshet.log"), "w")
    freshet = subprocess.Popen([a.freshet, "run", "--config", config], stdout=log, stderr=log)
    deadline = time.time() + 30
    while not ready(port) and time.time() < deadline:
        time.sleep(0.1)
    if not ready(port):
        sys.exit("freshet did not become ready")

    writer = None
    changes, faults, peak = 0, {}, rss_mb(freshet.pid)
    clients = []
    end = time.time() + a.minutes * 60
    next_fault, next_fill = time.time() + 5, time.time()
    redis_paused_until = 0
    redis_pid = int(open(os.path.join(os.environ["FRESHET_SERVERS_DIR"], "redis.pid")).read())
    print(f"soak: {a.minutes} min, {ROWS} rows, Freshet pid {freshet.pid} on :{port}", flush=True)
    while time.time() < end:
        now = time.time()
        if writer is None or writer.poll() is not None:
            writer = subprocess.Popen(["psql", DB, "-Xq"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, text=True)
        try:
            for _ in range(20):
                writer.stdin.write(f"UPDATE soak_items SET v = v + 1 WHERE id = {random.randint(1, ROWS)};\n")
                changes += 1
            writer.stdin.flush()
        except (BrokenPipeError, OSError):
            writer = None
        if redis_paused_until and now >= redis_paused_until:
            os.kill(redis_pid, signal.SIGCONT)
            redis_paused_until = 0
        if now >= next_fill and not redis_paused_until:
            ids = random.sample(range(1, ROWS + 1), 50)
            try:
                for i in ids:
                    redis("SET", f"soak:{i}", "placeholder")
                rows = psql(f"SELECT id, v FROM soak_items WHERE id IN ({','.join(map(str, ids))})", check=False)
                for line in (rows or "").split():
                    i, v = line.split("|")
                    redis("SET", f"soak:{i}", f"old:{v}", "XX")
            except Exception:
                pass
            next_fill = now + 0.5
        if now >= next_fault:
            fault = random.choice(["terminate", "restart_pg", "pause_redis", "client_kill", "slow_client", "vanishing_client"])
            faults[fault] = faults.get(fault, 0) + 1
            try:
                if fault == "terminate":
                    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'freshet-listener'", check=False)
                elif fault == "restart_pg":
                    pg_ctl("-w", "-m", "fast", "restart", "-l", os.path.join(os.environ["FRESHET_SERVERS_DIR"], "postgres.log"),
                           "-o", f"-c listen_addresses=127.0.0.1 -p {os.environ['FRESHET_PG_PORT']} -k {os.environ['FRESHET_SERVERS_DIR']} -c fsync=off -c max_connections=200")
                    writer = None
                elif fault == "pause_redis":
                    os.kill(redis_pid, signal.SIGSTOP)
                    redis_paused_until = now + random.uniform(1, 7)
                elif fault == "client_kill":
                    redis("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
                elif fault == "slow_client":
                    clients.append(subprocess.Popen(["curl", "-sN", "--limit-rate", "2k", f"http://127.0.0.1:{port}/events"],
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                else:
                    c = subprocess.Popen(["curl", "-sN", f"http://127.0.0.1:{port}/events"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(random.uniform(0, 1))
                    c.kill()
            except Exception as e:
                print(f"soak: fault {fault} failed: {e}", flush=True)
            next_fault = now + random.uniform(3, 10)
        if freshet.poll() is not None:
            sys.exit(f"freshet exited with {freshet.returncode}")
        peak = max(peak, rss_mb(freshet.pid))
        time.sleep(0.1)

    if redis_paused_until:
        os.kill(redis_pid, signal.SIGCONT)
    if writer:
        writer.stdin.close()
        writer.wait(timeout=60)
    for c in clients:
        c.kill()
    deadline = time.time() + 120
    while not ready(port) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(5)  # let the pipeline drain
    current = dict(line.split("|") for line in psql("SELECT id, v FROM soak_items").split())
    stale = []
    for key in redis("KEYS", "soak:*"):
        value = redis("GET", key)
        i = key.split(":")[1]
        if value and value.startswith("old:") and value[4:] != current[i]:
            stale.append((key, value, current[i]))
    for key in redis("KEYS", "soakrow:*"):
        row = json.loads(redis("GET", key) or "null")
        if row and str(row["v"]) != current[key.split(":")[1]]:
            stale.append((key, row, current[key.split(":")[1]]))
    committed = int(psql("SELECT sum(v) FROM soak_items"))
    freshet.send_signal(signal.SIGTERM)
    code = freshet.wait(timeout=30)
    report = {"minutes": a.minutes, "faults": faults, "faults_total": sum(faults.values()), "updates_sent": changes,
              "updates_committed": committed, "stale_keys": len(stale), "peak_rss_mb": round(peak, 1), "exit_code": code}
    print(json.dumps(report), flush=True)
    for s in stale[:20]:
        print("stale:", s)
    sys.exit(1 if stale else 0)


if __name__ == "__main__":
    main()

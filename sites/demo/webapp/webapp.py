"""The demo web application: counts visits in PostgreSQL on another host.

Talks to the database with the `psql` client (no Python driver needed):
  webapp.py --listen ADDR:PORT --db HOST:PORT --psql PATH   serve HTTP
  webapp.py --migrate --db HOST:PORT --psql PATH            create the schema
GET /        records a visit and answers with the visit count
GET /health  200 when the database answers, 503 otherwise
"""
import argparse
import http.server
import os
import subprocess
import sys

SCHEMA = "CREATE TABLE IF NOT EXISTS visits (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());"


def sql(args, statement):
    host, port = args.db.rsplit(":", 1)
    result = subprocess.run(
        [args.psql, "-h", host, "-p", port, "-U", "postgres", "-tA", "-c", statement],
        capture_output=True, text=True, timeout=10,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip())
    return result.stdout.strip()


def serve(args):
    greeting = os.environ.get("WEBAPP_GREETING", "hello")

    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, status, body):
            data = (body + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            try:
                if self.path == "/health":
                    sql(args, "SELECT 1")
                    self.reply(200, "ok")
                elif self.path == "/":
                    sql(args, SCHEMA)
                    count = sql(args, "INSERT INTO visits DEFAULT VALUES; SELECT count(*) FROM visits;").splitlines()[-1]
                    self.reply(200, f"{greeting}: visit {count}")
                else:
                    self.reply(404, "not found")
            except Exception as error:  # the database is down or unreachable
                self.reply(503, f"database unavailable: {error}")

        def log_message(self, format, *values):
            sys.stderr.write("webapp: " + format % values + "\n")

    host, port = args.listen.rsplit(":", 1)
    http.server.ThreadingHTTPServer((host, int(port)), Handler).serve_forever()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="0.0.0.0:8080")
    parser.add_argument("--db", required=True)
    parser.add_argument("--psql", required=True)
    parser.add_argument("--migrate", action="store_true")
    args = parser.parse_args()
    if args.migrate:
        sql(args, SCHEMA)
    else:
        serve(args)


if __name__ == "__main__":
    main()

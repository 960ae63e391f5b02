#!/usr/bin/env bash
# The peer benchmark (docs/benchmarks.md, "Side by side with the peers"):
# installs Redis and PostgreSQL from Debian if missing, starts Redis and a
# throwaway PostgreSQL cluster on free loopback ports in a temporary
# directory, builds the parkinglot binary and the harness, runs the harness
# with the arguments given (for example -jobs 1000 -runs 1), and stops
# everything.
#
#   bench/peers/run.sh                       # the reported workload: 5,000 jobs, 3 interleaved runs
#   bench/peers/run.sh -jobs 1000 -runs 1    # a quick look
#
# Needs: go, redis-server and PostgreSQL's initdb and pg_ctl (PG_BIN,
# default: the newest under /usr/lib/postgresql), both installed from
# Debian's packages (redis-server, postgresql) when missing and run as root.
# Runs as root or as a normal user: as root, the database runs as the
# postgres user (initdb refuses root).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

# The peers' servers come from Debian's packages; missing ones are installed
# when this runs as root with apt-get.
apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing $*" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "run.sh: $* missing (apt-get install $*)" >&2; exit 1
  fi
}
command -v redis-server >/dev/null || apt_install redis-server
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [ -z "${PG_BIN:-}" ] && [ -z "$(pg_bin)" ]; then apt_install postgresql; fi
PG_BIN=${PG_BIN:-$(pg_bin)}
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
  echo "run.sh: PostgreSQL's initdb not found (apt-get install postgresql, or set PG_BIN)" >&2; exit 1
fi

tmp=$(mktemp -d /tmp/parkinglot-peers.XXXXXX)
chmod 755 "$tmp"
redis_pid=
pg_started=
as_pg=()
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); fi

cleanup() {
  set +e
  if [ -n "$pg_started" ]; then "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$tmp/pg" -m fast -w stop >/dev/null; fi
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

# Redis: loopback only, no persistence (no RDB snapshots, no AOF): asynq's
# usual deployment for speed, and no fsync.
redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --dir "$tmp" \
  --daemonize no --logfile "$tmp/redis.log" &
redis_pid=$!

# PostgreSQL: a fresh cluster with its defaults (fsync on, synchronous
# commit), loopback only, its socket in the temp dir.
pg_port=$(free_port)
mkdir -p "$tmp/pg"
if [ "$(id -u)" = 0 ]; then chown postgres "$tmp/pg"; fi
"${as_pg[@]}" "$PG_BIN/initdb" -D "$tmp/pg" -U postgres --auth=trust -E UTF8 >"$tmp/initdb.log" 2>&1 ||
  { cat "$tmp/initdb.log" >&2; exit 1; }
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$tmp/pg" -l "$tmp/pg/server.log" -w \
  -o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$tmp/pg -c max_connections=100" start >/dev/null
pg_started=1
"$PG_BIN/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -q -c 'CREATE DATABASE peers' >/dev/null 2>&1 ||
  "${as_pg[@]}" "$PG_BIN/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres peers

for _ in $(seq 50); do
  redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done

echo "building parkinglot and the harness" >&2
(cd "$root" && go build -o "$tmp/parkinglot" ./cmd/parkinglot)
(cd "$here" && go build -o "$tmp/peers" .)

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)," \
  "$(go version | cut -d' ' -f3-), redis $(redis-server --version | grep -o 'v=[^ ]*' | cut -d= -f2), postgresql $("$PG_BIN/postgres" --version | awk '{print $3}')"
pg_pid=$(head -1 "$tmp/pg/postmaster.pid")
"$tmp/peers" -redis "127.0.0.1:$redis_port" -redis-pid "$redis_pid" -pg-pid "$pg_pid" \
  -pg "postgres://postgres@127.0.0.1:$pg_port/peers?sslmode=disable&pool_max_conns=32" \
  -parkinglot "$tmp/parkinglot" "$@" && status=0 || status=$?
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status

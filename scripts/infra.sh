#!/usr/bin/env bash
# Make sure the brokers and databases the suite needs are running; start them when installed.
#   scripts/infra.sh rabbitmq [postgresql] [prometheus] [chromium]
# prometheus: Debian's `prometheus` package (the server and promtool: the alert rules' tests and the live
# scrape test need both), installed with apt-get when missing.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() {  # host port seconds what
  for _ in $(seq 1 "$3"); do port_open "$1" "$2" && return 0; sleep 1; done
  echo "$4 did not come up on $1:$2 within $3 s" >&2; return 1
}

ensure_rabbitmq() {
  local host=${RABBIT_HOST:-127.0.0.1} port=${RABBIT_PORT:-5672}
  port_open "$host" "$port" && return 0
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "starting RabbitMQ (rabbitmq-server -detached)"
    rabbitmq-server -detached >/dev/null 2>&1 || true
    wait_port "$host" "$port" 90 RabbitMQ
    # the port opens a moment before the broker accepts management commands
    command -v rabbitmqctl >/dev/null 2>&1 && rabbitmqctl -q await_startup >/dev/null 2>&1 || true
  else
    cat >&2 <<MSG
RabbitMQ is not running on $host:$port and is not installed here.
Install it (Debian/Ubuntu: apt-get install rabbitmq-server) or point AMQP_URI at a broker.
MSG
    return 1
  fi
}

ensure_postgresql() {
  local host=${PG_HOST:-127.0.0.1} port=${PG_PORT:-5432}
  port_open "$host" "$port" && return 0
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "starting PostgreSQL $version (pg_ctlcluster)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_port "$host" "$port" 60 PostgreSQL
  else
    cat >&2 <<MSG
PostgreSQL is not running on $host:$port and is not installed here. The integration tests run on
PostgreSQL as well as SQLite: install it (Debian/Ubuntu: apt-get install postgresql) or set
CARELOOP_TEST_PG_URL to a server where user postgres may create databases.
MSG
    return 1
  fi
}

ensure_prometheus() {
  command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 && return 0
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing Prometheus and promtool (apt-get install prometheus)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 &&
        apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; } \
      || { echo "apt-get install prometheus failed" >&2; return 1; }
  else
    cat >&2 <<MSG
promtool and prometheus are not installed (the alert rules' tests need them). Install Debian's package:
  sudo apt-get install prometheus        (or put Prometheus 2.4x's prometheus and promtool on PATH)
MSG
    return 1
  fi
}

ensure_chromium() {
  # the console's browser tests drive Debian's Chromium through Playwright (never `playwright install`);
  # a Chinese font makes the zh-Hans / zh-Hant screenshots readable
  local wanted=()
  [ -x /usr/bin/chromium ] || wanted+=(chromium)
  [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || wanted+=(fonts-wqy-microhei)
  [ ${#wanted[@]} -eq 0 ] && return 0
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing ${wanted[*]} (apt-get) for the console's browser tests"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${wanted[@]}" >/dev/null; then
      apt-get update -q >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${wanted[@]}" >/dev/null || true
    fi
  fi
  [ -x /usr/bin/chromium ] && return 0
  cat >&2 <<MSG
/usr/bin/chromium is missing: the console's browser tests (tests/e2e/console/) need Debian's chromium.
Install it as root (apt-get install chromium); apt-get was not available or did not succeed here.
MSG
  return 1
}

ensure_wrk() {
  # the HTTP benchmarks (tests/perf: gateway, FHIR, console, the paid-visit flow) drive the gateway with wrk
  command -v wrk >/dev/null 2>&1 && return 0
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing wrk (apt-get) for the HTTP benchmarks"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; } || true
  fi
  command -v wrk >/dev/null 2>&1 && return 0
  echo "wrk is missing: the HTTP benchmarks skip without it (Debian/Ubuntu: apt-get install wrk)" >&2
  return 1
}

for what in "$@"; do
  case "$what" in
    rabbitmq) ensure_rabbitmq ;;
    postgresql) ensure_postgresql ;;
    prometheus) ensure_prometheus ;;
    chromium) ensure_chromium ;;
    wrk) ensure_wrk ;;
    *) echo "unknown service $what" >&2; exit 2 ;;
  esac
done

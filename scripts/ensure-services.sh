#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1 for the tests: start them if they are
# installed but stopped, install them from Debian packages if they are missing.
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=0
apt_install() {
  if [ $apt_updated -eq 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! pg_up; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql postgresql-client
  for version in $(ls /etc/postgresql 2>/dev/null); do
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  done
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }
fi
# The tests log in as postgres/postgres over TCP; set that password when it does not work yet.
if ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\""
  else sudo -u postgres psql -qc "ALTER USER postgres PASSWORD 'postgres'"; fi
fi

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if ! redis_up; then
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/dispatch-test.log
  for _ in $(seq 1 20); do redis_up && break; sleep 0.5; done
  redis_up || { echo "Redis did not start on 127.0.0.1:6379" >&2; exit 1; }
fi

# Test tools from Debian (each only when missing).
missing=()
command -v swaks >/dev/null || missing+=(swaks)
command -v opendkim-testmsg >/dev/null || missing+=(opendkim-tools)
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi

# `make bench` also needs Postfix (smtpd, smtp-sink), Cyrus SASL (saslpasswd2 + the sasldb and
# PLAIN/LOGIN mechanisms) and wrk. Postfix is installed unconfigured ("No configuration"): the bench
# runs its own private instance and leaves the machine's default one alone.
if [ "${1:-}" = "--bench" ]; then
  bench_missing=()
  command -v smtp-sink >/dev/null || bench_missing+=(postfix)
  command -v saslpasswd2 >/dev/null || bench_missing+=(sasl2-bin libsasl2-modules)
  command -v wrk >/dev/null || bench_missing+=(wrk)
  if [ ${#bench_missing[@]} -gt 0 ]; then
    echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
    apt_install "${bench_missing[@]}"
  fi
fi
echo "services ready: postgresql 127.0.0.1:5432, redis 127.0.0.1:6379"

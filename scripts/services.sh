#!/usr/bin/env bash
# Starts the local services the tests use, if they are not already up.
set -u
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() {
  for _ in $(seq 1 60); do up "$1" && return 0; sleep 1; done
  echo "service on port $1 did not come up" >&2; return 1
}
if ! up 5432 && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start && wait_for 5432
fi
if ! up 6379 && command -v redis-server >/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log && wait_for 6379
fi
if ! up 5672 && command -v rabbitmq-server >/dev/null; then
  rabbitmq-server -detached && wait_for 5672
fi
if ! up 3306 && command -v mariadbd >/dev/null; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd && wait_for 3306
fi
for port in 5432 6379; do
  up "$port" || { echo "required service on port $port is down" >&2; exit 1; }
done
exit 0

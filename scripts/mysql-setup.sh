#!/usr/bin/env bash
# What mysqlclient (Django's MariaDB/MySQL driver) needs to compile: Debian's MariaDB client
# headers and pkg-config. Installs them only when they are missing; needs root (CI is root).
set -euo pipefail
if pkg-config --exists libmariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "mysqlclient needs the MariaDB client headers: apt-get install pkg-config libmariadb-dev" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq -o DPkg::Lock::Timeout=300
apt-get install -y -qq -o DPkg::Lock::Timeout=300 pkg-config libmariadb-dev >/dev/null

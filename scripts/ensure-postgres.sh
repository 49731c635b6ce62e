#!/usr/bin/env bash
# Makes sure a PostgreSQL server binary (initdb, pg_ctl) is on the machine: the
# test set-up starts a throwaway cluster from it. Installs Debian's package when
# it is missing and we are root; otherwise says what to install.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "Installing PostgreSQL (needed by the database tests)..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  exit 0
fi
echo "PostgreSQL server binaries (initdb) not found: install your distribution's postgresql package." >&2
exit 1

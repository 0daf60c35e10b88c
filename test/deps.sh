#!/usr/bin/env bash
# Install the Debian 12 packages needed to build and test the migrate
# extension.  Idempotent: packages already installed are left alone, and
# apt-get (including `apt-get update`) only runs if something is missing.
set -euo pipefail

PACKAGES=(
	build-essential                        # gcc, make
	postgresql-15                          # server, initdb, pg_ctl, psql
	postgresql-server-dev-15               # pg_config, PGXS, pg_regress, isolation tester, Perl test modules
	libkrb5-dev                            # gssapi headers that libpq/libpq.h pulls in
	postgresql-15-pgtap                    # pgTAP extension
	libtap-parser-sourcehandler-pgtap-perl # pg_prove
	libipc-run-perl                        # needed by PostgreSQL::Test::Cluster
	postgresql-15-cron                     # pg_cron
)

missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [[ "$status" != "install ok installed" ]]; then
		missing+=("$pkg")
	fi
done

if ((${#missing[@]} == 0)); then
	echo "deps: all ${#PACKAGES[@]} packages already installed"
	exit 0
fi

if ((EUID != 0)); then
	echo "deps: missing packages: ${missing[*]}" >&2
	echo "deps: re-run as root (e.g. sudo bash test/deps.sh) to install them" >&2
	exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"

#!/usr/bin/env bash
# Install the Debian 12 packages needed to build and test the migrate
# extension.  Idempotent: packages already installed are left alone, and
# apt-get (including `apt-get update`) only runs if something is missing.
# Then the real dbmate binary (npm package, pinned) into test/.tools, for
# test/t/016_sync_histories.pl; without it that part of the test is skipped.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DBMATE_VERSION=2.36.0

# dbmate into test/.tools/node_modules (not fatal: the test skips without it)
install_dbmate() {
	local have
	have=$("$REPO/test/.tools/node_modules/.bin/dbmate" --version 2>/dev/null || true)
	if [[ "$have" == "dbmate version $DBMATE_VERSION" ]]; then
		echo "deps: dbmate $DBMATE_VERSION already in test/.tools"
		return 0
	fi
	if ! command -v npm >/dev/null; then
		echo "deps: npm not found: the dbmate part of 016_sync_histories will be skipped" >&2
		return 0
	fi
	mkdir -p "$REPO/test/.tools"
	if npm install --silent --no-audit --no-fund --no-save --prefix "$REPO/test/.tools" \
		"dbmate@$DBMATE_VERSION" >/dev/null; then
		echo "deps: dbmate $DBMATE_VERSION installed in test/.tools"
	else
		echo "deps: could not install dbmate: the dbmate part of 016_sync_histories will be skipped" >&2
	fi
	return 0
}

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
# npm installs the dbmate binary (test/.tools); Debian's package conflicts with a
# Node.js installed from elsewhere (e.g. NodeSource's, which brings its own npm)
command -v npm >/dev/null || PACKAGES+=(npm)

missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [[ "$status" != "install ok installed" ]]; then
		missing+=("$pkg")
	fi
done

if ((${#missing[@]} == 0)); then
	echo "deps: all ${#PACKAGES[@]} packages already installed"
	install_dbmate
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
install_dbmate

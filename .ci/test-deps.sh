#!/usr/bin/env bash
# System tools some tests need, installed from Debian's packages where missing (as root only):
#   postgresql: the db-marked tests start a throwaway server from its initdb/pg_ctl
#   the shell linter (Debian package shellcheck): tests/runners lint runners/slurm.sbatch
# Never fatal: a tool that cannot be installed makes its tests skip with one line.
set -u

have_postgres() {
  command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

missing=()
have_postgres || missing+=(postgresql)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: ${missing[*]} missing (install them to run their tests; those tests will skip)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Debian's postgresql package would also create and start a system cluster: the tests only
# need the binaries, so ask postgresql-common not to create one.
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/gcsearch-tests.conf
fi
install() { apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; }
if ! install "${missing[@]}"; then
  apt-get update -qq >/dev/null 2>&1
  install "${missing[@]}" || \
    echo "note: could not install ${missing[*]}; their tests will skip"
fi
exit 0

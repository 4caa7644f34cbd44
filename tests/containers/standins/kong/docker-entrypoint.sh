#!/usr/bin/env bash
# docker-kong's docker-entrypoint.sh with the harness in nginx's place: KONG_<OPT>_FILE
# fills KONG_<OPT> from a file, `kong docker-start` prepares the prefix, removes dangling
# sockets and runs Kong (here: the harness) in the foreground.
set -Eeo pipefail

file_env() {
  local var="$1" fileVar="${1}_FILE"
  [ "${!fileVar:-}" ] || return 0
  if [ "${!var:-}" ]; then
    echo >&2 "error: both $var and $fileVar are set (but are exclusive)"
    exit 1
  fi
  export "$var"="$(<"${!fileVar}")"
  unset "$fileVar"
}

export KONG_NGINX_DAEMON=${KONG_NGINX_DAEMON:=off}

if [[ "$1" == "kong" ]]; then
  # upstream walks kong_defaults.lua's keys; every KONG_*_FILE set is the same set here
  while IFS='=' read -r name _; do
    [[ "$name" == KONG_*_FILE ]] && file_env "${name%_FILE}"
  done < <(env)
  file_env KONG_PASSWORD
  PREFIX=${KONG_PREFIX:=/usr/local/kong}

  if [[ "$2" == "docker-start" ]]; then
    kong prepare -p "$PREFIX"
    LOGGED_SOCKET_WARNING=0
    for localfile in "$PREFIX"/* "$PREFIX"/sockets/*; do
      if [ -S "$localfile" ]; then
        if ((LOGGED_SOCKET_WARNING == 0)); then
          printf >&2 'WARN: found dangling unix sockets in the prefix directory (%q)\n' "$PREFIX"
          LOGGED_SOCKET_WARNING=1
        fi
        rm -f "$localfile"
      fi
    done
    ln -sfn /dev/stdout "$PREFIX/logs/access.log"
    ln -sfn /dev/stdout "$PREFIX/logs/admin_access.log"
    ln -sfn /dev/stderr "$PREFIX/logs/error.log"
    exec kong docker-start -p "$PREFIX"
  fi
fi

exec "$@"

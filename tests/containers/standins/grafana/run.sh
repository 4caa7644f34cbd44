#!/bin/sh
# The official image's /run.sh starts grafana-server with GF_PATHS_*; here the stand-in.
exec python3 /usr/share/grafana/grafana_standin.py "$@"

#!/bin/sh
# Lay out DAGSTER_HOME on the writable volume, then run the command (webserver, daemon,
# code server or a one-off `ragctl`).
set -eu
mkdir -p "$DAGSTER_HOME"
cp /opt/dagster/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
exec "$@"

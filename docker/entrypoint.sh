#!/usr/bin/env bash
# Roles of the modelserving image:
#   jobmanager | taskmanager   a Flink daemon in the foreground (pyflink/bin scripts, $FLINK_CONF_DIR)
#   anything else              run as a command (modelserving submit ..., modelserving publish ...)
set -euo pipefail
flink_home="$(python -c 'import os, pyflink; print(os.path.dirname(pyflink.__file__))')"
case "${1:-}" in
  jobmanager)
    exec "$flink_home/bin/jobmanager.sh" start-foreground
    ;;
  taskmanager)
    exec "$flink_home/bin/taskmanager.sh" start-foreground
    ;;
  *)
    exec "$@"
    ;;
esac

#!/usr/bin/env bash
# Build the project's own small Java helpers for Flink jobs (idempotent):
#   .cache/jars/serving/modelserving-flink.jar   added to every Kafka job, next to the connector
# It compiles scripts/java against PyFlink's own jars and the Kafka connector that
# scripts/fetch-jars.sh fetched, so it needs a JDK (javac, jar) and nothing from the network.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
out="$here/.cache/jars/serving"
connector="$(ls "$here"/.cache/jars/connector/flink-sql-connector-kafka-*.jar 2>/dev/null | sort | tail -1)"
if [[ -z "$connector" ]]; then
  echo "build-jars: the Kafka connector is missing; run scripts/fetch-jars.sh first" >&2
  exit 1
fi
lib="$("$python" -c 'import os, pyflink; print(os.path.join(os.path.dirname(pyflink.__file__), "lib"))')"
classpath="$(ls "$lib"/flink-dist-*.jar):$connector"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
echo "building modelserving-flink.jar (scripts/java)"
javac --release 11 -nowarn -d "$build/classes" -cp "$classpath" $(find "$here/scripts/java" -name '*.java' | sort)
mkdir -p "$out"
jar --create --file "$out/modelserving-flink.jar.tmp" -C "$build/classes" .
mv "$out/modelserving-flink.jar.tmp" "$out/modelserving-flink.jar"

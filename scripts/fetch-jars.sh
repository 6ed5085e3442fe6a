#!/usr/bin/env bash
# Fetch the JVM jars the project runs into .cache/jars (idempotent):
#   .cache/jars/connector/  the Flink Kafka connector fat jar, added to every job
#   .cache/jars/kafka/      the Kafka broker and its dependencies (KRaft mode)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
pom="$here/scripts/jvm-deps.pom.xml"
jars="$here/.cache/jars"
connector_version="$(sed -n 's:.*<flink.kafka.connector.version>\(.*\)</flink.kafka.connector.version>.*:\1:p' "$pom")"
mvn_flags=(-q -B)
rm -rf "$jars/kafka.tmp" && mkdir -p "$jars/connector"
echo "fetching Kafka broker jars ($pom)"
mvn "${mvn_flags[@]}" -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$jars/kafka.tmp"
rm -rf "$jars/kafka" && mv "$jars/kafka.tmp" "$jars/kafka"
echo "fetching flink-sql-connector-kafka $connector_version"
mvn "${mvn_flags[@]}" -f "$pom" dependency:copy \
  -Dartifact="org.apache.flink:flink-sql-connector-kafka:$connector_version" -DoutputDirectory="$jars/connector"

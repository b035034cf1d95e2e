#!/usr/bin/env bash
# Temporal's time-skipping test server (the Java one; the SDK's own download needs the internet) into
# ~/.cache/holdfast/temporal-test-server-<version>/, once: its jars from Maven Central through Maven, and an executable
# `temporal-test-server <port>` that @temporalio/testing starts as an `existing-path` server. Prints that
# executable's path. Needs Java 17 or later and Maven (`sudo apt-get install openjdk-17-jre-headless maven`); a
# missing one fails, naming it. HOLDFAST_CACHE_DIR replaces ~/.cache/holdfast.
set -euo pipefail
version=1.32.0
dir="${HOLDFAST_CACHE_DIR:-$HOME/.cache/holdfast}/temporal-test-server-$version"
exe="$dir/temporal-test-server"
if [ -x "$exe" ] && [ -f "$dir/lib/.complete" ]; then
  echo "$exe"
  exit 0
fi
command -v java >/dev/null 2>&1 || { echo "Java 17 or later is missing (sudo apt-get install openjdk-17-jre-headless): the time-skipping test server runs on it" >&2; exit 1; }
command -v mvn >/dev/null 2>&1 || { echo "Maven is missing (sudo apt-get install maven): it fetches the time-skipping test server's jars" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>holdfast</groupId>
  <artifactId>temporal-test-server-fetch</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>io.temporal</groupId>
      <artifactId>temporal-test-server</artifactId>
      <version>$version</version>
    </dependency>
  </dependencies>
</project>
POM
echo "fetching io.temporal:temporal-test-server:$version into $dir" >&2
rm -rf "$dir/lib"
mkdir -p "$dir/lib"
mvn -q -B -f "$work/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dir/lib" >&2
cat >"$exe" <<SH
#!/bin/sh
# Started by @temporalio/testing with the port as first argument; exec, so stopping this process stops the server.
exec java -cp '$dir/lib/*' io.temporal.testserver.TestServer "\$@"
SH
chmod +x "$exe"
touch "$dir/lib/.complete"
echo "$exe"

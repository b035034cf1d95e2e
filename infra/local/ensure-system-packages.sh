#!/usr/bin/env bash
# Debian packages the tests need that npm cannot install: Mosquitto (the MQTT broker tests run against besides the
# embedded one) and Chromium (the browser that test/integration/temporal-web-ui.test.ts drives through playwright-core,
# which never downloads a browser of its own), Java and Maven (Temporal's time-skipping test server, fetched into the
# cache by temporal-test-server.sh at the end). Installs them when missing and this runs as root with apt-get;
# otherwise says what to install.
set -euo pipefail
missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
[ -n "${HOLDFAST_CHROMIUM:-}" ] || [ -x /usr/bin/chromium ] || missing+=(chromium)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
test_server() { bash "$(dirname "${BASH_SOURCE[0]}")/temporal-test-server.sh" >/dev/null; }
[ ${#missing[@]} -eq 0 ] && { test_server; exit 0; }
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Installing the package starts its system service on some machines; the tests start their own brokers.
  if command -v service >/dev/null 2>&1; then service mosquitto stop >/dev/null 2>&1 || true; fi
  test_server
  exit 0
fi
echo "missing Debian packages: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
exit 1

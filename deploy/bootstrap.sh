#!/usr/bin/env bash
# Installs what a fresh machine lacks to run and test the engine; safe to run again.
#   - Debian packages: Java (the broker), Maven (fetches Kafka's jars), swaks and kcat
#     (real SMTP and Kafka peers used in the tests and the README), snmp and snmptrapd
#     (net-snmp's real SNMP peers for the tests and the benchmark), prometheus and
#     prometheus-alertmanager (promtool and amtool check deploy/monitoring/ in the tests),
#     chromium and chromium-driver (the wallboard's test drives headless Chromium),
#     postfix (a real MTA in front of the engine in the tests; its own service stays off),
#     systemd (systemd-analyze and systemd-sysusers check deploy/systemd/ in the tests)
#   - a virtualenv in .venv with the engine and its test tools
#   - Apache Kafka's jars from Maven Central into deploy/kafka/lib
#   - kustomize into deploy/k8s/tools/bin (the tests render deploy/k8s/ offline and check
#     it against the committed CRDs of deploy/k8s/crds/): deploy/k8s/tools/fetch.sh, with Go
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
command -v java >/dev/null || need_packages+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_packages+=(maven)
command -v swaks >/dev/null || need_packages+=(swaks)
command -v kcat >/dev/null || need_packages+=(kcat)
# net-snmp's snmptrap/snmpinform (test peers) and snmptrapd (the SNMP benchmark's reference)
command -v snmptrap >/dev/null || need_packages+=(snmp)
[ -x /usr/sbin/snmptrapd ] || command -v snmptrapd >/dev/null || need_packages+=(snmptrapd)
# Prometheus and Alertmanager: promtool and amtool check deploy/monitoring/ in the tests
command -v promtool >/dev/null || need_packages+=(prometheus)
command -v amtool >/dev/null || need_packages+=(prometheus-alertmanager)
# headless Chromium and its driver for the wallboard's browser test (selenium, in .venv)
command -v chromium >/dev/null || need_packages+=(chromium)
command -v chromedriver >/dev/null || need_packages+=(chromium-driver)
# Postfix in front of the engine (tests/integration/test_postfix_in_front.py runs its own
# instance on loopback ports); "No configuration" leaves the system's Postfix unconfigured
[ -x /usr/sbin/postfix ] || need_packages+=(postfix)
# systemd-analyze (verify, security) and systemd-sysusers check deploy/systemd/; a container
# without systemd as PID 1 has the tools all the same
command -v systemd-analyze >/dev/null || need_packages+=(systemd)
if ((${#need_packages[@]})); then
  echo "bootstrap: installing ${need_packages[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: run as root, or install first: apt-get install ${need_packages[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
  # Only their tools are needed: the services Debian starts would hold 9090 and 9093,
  # the local broker's KRaft controller port (docs/monitoring.md runs them on others).
  if [ -d /run/systemd/system ]; then
    for service in prometheus prometheus-alertmanager postfix; do
      if [[ " ${need_packages[*]} " == *" $service "* ]]; then
        systemctl disable --now "$service" >/dev/null 2>&1 || true
      fi
    done
  fi
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: Python 3.11 or newer is needed ($python is $("$python" --version))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing Python dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[test]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

.venv/bin/engine broker fetch
bash deploy/k8s/tools/fetch.sh

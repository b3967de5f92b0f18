#!/usr/bin/env bash
# Fetches what the tests need to render and check deploy/k8s/ offline; safe to run again.
# Everything lands here, in folders git ignores (bin/, lib/, crds/):
#   - bin/kustomize: renders the overlays (Go module proxy, `go install`)
#   - crds/: the CRDs of the custom resources the overlays hold, each made by its
#     operator's own generator from its own API definitions, at the pinned versions:
#       Strimzi (Kafka, KafkaNodePool, KafkaTopic): its crd-generator run on its API classes,
#       both from Maven Central (strimzi/pom.xml), with the arguments of Strimzi's own
#       build; the generator needs Java 21 or newer (the broker's Java 17 is not enough)
#       prometheus-operator (ServiceMonitor, PrometheusRule): controller-gen run on its Go
#       API types (prometheus-operator/go.mod), as prometheus-operator's build does
#     Neither ships its CRDs as files in a registry reached here: prometheus-operator's root
#     module, whose zip holds them, is not served at v0.95.2 by the Go module proxy (only
#     pkg/apis/monitoring is), and Strimzi's Maven Central artifacts (api, its tests jar,
#     crd-generator) hold no CRD YAML.
# `fetch.sh --find-java` only prints the Java 21+ it would use (exit 1: none).
set -euo pipefail
cd "$(dirname "$0")"

KUSTOMIZE_VERSION=v5.8.2

find_java() {
  local candidate version
  for candidate in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java || true)" \
    /usr/lib/jvm/*/bin/java; do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    version=$("$candidate" -XshowSettings:properties -version 2>&1 |
      sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p')
    if [ "${version:-0}" -ge 21 ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if [ "${1:-}" = "--find-java" ]; then
  find_java
  exit
fi

stamp=crds/.fetched-$(cat fetch.sh strimzi/pom.xml prometheus-operator/go.mod \
  prometheus-operator/go.sum | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ -x bin/kustomize ]; then
  exit 0
fi
for tool in go mvn; do
  command -v "$tool" >/dev/null || {
    echo "fetch.sh: $tool is needed (run deploy/bootstrap.sh)" >&2
    exit 1
  }
done
java=$(find_java) || {
  echo "fetch.sh: Strimzi's CRD generator needs Java 21 or newer:" \
    "apt-get install openjdk-21-jre-headless, or set JAVA_HOME" >&2
  exit 1
}

rm -rf crds lib
mkdir -p crds lib
# Maven's download and Strimzi's generator wait on the network more than on the CPU: they
# run while Go compiles, and the script waits for them (also when it fails).
echo "fetch.sh: Strimzi's CRDs (strimzi/pom.xml)"
(
  mvn -B -q -f strimzi/pom.xml \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$PWD/lib/strimzi" &&
    "$java" -cp "lib/strimzi/*" io.strimzi.crdgenerator.CrdGenerator \
      --label app:strimzi --label strimzi.io/crd-install:true --target-kube 1.16+ \
      --crd-api-version v1 --api-versions v1 --storage-version v1 --yaml \
      io.strimzi.api.kafka.model.kafka.Kafka=crds/040-Crd-kafka.yaml \
      io.strimzi.api.kafka.model.topic.KafkaTopic=crds/043-Crd-kafkatopic.yaml \
      io.strimzi.api.kafka.model.nodepool.KafkaNodePool=crds/045-Crd-kafkanodepool.yaml
) >lib/strimzi.log 2>&1 &
strimzi=$!
trap 'wait' EXIT

# Both Go tools are built with the same flags, so that the packages they share (the
# standard library first) are compiled once. Without the compiler's optimisations
# (-N -l): the build takes about 30% less CPU, and each tool runs for about a second here,
# from the same sources (the CRDs and the rendered overlays come out the same).
go_build=(-trimpath -buildvcs=false "-ldflags=-s -w" "-gcflags=all=-N -l")
echo "fetch.sh: kustomize $KUSTOMIZE_VERSION into deploy/k8s/tools/bin"
GOBIN="$PWD/bin" go install "${go_build[@]}" \
  "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"

echo "fetch.sh: prometheus-operator's CRDs (prometheus-operator/go.mod)"
(
  cd prometheus-operator
  go build "${go_build[@]}" -o ../bin/controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen
  ../bin/controller-gen crd:crdVersions=v1 \
    paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 \
    output:crd:dir=../lib/prometheus-operator
)
for plural in servicemonitors prometheusrules; do
  cp "lib/prometheus-operator/monitoring.coreos.com_$plural.yaml" crds/
done

if ! wait "$strimzi"; then
  cat lib/strimzi.log >&2
  exit 1
fi
touch "$stamp"

#!/usr/bin/env bash
# Regenerates the committed CRDs in deploy/k8s/crds/ (run it after changing a pin, then
# commit): the CRDs of the custom resources the overlays hold, each made by its operator's
# own generator from its own API definitions, at the pinned versions:
#   Strimzi (Kafka, KafkaNodePool, KafkaTopic): its crd-generator run on its API classes,
#   both from Maven Central (strimzi/pom.xml), with the arguments of Strimzi's own build;
#   the generator needs Java 21 or newer (the broker's Java 17 is not enough)
#   prometheus-operator (ServiceMonitor, PrometheusRule): controller-gen run on its Go API
#   types (prometheus-operator/go.mod), as prometheus-operator's build does
# Neither ships its CRDs as files in a registry reached here: prometheus-operator's root
# module, whose zip holds them, is not served at v0.95.2 by the Go module proxy (only
# pkg/apis/monitoring is), and Strimzi's Maven Central artifacts (api, its tests jar,
# crd-generator) hold no CRD YAML. deploy/k8s/crds/INPUTS records the hash of the pins the
# CRDs were made from; tests/unit/k8s/test_generated.py fails when a pin changes without
# this script being run again.
set -euo pipefail
cd "$(dirname "$0")"

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

for tool in go mvn; do
  command -v "$tool" >/dev/null || {
    echo "crds.sh: $tool is needed" >&2
    exit 1
  }
done
java=$(find_java) || {
  echo "crds.sh: Strimzi's CRD generator needs Java 21 or newer, or set JAVA_HOME" >&2
  exit 1
}

out=../crds
rm -rf lib
mkdir -p lib bin
echo "crds.sh: Strimzi's CRDs (strimzi/pom.xml)"
mvn -B -q -Dstyle.color=never -f strimzi/pom.xml \
  org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$PWD/lib/strimzi"
"$java" -cp "lib/strimzi/*" io.strimzi.crdgenerator.CrdGenerator \
  --label app:strimzi --label strimzi.io/crd-install:true --target-kube 1.16+ \
  --crd-api-version v1 --api-versions v1 --storage-version v1 --yaml \
  io.strimzi.api.kafka.model.kafka.Kafka="$out/040-Crd-kafka.yaml" \
  io.strimzi.api.kafka.model.topic.KafkaTopic="$out/043-Crd-kafkatopic.yaml" \
  io.strimzi.api.kafka.model.nodepool.KafkaNodePool="$out/045-Crd-kafkanodepool.yaml"

echo "crds.sh: prometheus-operator's CRDs (prometheus-operator/go.mod)"
(
  cd prometheus-operator
  go build -trimpath -buildvcs=false -o ../bin/controller-gen \
    sigs.k8s.io/controller-tools/cmd/controller-gen
  ../bin/controller-gen crd:crdVersions=v1 \
    paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 \
    output:crd:dir=../lib/prometheus-operator
)
for plural in servicemonitors prometheusrules; do
  cp "lib/prometheus-operator/monitoring.coreos.com_$plural.yaml" "$out/"
done
echo "$(cat crds.sh strimzi/pom.xml prometheus-operator/go.mod prometheus-operator/go.sum |
  sha256sum | cut -c1-64)" >"$out/INPUTS"
echo "crds.sh: wrote $out; commit it"

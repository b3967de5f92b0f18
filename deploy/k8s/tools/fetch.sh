#!/usr/bin/env bash
# Fetches what the tests need to render deploy/k8s/ offline; safe to run again:
# bin/kustomize (folder ignored by git), built from the Go module proxy with `go install`.
# The CRDs the rendered resources are checked against are committed in deploy/k8s/crds/
# (made by crds.sh beside this script, which needs Java 21, Maven and Go's build of
# controller-gen: a fresh machine need not repeat that).
set -euo pipefail
cd "$(dirname "$0")"

KUSTOMIZE_VERSION=v5.8.2

stamp=bin/.fetched-$(sha256sum fetch.sh | cut -c1-16)
if [ -f "$stamp" ] && [ -x bin/kustomize ]; then
  exit 0
fi
command -v go >/dev/null || {
  echo "fetch.sh: go is needed (run deploy/bootstrap.sh)" >&2
  exit 1
}
mkdir -p bin
echo "fetch.sh: kustomize $KUSTOMIZE_VERSION into deploy/k8s/tools/bin"
# Without the compiler's optimisations (-N -l) the build takes about 30% less CPU; the tool
# runs for about a second here, from the same sources (the overlays render the same).
GOBIN="$PWD/bin" go install -trimpath -buildvcs=false "-ldflags=-s -w" "-gcflags=all=-N -l" \
  "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
touch "$stamp"

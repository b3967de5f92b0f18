//go:build tools

// Package tools pins what deploy/k8s/tools/fetch.sh builds and reads: controller-gen, and
// prometheus-operator's API types, from which it generates the ServiceMonitor and
// PrometheusRule CRDs that the overlays are validated against.
package tools

import (
	_ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)

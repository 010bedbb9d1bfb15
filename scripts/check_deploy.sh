#!/usr/bin/env bash
# The deployment checks: the Helm chart linted and rendered, every rendering validated against
# the Kubernetes 1.32 schemas (offline, strict), bad values refused by values.schema.json, the
# kustomize base equal to the chart's rendering, the overlay validated, and yamllint.
# `--write` regenerates k8s/base/visionlog.yaml from the chart instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
helm="$VISIONLOG_TOOLS/helm"
kubectl="$VISIONLOG_TOOLS/kubectl"
bin="$(dirname "$VISIONLOG_PYTHON")"
validate() { "$bin/kubernetes-validate" --strict --quiet -k 1.32.0 -; }
fail() { echo "check_deploy: $*" >&2; exit 1; }
base() { "$helm" template visionlog helm/visionlog --namespace visionlog --set secrets.existingSecret=visionlog-credentials; }

if [ "${1:-}" = --write ]; then
    base > k8s/base/visionlog.yaml
    exit 0
fi

"$helm" lint --strict helm/visionlog
rendered=$("$helm" template visionlog helm/visionlog)
validate <<<"$rendered"
# every service of the binary is a Deployment; the GPU ones ask for a GPU, the others do not
for service in gateway webhooks aggregator executor projector inference trainer tiering exporter; do
    grep -q "^  name: visionlog-$service$" <<<"$rendered" || fail "the chart renders no Deployment for $service"
done
[ "$(grep -c 'nvidia.com/gpu: 1' <<<"$rendered")" = 2 ] || fail "inference and trainer should each ask for one GPU"
grep -q 'kind: HorizontalPodAutoscaler' <<<"$rendered" || fail "no HorizontalPodAutoscaler"
grep -q '^  name: visionlog-gateway$' <<<"$(grep -A3 '^kind: Service$' <<<"$rendered")" || fail "no Service in front of the gateway"
[ "$(grep -c '^kind: HorizontalPodAutoscaler' <<<"$rendered")" = 2 ] || fail "inference and the gateway should each have an HPA"
# other values: GPUs off, autoscaling everywhere, an existing secret, telemetry on
"$helm" template visionlog helm/visionlog \
    --set services.inference.gpu.enabled=false --set services.trainer.gpu.enabled=false \
    --set services.executor.autoscaling.enabled=true --set secrets.existingSecret=creds --set tenants.existingSecret=tenants \
    --set telemetry.otlpEndpoint=http://otel-collector:4318 | validate
# Kafka over SASL_SSL: the mechanism, user and CA file reach every pod, the password comes from the Secret
sasl=$("$helm" template visionlog helm/visionlog --set backends.kafkaSecurity.protocol=sasl_ssl \
    --set backends.kafkaSecurity.username=visionlog --set backends.kafkaSecurity.caSecret=kafka-ca \
    --set secrets.kafkaPassword=pw)
validate <<<"$sasl"
for expected in VISIONLOG_KAFKA_SASL_MECHANISM VISIONLOG_KAFKA_USERNAME /etc/visionlog-kafka/ca.pem 'VISIONLOG_KAFKA_PASSWORD: "pw"'; do
    grep -q -- "$expected" <<<"$sasl" || fail "the SASL rendering lacks $expected"
done
# values.schema.json refuses what would render a broken release
for bad in backends.partitions=0 backends.scylla=cassandra://x backends.kafkaBootstrap=kafka \
    services.inference.replicas=-1 image.pullPolicy=Sometimes backends.kafkaSecurity.protocol=tls \
    backends.kafkaSecurity.protocol=sasl_ssl; do
    if "$helm" template visionlog helm/visionlog --set "$bad" >/dev/null 2>&1; then
        fail "the chart accepted --set $bad"
    fi
done
# the plain manifests are the chart's rendering, and the overlay builds and validates
diff -u k8s/base/visionlog.yaml <(base) >/dev/null || fail "k8s/base/visionlog.yaml differs from the chart: run scripts/check_deploy.sh --write"
"$kubectl" kustomize k8s/overlays/production | validate
"$bin/yamllint" --strict -c .yamllint.yaml .
echo "check_deploy: chart, manifests and YAML pass"

#!/usr/bin/env bash
# Isthmus on a real mesh: two kind clusters with Istio multi-network (helm charts of Istio),
# the hub and the agents from this repository (images built with docker/Dockerfile, the
# charts in charts/), and real traffic: an ALLOW works, a DENY and the default deny hold.
# Guide and prerequisites: docs/real-mesh.md. Not run on the project's machines (no Docker):
# there it prints that it skipped and exits 0.
#
#   scripts/real-mesh/run.sh            # create, install, check, delete the clusters
#   KEEP=1 scripts/real-mesh/run.sh     # keep the clusters for a look around
set -euo pipefail

DOCKER="${DOCKER:-docker}"
ISTIO_VERSION="${ISTIO_VERSION:-1.29.0}"
METALLB_VERSION="${METALLB_VERSION:-v0.14.9}"
EAST="${EAST:-isthmus-east}"
WEST="${WEST:-isthmus-west}"
KEEP="${KEEP:-0}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ISTHMUS=(node "$ROOT/packages/cli/bin/isthmus.js")

say() { printf 'real-mesh: %s\n' "$*"; }
fail() { printf 'real-mesh: FAILED: %s\n' "$*" >&2; exit 1; }

# --- What the script needs. Without a Docker engine it skips (the project's CI machines).
if ! command -v "$DOCKER" >/dev/null 2>&1; then
  say "skipped: no Docker engine ('$DOCKER' is not on PATH); kind needs one (docs/real-mesh.md)"
  exit 0
fi
if ! "$DOCKER" info >/dev/null 2>&1; then
  say "skipped: '$DOCKER info' fails: the Docker engine is not running or not reachable"
  exit 0
fi
for tool in kind kubectl helm node openssl curl; do
  command -v "$tool" >/dev/null 2>&1 \
    || fail "$tool is not on PATH (docs/real-mesh.md lists what to install)"
done
[ -x "$ROOT/node_modules/.bin/tsc" ] || fail "run 'npm ci' in $ROOT first"
WORK="${WORK:-$(mktemp -d /tmp/isthmus-real-mesh.XXXXXX)}"
mkdir -p "$WORK"

ctx() { printf 'kind-%s' "$1"; }
k() { local c="$1"; shift; kubectl --context "$(ctx "$c")" "$@"; }

cleanup() {
  if [ "$KEEP" = 1 ]; then
    say "kept: kind clusters $EAST and $WEST, files in $WORK (kind delete cluster --name …)"
    return
  fi
  kind delete cluster --name "$EAST" >/dev/null 2>&1 || true
  kind delete cluster --name "$WEST" >/dev/null 2>&1 || true
  [ -n "${PF_PID:-}" ] && kill "$PF_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- 1. Images and the CLI from this checkout.
say "building the images (docker/Dockerfile) and the CLI"
(cd "$ROOT" && npm run build >/dev/null)
"$DOCKER" build -q -f "$ROOT/docker/Dockerfile" --target hub -t isthmus-hub:real-mesh "$ROOT" >/dev/null
"$DOCKER" build -q -f "$ROOT/docker/Dockerfile" --target agent -t isthmus-agent:real-mesh "$ROOT" >/dev/null

# --- 2. Two clusters on the docker network "kind", each its own Istio network.
for c in "$EAST" "$WEST"; do
  if [ "$c" = "$EAST" ]; then pods=10.10.0.0/16; svcs=10.11.0.0/16; else pods=10.20.0.0/16; svcs=10.21.0.0/16; fi
  cat >"$WORK/kind-$c.yaml" <<KIND
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking: { podSubnet: "$pods", serviceSubnet: "$svcs" }
KIND
  say "creating kind cluster $c"
  kind create cluster --name "$c" --config "$WORK/kind-$c.yaml" --wait 120s >/dev/null
  kind load docker-image isthmus-hub:real-mesh isthmus-agent:real-mesh --name "$c" >/dev/null
done

# LoadBalancer addresses for the east-west gateways: MetalLB, a pool per cluster carved out of
# the docker network "kind" (reachable from every kind node).
subnet="$("$DOCKER" network inspect kind -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' | tr ' ' '\n' | grep -m1 '\.')"
prefix="$(echo "$subnet" | cut -d. -f1-2)"
i=0
for c in "$EAST" "$WEST"; do
  i=$((i + 1))
  k "$c" apply -f "https://raw.githubusercontent.com/metallb/metallb/$METALLB_VERSION/config/manifests/metallb-native.yaml" >/dev/null
  k "$c" -n metallb-system wait --for=condition=Available deploy/controller --timeout=180s >/dev/null
  k "$c" -n metallb-system rollout status ds/speaker --timeout=180s >/dev/null
  k "$c" apply -f - >/dev/null <<LB
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: pool, namespace: metallb-system }
spec: { addresses: ["$prefix.255.$((i * 100))-$prefix.255.$((i * 100 + 50))"] }
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: l2, namespace: metallb-system }
LB
done

# --- 3. Shared trust, the hub (in east), Istio multi-network in both.
say "root of trust and the hub"
"${ISTHMUS[@]}" certs -c "$WORK/certs" -q
k "$EAST" create namespace isthmus-system >/dev/null
east_node="$("$DOCKER" inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$EAST-control-plane")"
helm install hub "$ROOT/charts/isthmus-hub" --kube-context "$(ctx "$EAST")" -n isthmus-system \
  --set image.repository=isthmus-hub --set image.tag=real-mesh --set image.pullPolicy=Never \
  --set service.type=NodePort --set "serverNames={$east_node,127.0.0.1}" --wait --timeout 180s >/dev/null
node_port="$(k "$EAST" -n isthmus-system get svc hub-isthmus-hub -o jsonpath='{.spec.ports[?(@.name=="grpc")].nodePort}')"
k "$EAST" -n isthmus-system exec deploy/hub-isthmus-hub -- cat /var/lib/isthmus/control-plane/ca-cert.pem >"$WORK/hub-ca.pem"
k "$EAST" -n isthmus-system port-forward svc/hub-isthmus-hub 18443:8443 >/dev/null 2>&1 &
PF_PID=$!
sleep 2
export ISTHMUS_HUB=127.0.0.1:18443 ISTHMUS_CA="$WORK/hub-ca.pem"
ISTHMUS_TOKEN="$(k "$EAST" -n isthmus-system get secret hub-isthmus-hub-admin-token -o jsonpath='{.data.token}' | base64 -d)"
export ISTHMUS_TOKEN

helm repo add istio https://istio-release.storage.googleapis.com/charts >/dev/null 2>&1 || true
helm repo update istio >/dev/null
for c in "$EAST" "$WEST"; do
  id="${c#isthmus-}"
  net="net-$id"
  say "Istio ($ISTIO_VERSION) and the Isthmus agent in $c (cluster $id, network $net)"
  k "$c" create namespace istio-system >/dev/null
  k "$c" label namespace istio-system "topology.istio.io/network=$net" >/dev/null
  # Istio's CRDs first: the agent waits for them.
  helm install istio-base istio/base --version "$ISTIO_VERSION" --kube-context "$(ctx "$c")" \
    -n istio-system --wait >/dev/null
  # cacerts, registration at the hub, the agent (isthmus install runs helm itself) and
  # istiod's values (the cluster's trust domain, the shared root for the others').
  (cd "$WORK" && "${ISTHMUS[@]}" install -c "$WORK/certs" --cluster "$id" \
    --hub "$east_node:$node_port" --context "$(ctx "$c")" --image "isthmus-agent:real-mesh" \
    --set image.pullPolicy=Never --out "$WORK" >/dev/null)
  helm install istiod istio/istiod --version "$ISTIO_VERSION" --kube-context "$(ctx "$c")" \
    -n istio-system -f "$WORK/istio-$id.yaml" --set global.meshID=isthmus \
    --set "global.multiCluster.clusterName=$id" --set "global.network=$net" --wait >/dev/null
  helm install istio-eastwestgateway istio/gateway --version "$ISTIO_VERSION" \
    --kube-context "$(ctx "$c")" -n istio-system --set name=istio-eastwestgateway \
    --set labels.istio=eastwestgateway --set "labels.topology\.istio\.io/network=$net" \
    --set "networkGateway=$net" --wait >/dev/null
  k "$c" apply -f - >/dev/null <<GW
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: cross-network-gateway, namespace: istio-system }
spec:
  selector: { istio: eastwestgateway }
  servers:
    - port: { number: 15443, name: tls, protocol: TLS }
      tls: { mode: AUTO_PASSTHROUGH }
      hosts: ["*.local"]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: istio-system }
spec: { mtls: { mode: STRICT } }
GW
done
kubeconfig="${KUBECONFIG:-$HOME/.kube/config}"
"${ISTHMUS[@]}" check -c "$WORK/certs" --cluster "east=$kubeconfig:$(ctx "$EAST")" \
  --cluster "west=$kubeconfig:$(ctx "$WEST")" || fail "isthmus check found a problem"

# --- 4. Workloads: payments-api in west; callers in east: web/frontend (allowed),
# web/intruder (denied by a rule), shop/cart (no rule: the default cross-cluster deny).
for c in "$EAST" "$WEST"; do
  for ns in web shop payments; do
    k "$c" create namespace "$ns" >/dev/null
    k "$c" label namespace "$ns" istio-injection=enabled >/dev/null
  done
done
k "$WEST" -n payments apply -f - >/dev/null <<APP
apiVersion: v1
kind: ServiceAccount
metadata: { name: payments-api }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: payments-api }
spec:
  selector: { matchLabels: { app: payments-api } }
  template:
    metadata: { labels: { app: payments-api } }
    spec:
      serviceAccountName: payments-api
      containers:
        - name: echo
          image: hashicorp/http-echo:1.0
          args: ["-text=payments", "-listen=:8080"]
          ports: [{ containerPort: 8080, name: http }]
---
apiVersion: v1
kind: Service
metadata: { name: payments-api }
spec:
  selector: { app: payments-api }
  ports: [{ name: http, port: 8080, targetPort: 8080 }]
APP
caller() { # cluster namespace serviceaccount
  k "$1" -n "$2" create serviceaccount "$3" >/dev/null
  k "$1" -n "$2" run "$3" --image=curlimages/curl:8.11.1 --overrides \
    "{\"spec\":{\"serviceAccountName\":\"$3\"}}" --command -- sleep 1d >/dev/null
  k "$1" -n "$2" wait --for=condition=Ready "pod/$3" --timeout=180s >/dev/null
}
caller "$EAST" web frontend
caller "$EAST" web intruder
caller "$EAST" shop cart
k "$WEST" -n payments rollout status deploy/payments-api --timeout=180s >/dev/null

cat >"$WORK/policies.yaml" <<POL
apiVersion: isthmus.dev/v1alpha1
kind: ConnectionPolicy
metadata: { name: no-intruder }
spec:
  priority: 10
  action: DENY
  from: [{ clusters: [east], namespaces: [web], serviceAccounts: [intruder] }]
  to: [{ namespaces: [payments] }]
---
apiVersion: isthmus.dev/v1alpha1
kind: ConnectionPolicy
metadata: { name: web-to-payments }
spec:
  priority: 100
  action: ALLOW
  from: [{ clusters: [east], namespaces: [web] }]
  to: [{ namespaces: [payments], services: [payments-api], ports: [8080] }]
POL
"${ISTHMUS[@]}" policy apply -f "$WORK/policies.yaml" >/dev/null
for _ in $(seq 1 60); do
  "${ISTHMUS[@]}" status -o json | node -e \
    'const s=JSON.parse(require("fs").readFileSync(0,"utf8"));process.exit((s.clusters??[]).length===2&&s.clusters.every(c=>c.inSync)?0:1)' \
    && break
  sleep 2
done

# --- 5. Real traffic from east to west's payments-api through the east-west gateways.
code() { # cluster namespace pod
  k "$1" -n "$2" exec "$3" -c "$3" -- curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
    http://payments-api.payments.svc.clusterset.local:8080/ || true
}
result=0
check() { # what expected got
  if [ "$3" = "$2" ]; then say "ok   $1: HTTP $3"; else say "FAIL $1: expected HTTP $2, got ${3:-nothing}"; result=1; fi
}
check "ALLOW east/web/frontend -> west payments-api" 200 "$(code "$EAST" web frontend)"
check "DENY (rule no-intruder) east/web/intruder -> west payments-api" 403 "$(code "$EAST" web intruder)"
check "default cross-cluster deny east/shop/cart -> west payments-api" 403 "$(code "$EAST" shop cart)"
"${ISTHMUS[@]}" verify || result=1
[ "$result" = 0 ] || fail "traffic does not match the policies (see above)"
say "passed: the ALLOW works, the DENY and the default deny hold"

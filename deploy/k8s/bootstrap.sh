#!/bin/sh
# Enrolls a cluster and its namespaces in the mesh (needs kubectl, openssl; the rights of the
# skein-mesh-operator ClusterRole in rbac.yaml).
#
#   deploy/k8s/bootstrap.sh control-plane            before the control plane starts: CA root,
#                                                     admin token, the webhook's caBundle
#   deploy/k8s/bootstrap.sh namespace NS SERVICE...  for each meshed namespace: the trust bundle
#                                                     ConfigMap (a copy: run it again after the
#                                                     root changes) and one bootstrap-token Secret
#                                                     per service (after the control plane runs)
set -eu

SYSTEM_NS=skein-system
TOKEN_TTL=${SKEIN_TOKEN_TTL:-8760h}

control_plane() {
  if ! kubectl -n "$SYSTEM_NS" get secret skein-ca-root >/dev/null 2>&1; then
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
    # RSA: the control plane's CA signs with RSA keys only.
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/O=Skein/CN=Skein root CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    kubectl -n "$SYSTEM_NS" create secret generic skein-ca-root --from-file=ca.crt="$dir/ca.crt" --from-file=ca.key="$dir/ca.key"
  fi
  if ! kubectl -n "$SYSTEM_NS" get secret skein-admin >/dev/null 2>&1; then
    kubectl -n "$SYSTEM_NS" create secret generic skein-admin --from-literal=token="$(openssl rand -hex 32)"
  fi
  bundle=$(kubectl -n "$SYSTEM_NS" get secret skein-ca-root -o jsonpath='{.data.ca\.crt}')
  kubectl patch mutatingwebhookconfiguration skein-injector --type=json \
    -p "[{\"op\":\"add\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"$bundle\"}]"
}

namespace() {
  ns=$1
  shift
  kubectl -n "$SYSTEM_NS" get secret skein-ca-root -o jsonpath='{.data.ca\.crt}' | base64 -d > /tmp/skein-ca.crt.$$
  kubectl -n "$ns" create configmap skein-ca --from-file=ca.crt=/tmp/skein-ca.crt.$$ --dry-run=client -o yaml | kubectl apply -f -
  rm -f /tmp/skein-ca.crt.$$
  for service in "$@"; do
    token=$(kubectl -n "$SYSTEM_NS" exec deploy/skein-control-plane -c control-plane -- \
      node /app/bin/skein.js token create "$service" --ttl "$TOKEN_TTL")
    kubectl -n "$ns" create secret generic "skein-token-$service" --from-literal=token="$token" --dry-run=client -o yaml | kubectl apply -f -
  done
}

case "${1:-}" in
  control-plane) control_plane ;;
  namespace) shift; [ $# -ge 2 ] || { echo "usage: $0 namespace NS SERVICE..." >&2; exit 2; }; namespace "$@" ;;
  *) echo "usage: $0 control-plane | namespace NS SERVICE..." >&2; exit 2 ;;
esac

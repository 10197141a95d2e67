#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kubectl and the small Go helpers) from Go modules
# into a cache outside the repo, and prints the directory that holds the binaries.
# A binary already in the cache is reused; TESTENV_BIN_DIR names a directory of existing binaries instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ -n "${TESTENV_BIN_DIR:-}" ]; then
  echo "$TESTENV_BIN_DIR"
  exit 0
fi

export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
kube_version=$(cd "$here/kube" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd_version=$(cd "$here/etcd" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
if [ -z "$kube_version" ] || [ -z "$etcd_version" ]; then
  echo "testenv: could not read the pinned versions from go.mod" >&2
  exit 1
fi
cache=${IPV6MIG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ipv6-migration-operator}
bin="$cache/testenv/kube-$kube_version-etcd-$etcd_version/bin"
mkdir -p "$bin"

# One build at a time: make test and make demo may start together on a cold cache.
exec 9>"$bin/.lock"
flock 9

major=${kube_version#v}; major=${major%%.*}
minor=${kube_version#v*.}; minor=${minor%%.*}
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp="$stamp -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

build() { # module dir, package, output name, ldflags
  local out="$bin/$3"
  [ -x "$out" ] && return 0
  local start=$SECONDS
  echo "testenv: building $3 ..." >&2
  (cd "$here/$1" && go build -trimpath -ldflags "-s -w $4" -o "$out.tmp" "$2")
  mv "$out.tmp" "$out"
  echo "testenv: built $3 in $((SECONDS - start))s" >&2
}

start=$SECONDS
built_any=0
for name in etcd kube-apiserver kubectl; do [ -x "$bin/$name" ] || built_any=1; done
build etcd ./cmd/etcd etcd ""
build kube ./cmd/kube-apiserver kube-apiserver "$stamp"
build kube ./cmd/kubectl kubectl "$stamp"
if [ "$built_any" = 1 ]; then
  echo "testenv: control-plane build took $((SECONDS - start))s ($bin)" >&2
fi
echo "$bin"

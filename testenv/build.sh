#!/usr/bin/env bash
# Builds, from Go modules, into a cache outside the repo, and prints the directory that holds the binaries:
#   build.sh          the test control plane: etcd, kube-apiserver and kubectl, kept per pinned version and
#                     reused when present; TESTENV_BIN_DIR names a directory of existing binaries instead.
#   build.sh --tools  the small test helpers (kstatus-check: kstatus as Flux computes it; lua-health: Argo CD's
#                     Lua interpreter; informer-baseline: client-go's Service informer, the benchmarks' memory
#                     floor), rebuilt whenever their source or go.sum changes, whatever TESTENV_BIN_DIR; and, each
#                     from a module of its own rebuilt when its go.mod or go.sum changes, helm (testenv/helm) and
#                     krew with its manifest validator (testenv/krew).
#   build.sh --dataplane  the data plane of the traffic tests: kube-proxy (same k8s.io/kubernetes as the
#                     apiserver) and CoreDNS (its own module, testenv/coredns), kept per pinned version; as root it
#                     also installs Debian's nftables and conntrack when `nft` or `conntrack` is missing (kube-proxy's
#                     nftables mode runs both). TESTENV_DATAPLANE_BIN_DIR names existing binaries instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
cache=${IPV6MIG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ipv6-migration-operator}

build() { # module dir, package, output path, ldflags
  local out="$3"
  local start=$SECONDS
  echo "testenv: building $(basename "$out") ..." >&2
  (cd "$here/$1" && go build -trimpath -ldflags "-s -w $4" -o "$out.tmp" "$2")
  mv "$out.tmp" "$out"
  echo "testenv: built $(basename "$out") in $((SECONDS - start))s" >&2
}

# The -X flags that give a Kubernetes binary its version (the apiserver panics on an empty one).
version_stamp() {
  local version="$1" major minor stamp="" pkg
  major=${version#v}
  major=${major%%.*}
  minor=${version#v*.}
  minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp="$stamp -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  echo "$stamp"
}

# kube-proxy's nftables mode execs `nft` (and `conntrack` to flush UDP entries); Debian has both as packages.
ensure_dataplane_packages() {
  local missing=()
  command -v nft >/dev/null 2>&1 || missing+=(nftables)
  command -v conntrack >/dev/null 2>&1 || missing+=(conntrack)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "testenv: ${missing[*]} missing and not root with apt-get: the data-plane tests will be skipped" >&2
    return 0
  fi
  echo "testenv: installing Debian packages ${missing[*]} (apt-get install) for kube-proxy's nftables mode" >&2
  # apt's own chatter goes to a log, shown only when the install fails; a stale package list gets one update.
  local log
  log=$(mktemp)
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >>"$log" 2>&1; then
      cat "$log" >&2
      rm -f "$log"
      echo "testenv: apt-get could not install ${missing[*]}: the data-plane tests will be skipped" >&2
      return 0
    fi
  fi
  rm -f "$log"
  echo "testenv: installed ${missing[*]}: $(command -v nft) $(command -v conntrack)" >&2
}

if [ "${1:-}" = "--dataplane" ]; then
  ensure_dataplane_packages
  if [ -n "${TESTENV_DATAPLANE_BIN_DIR:-}" ]; then
    echo "$TESTENV_DATAPLANE_BIN_DIR"
    exit 0
  fi
  kube_version=$(cd "$here/kube" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
  coredns_version=$(cd "$here/coredns" && go list -m -f '{{.Version}}' github.com/coredns/coredns)
  if [ -z "$kube_version" ] || [ -z "$coredns_version" ]; then
    echo "testenv: could not read the pinned versions from go.mod" >&2
    exit 1
  fi
  bin="$cache/testenv/dataplane-kube-$kube_version-coredns-$coredns_version/bin"
  mkdir -p "$bin"
  exec 9>"$bin/.lock"
  flock 9
  start=$SECONDS
  built_any=0
  # The plugin set is this repo's choice, not the release's: rebuilt when main.go or go.sum changes.
  coredns_sum=$(cat "$here/coredns/main.go" "$here/coredns/go.sum" | sha256sum | cut -c1-16)
  if [ ! -x "$bin/coredns" ] || [ "$(cat "$bin/coredns.sum" 2>/dev/null)" != "$coredns_sum" ]; then
    build coredns . "$bin/coredns" "" && built_any=1
    echo "$coredns_sum" >"$bin/coredns.sum"
  fi
  [ -x "$bin/kube-proxy" ] || { build kube ./cmd/kube-proxy "$bin/kube-proxy" "$(version_stamp "$kube_version")" && built_any=1; }
  if [ "$built_any" = 1 ]; then
    echo "testenv: data-plane build took $((SECONDS - start))s ($bin)" >&2
  fi
  echo "$bin"
  exit 0
fi

if [ "${1:-}" = "--tools" ]; then
  tools="$cache/testenv/tools"
  mkdir -p "$tools"
  exec 9>"$tools/.lock"
  flock 9
  for tool in kstatus-check lua-health informer-baseline; do
    sum=$(cat "$here/kube/go.sum" "$here/kube/cmd/$tool"/*.go | sha256sum | cut -c1-16)
    if [ ! -x "$tools/$tool" ] || [ "$(cat "$tools/$tool.sum" 2>/dev/null)" != "$sum" ]; then
      build kube "./cmd/$tool" "$tools/$tool" ""
      echo "$sum" >"$tools/$tool.sum"
    fi
  done
  # Tools in a module of their own (module dir, package, [module whose version to stamp into a variable]).
  own_module_tool() {
    local dir=$1 pkg=$2 name sum ldflags=""
    name=$(basename "$pkg")
    sum=$(cat "$here/$dir/go.mod" "$here/$dir/go.sum" | sha256sum | cut -c1-16)
    if [ ! -x "$tools/$name" ] || [ "$(cat "$tools/$name.sum" 2>/dev/null)" != "$sum" ]; then
      if [ -n "${3:-}" ]; then
        ldflags="-X $4=$(cd "$here/$dir" && go list -m -f '{{.Version}}' "$3")"
      fi
      build "$dir" "$pkg" "$tools/$name" "$ldflags"
      echo "$sum" >"$tools/$name.sum"
    fi
  }
  # Stamped as Helm's own Makefile does, so `helm version` names the release that was built.
  own_module_tool helm helm.sh/helm/v4/cmd/helm helm.sh/helm/v4 helm.sh/helm/v4/internal/version.version
  own_module_tool krew sigs.k8s.io/krew/cmd/krew
  own_module_tool krew sigs.k8s.io/krew/cmd/validate-krew-manifest
  echo "$tools"
  exit 0
fi

if [ -n "${TESTENV_BIN_DIR:-}" ]; then
  echo "$TESTENV_BIN_DIR"
  exit 0
fi

kube_version=$(cd "$here/kube" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd_version=$(cd "$here/etcd" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
if [ -z "$kube_version" ] || [ -z "$etcd_version" ]; then
  echo "testenv: could not read the pinned versions from go.mod" >&2
  exit 1
fi
bin="$cache/testenv/kube-$kube_version-etcd-$etcd_version/bin"
mkdir -p "$bin"

# One build at a time: make test and make demo may start together on a cold cache.
exec 9>"$bin/.lock"
flock 9

stamp=$(version_stamp "$kube_version")

start=$SECONDS
built_any=0
[ -x "$bin/etcd" ] || { build etcd ./cmd/etcd "$bin/etcd" "" && built_any=1; }
[ -x "$bin/kube-apiserver" ] || { build kube ./cmd/kube-apiserver "$bin/kube-apiserver" "$stamp" && built_any=1; }
[ -x "$bin/kubectl" ] || { build kube ./cmd/kubectl "$bin/kubectl" "$stamp" && built_any=1; }
if [ "$built_any" = 1 ]; then
  echo "testenv: control-plane build took $((SECONDS - start))s ($bin)" >&2
fi
echo "$bin"

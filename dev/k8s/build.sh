#!/usr/bin/env bash
# Builds the binaries bin/k8s-dev runs into $K8S_DEV_BIN (outside the repo, keyed on the
# versions in versions.sh). Binaries already there are not rebuilt, so a warm run builds
# nothing. One `go build` at a time with -p 2: each k8s compile takes ~2 GB of RAM.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.sh
. "$here/versions.sh"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "k8s-dev build: Go is needed (go1.26+): not on PATH nor in /usr/local/go" >&2; exit 1; }

mkdir -p "$K8S_DEV_BIN"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
k8s_ver="${K8S_VERSION#v}"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=${k8s_ver%%.*}"
	minor="${k8s_ver#*.}"
	k8s_ldflags+=" -X $pkg.gitMinor=${minor%%.*} -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

module_dir() { # the read-only directory of a downloaded module
	go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

# build NAME DIR PACKAGE LDFLAGS: go build in DIR, into a temporary file moved in place
# only when complete (an interrupted build leaves nothing that looks built).
build() {
	local name="$1" dir="$2" pkg="$3" ldflags="$4" out="$K8S_DEV_BIN/$1"
	if [ -x "$out" ]; then return 0; fi
	echo "k8s-dev build: $name ($pkg) ..." >&2
	local start=$SECONDS
	(cd "$dir" && go build -p 2 -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg")
	mv -f "$out.tmp" "$out"
	echo "k8s-dev build: $name done in $((SECONDS - start)) s" >&2
}

missing=0
for b in "${K8S_DEV_BINARIES[@]}"; do [ -x "$K8S_DEV_BIN/$b" ] || missing=1; done
if [ "$missing" = 1 ]; then
	total_start=$SECONDS
	grep -q "k8s.io/kubernetes $K8S_VERSION" "$here/go.mod" ||
		{ echo "k8s-dev build: dev/k8s/go.mod is not for $K8S_VERSION: run dev/k8s/gen-gomod.sh" >&2; exit 1; }
	build etcd "$here" ./cmd/etcd "-s -w"
	kwok_dir="$(module_dir "sigs.k8s.io/kwok@$KWOK_VERSION")"
	kwok_ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$K8S_VERSION"
	build kwokctl "$kwok_dir" ./cmd/kwokctl "$kwok_ldflags"
	build kwok "$kwok_dir" ./cmd/kwok "$kwok_ldflags"
	as_dir="$(module_dir "sigs.k8s.io/agent-sandbox@$AGENT_SANDBOX_VERSION")"
	as_pkg=sigs.k8s.io/agent-sandbox/internal/version
	build agent-sandbox-controller "$as_dir" ./cmd/agent-sandbox-controller \
		"-s -w -X $as_pkg.gitVersion=$AGENT_SANDBOX_VERSION -X $as_pkg.buildDate=$build_date"
	for c in kubectl kube-scheduler kube-controller-manager kube-apiserver; do
		build "$c" "$here" "k8s.io/kubernetes/cmd/$c" "$k8s_ldflags"
	done
	echo "k8s-dev build: built in $((SECONDS - total_start)) s" >&2
fi
echo "$K8S_DEV_BIN"

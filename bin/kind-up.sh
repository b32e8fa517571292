#!/usr/bin/env bash
# bin/kind-up.sh [--dry-run]: lap-tui on a local kind cluster, for users with Docker.
#
# Idempotent: each step first looks whether its result is already there.
#   1. a kind cluster named agent-sbx (KIND_CLUSTER_NAME to change), when missing
#   2. kubernetes-sigs/agent-sandbox v0.5.6 (its release manifests: the controller and the
#      extensions), when not installed at that version
#   3. the harness images (harnesses/*/Dockerfile -> lap-tui-harness-<name>:<version>) and lap-tui's
#      (deploy/Dockerfile -> the tag deploy/k8s/deployment.yaml runs), built and loaded into the
#      cluster's nodes (Docker's layer cache and kind's "already present" make a re-run cheap)
#   4. lap-tui's manifests (kubectl apply --server-side -k deploy/k8s)
#   5. the Secret lap-tui-secrets from LAP_DATABASE_URL and LITELLM_API_KEY, when both are set
#      and it is missing (the database must be reachable from the cluster: docs/DEPLOY.md)
# It prints each command it runs ("+ ..."), then what it did and what already existed.
# --dry-run prints the commands and changes nothing (it still looks at what exists, when the
# tools are there; without them it shows what a first run would do).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${KIND_CLUSTER_NAME:-agent-sbx}"
CONTEXT="kind-${CLUSTER}"
AGENT_SANDBOX_VERSION="v0.5.6"
RELEASE_URL="https://github.com/kubernetes-sigs/agent-sandbox/releases/download/${AGENT_SANDBOX_VERSION}"
AGENT_SANDBOX_NS="agent-sandbox-system"
DRY_RUN=0

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "kind-up: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

did=()
existed=()

have() { command -v "$1" >/dev/null 2>&1; }

# Print a command, then run it (not in a dry run).
run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    if [ "$DRY_RUN" = 0 ]; then
        "$@"
    fi
}

die() { echo "kind-up: $*" >&2; exit 1; }

if [ "$DRY_RUN" = 0 ]; then
    for tool in docker kind kubectl; do
        have "$tool" || die "$tool is not on PATH (install it: docs/DEPLOY.md)"
    done
    docker info >/dev/null 2>&1 || die "Docker does not answer (is the daemon running? docker info)"
fi

# The image the Deployment runs: one source of truth for its tag.
LAP_IMAGE="$(sed -n 's/^ *image: *\(lap-tui:[^ ]*\) *$/\1/p' "$ROOT/deploy/k8s/deployment.yaml" | head -n 1)"
[ -n "$LAP_IMAGE" ] || die "no lap-tui image in deploy/k8s/deployment.yaml"

# 1. the cluster
if have kind && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    existed+=("kind cluster $CLUSTER")
else
    run kind create cluster --name "$CLUSTER" --wait 120s
    did+=("created kind cluster $CLUSTER")
fi

kc() { run kubectl --context "$CONTEXT" "$@"; }

# 2. agent-sandbox at the pinned version
installed=""
if have kubectl; then
    installed="$(kubectl --context "$CONTEXT" get deployments -n "$AGENT_SANDBOX_NS" \
        -o 'jsonpath={.items[*].spec.template.spec.containers[*].image}' 2>/dev/null || true)"
fi
if [[ "$installed" == *":${AGENT_SANDBOX_VERSION}"* ]] \
    && kubectl --context "$CONTEXT" get crd sandboxclaims.extensions.agents.x-k8s.io >/dev/null 2>&1; then
    existed+=("agent-sandbox $AGENT_SANDBOX_VERSION")
else
    kc apply --server-side --force-conflicts -f "$RELEASE_URL/manifest.yaml"
    kc apply --server-side --force-conflicts -f "$RELEASE_URL/extensions.yaml"
    kc rollout status -n "$AGENT_SANDBOX_NS" deployment --timeout=180s
    did+=("installed agent-sandbox $AGENT_SANDBOX_VERSION")
fi

# 3. images, built and loaded into the nodes
load() {
    local image="$1" out
    printf '+ kind load docker-image %s --name %s\n' "$image" "$CLUSTER"
    if [ "$DRY_RUN" = 1 ]; then
        did+=("loaded image $image")
        return
    fi
    out="$(kind load docker-image "$image" --name "$CLUSTER" 2>&1)" || { echo "$out" >&2; die "kind load $image failed"; }
    if grep -q "already present on all nodes" <<<"$out"; then
        existed+=("image $image on the nodes")
    else
        did+=("loaded image $image")
    fi
}
shopt -s nullglob
for dockerfile in "$ROOT"/harnesses/*/Dockerfile; do
    dir="$(dirname "$dockerfile")"
    # Tagged with the pinned CLI's version (harness.toml's [install] version; "dev" when nothing
    # is pinned): lap_tui/harness/image.py gives a CLI agent with no image of its own this name.
    version="$(sed -n '/^\[install\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' "$dir/harness.toml" | head -n 1)"
    version="${version//+/_}"
    image="lap-tui-harness-$(basename "$dir"):${version:-dev}"
    run docker build -t "$image" -f "$dockerfile" "$dir"
    load "$image"
done
run docker build -t "$LAP_IMAGE" -f "$ROOT/deploy/Dockerfile" "$ROOT"
load "$LAP_IMAGE"

# 4. lap-tui's manifests (its namespace, ServiceAccount, team namespace and Role, the workers)
kc apply --server-side -k "$ROOT/deploy/k8s"
did+=("applied deploy/k8s (server-side)")

# 5. the Secret the workers read: its values never on a command line or the screen
ns="$(sed -n 's/^  namespace: *//p' "$ROOT/deploy/k8s/deployment.yaml" | head -n 1)"
if have kubectl && kubectl --context "$CONTEXT" get secret lap-tui-secrets -n "$ns" >/dev/null 2>&1; then
    existed+=("Secret $ns/lap-tui-secrets")
elif [ -n "${LAP_DATABASE_URL:-}" ] && [ -n "${LITELLM_API_KEY:-}" ]; then
    echo "+ kubectl --context $CONTEXT create secret generic lap-tui-secrets -n $ns" \
        "--from-file=database-url=<\$LAP_DATABASE_URL> --from-file=litellm-api-key=<\$LITELLM_API_KEY>"
    if [ "$DRY_RUN" = 0 ]; then
        tmp="$(mktemp -d)"
        trap 'rm -rf "$tmp"' EXIT
        printf '%s' "$LAP_DATABASE_URL" > "$tmp/database-url"
        printf '%s' "$LITELLM_API_KEY" > "$tmp/litellm-api-key"
        kubectl --context "$CONTEXT" create secret generic lap-tui-secrets -n "$ns" \
            --from-file=database-url="$tmp/database-url" --from-file=litellm-api-key="$tmp/litellm-api-key" >/dev/null
    fi
    did+=("created Secret $ns/lap-tui-secrets from LAP_DATABASE_URL and LITELLM_API_KEY")
else
    did+=("NOT created: Secret $ns/lap-tui-secrets: set LAP_DATABASE_URL and LITELLM_API_KEY and run again (the workers wait for it)")
fi

echo
if [ "$DRY_RUN" = 1 ]; then
    echo "kind-up: dry run, nothing changed. It would have:"
else
    echo "kind-up: done. kubectl --context $CONTEXT -n $ns get pods"
fi
for line in "${did[@]}"; do echo "  did:      $line"; done
for line in "${existed[@]+"${existed[@]}"}"; do echo "  existed:  $line"; done

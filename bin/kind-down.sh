#!/usr/bin/env bash
# bin/kind-down.sh [--dry-run]: delete the kind cluster bin/kind-up.sh made (agent-sbx, or
# KIND_CLUSTER_NAME), with everything in it. Idempotent: no cluster, nothing to do.
# The images stay in Docker (docker image rm lap-tui:<tag> lap-tui-harness-<name>:dev).
# --dry-run prints the command and changes nothing.
set -euo pipefail

CLUSTER="${KIND_CLUSTER_NAME:-agent-sbx}"
DRY_RUN=0

for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "kind-down: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

if ! command -v kind >/dev/null 2>&1; then
    if [ "$DRY_RUN" = 0 ]; then
        echo "kind-down: kind is not on PATH" >&2
        exit 1
    fi
    echo "+ kind delete cluster --name $CLUSTER"
    echo "kind-down: dry run, nothing changed (kind is not on PATH: it would delete cluster $CLUSTER if it exists)"
    exit 0
fi

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    echo "+ kind delete cluster --name $CLUSTER"
    if [ "$DRY_RUN" = 1 ]; then
        echo "kind-down: dry run, nothing changed. It would have deleted kind cluster $CLUSTER"
    else
        kind delete cluster --name "$CLUSTER"
        echo "kind-down: deleted kind cluster $CLUSTER"
    fi
else
    echo "kind-down: no kind cluster $CLUSTER: nothing to do"
fi

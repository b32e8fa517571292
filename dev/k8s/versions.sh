# Versions of everything bin/k8s-dev builds; sourced by the scripts in dev/k8s.
# Changing one changes the cache key, so the next `bin/k8s-dev build` rebuilds.
# After changing K8S_VERSION or ETCD_VERSION run dev/k8s/gen-gomod.sh.
K8S_VERSION=v1.36.3            # kube-apiserver, -controller-manager, -scheduler, kubectl
K8S_STAGING_VERSION=v0.36.3    # k8s.io/api, client-go, ... at the same release
ETCD_VERSION=v3.6.8            # the one k8s.io/kubernetes v1.36.3 itself requires
KWOK_VERSION=v0.8.0            # kwok (the fake kubelet) and kwokctl
AGENT_SANDBOX_VERSION=v0.5.6   # sigs.k8s.io/agent-sandbox controller, CRDs in ../shared/fixtures
K8S_DEV_KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_agent-sandbox-${AGENT_SANDBOX_VERSION}"
K8S_DEV_CACHE="${LAP_K8S_CACHE:-$HOME/.cache/lap-tui/k8s-dev}"
K8S_DEV_BIN="$K8S_DEV_CACHE/$K8S_DEV_KEY/bin"
K8S_DEV_BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl agent-sandbox-controller)

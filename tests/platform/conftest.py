"""The platform tests use the real bin/k8s-dev control plane (tests/k8s/conftest.py's fixtures)."""

from tests.k8s.conftest import k8s_cluster, k8s_namespace  # noqa: F401 - fixtures

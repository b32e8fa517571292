"""Fixtures of the Kubernetes tests: the real `bin/k8s-dev` cluster (tests/support/k8s_cluster.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import need
from tests.support import k8s_cluster as k8s


@pytest.fixture(scope="session")
def k8s_cluster() -> Iterator[k8s.K8sCluster]:
    """The running bin/k8s-dev cluster, or one started for this run (and stopped after it)."""
    missing = k8s.missing_binaries()
    need(not missing, f"the bin/k8s-dev binaries are not built ({', '.join(missing)}): run bin/k8s-dev build "
                      "(~20 min cold)")
    cluster, how = k8s.start_or_reuse()
    yield cluster
    k8s.teardown(how)


@pytest.fixture
def k8s_namespace(k8s_cluster: k8s.K8sCluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    name = "t-" + uuid.uuid4().hex[:10]
    k8s_cluster.kubectl("create", "namespace", name, check=True)
    yield name
    k8s_cluster.kubectl("delete", "namespace", name, "--wait=false")

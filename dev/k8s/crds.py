"""Prints the agent-sandbox CRDs (a directory of YAML files) as one JSON List for `kubectl apply -f -`,
with their conversion webhook pointed at the controller running on this host:
`url: https://127.0.0.1:9443/convert` and the caBundle of k8s-dev's local CA (instead of the
in-cluster Service the stock CRDs name, which does not exist here).

Usage: python crds.py CRD_DIR CA_CERT_FILE [URL]
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import yaml


def main() -> None:
    crd_dir, ca_file = Path(sys.argv[1]), Path(sys.argv[2])
    url = sys.argv[3] if len(sys.argv) > 3 else "https://127.0.0.1:9443/convert"
    ca = base64.b64encode(ca_file.read_bytes()).decode()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    items = []
    for f in sorted(crd_dir.glob("*.yaml")):
        for doc in yaml.load_all(f.read_text(), Loader=loader):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            conv = doc["spec"].get("conversion") or {}
            if conv.get("strategy") == "Webhook":
                conv["webhook"]["clientConfig"] = {"url": url, "caBundle": ca}
            items.append(doc)
    if not items:
        sys.exit(f"no CustomResourceDefinition in {crd_dir}")
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout)


if __name__ == "__main__":
    main()

"""Render a kustomization in Python: what `kubectl kustomize` prints, for the features deploy/k8s uses.

    python -m deploy.k8s.render deploy/k8s/overlays/production      # the manifests, as YAML

Why this exists: the tests must render the overlays on a machine without a cluster or a recent kubectl
(Debian ships kubectl 1.20, whose kustomize v2 has no `replicas`, `sortOptions` or regex patch targets),
and no maintained Python library renders kustomize (PyPI's `kustomize` 0.6 and `pykustomize` wrap or
re-implement a sliver of it and are not in our lock). It does only this, and refuses anything else:
`resources` (files and directories with a kustomization), `namespace`, `images`, `replicas`,
`patches` (RFC 6902 JSON patches, from `path` or `patch`, on a `target` by kind/name regex) and
`sortOptions: {order: fifo}`. tests/unit/test_k8s.py compares its output with `kubectl kustomize`
wherever a kubectl with kustomize ≥ 5 is installed.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any

import yaml

KNOWN = {"apiVersion", "kind", "resources", "namespace", "images", "replicas", "patches", "sortOptions"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass"}
WITH_REPLICAS = {"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"}


class Unsupported(ValueError):
    """The kustomization uses a feature this renderer does not implement (use kubectl kustomize)."""


def render(directory: str | Path) -> list[dict[str, Any]]:
    """The resources of the kustomization in ``directory``, transformed as kustomize would."""
    directory = Path(directory)
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    unknown = set(kustomization) - KNOWN
    if unknown:
        raise Unsupported(f"{directory}: {sorted(unknown)}")
    if kustomization.get("sortOptions") != {"order": "fifo"}:
        raise Unsupported(f"{directory}: only sortOptions order fifo is rendered (the legacy order is not)")
    docs: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_dir():
            docs.extend(render(path))
        else:
            docs.extend(doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc)
    for patch in kustomization.get("patches", []):
        operations = _patch_operations(directory, patch)
        matched = [doc for doc in docs if _selected(doc, patch.get("target", {}))]
        if not matched:
            raise Unsupported(f"{directory}: patch {patch} matches no resource")
        for doc in matched:
            _apply_json_patch(doc, operations)
    for image in kustomization.get("images", []):
        for doc in docs:
            _set_images(doc, image)
    for replicas in kustomization.get("replicas", []):
        for doc in docs:
            if doc["kind"] in WITH_REPLICAS and doc["metadata"]["name"] == replicas["name"]:
                doc["spec"]["replicas"] = replicas["count"]
    namespace = kustomization.get("namespace")
    if namespace:
        for doc in docs:
            if doc["kind"] == "Namespace":
                doc["metadata"]["name"] = namespace
            elif doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = namespace
    return docs


def _patch_operations(directory: Path, patch: dict[str, Any]) -> list[dict[str, Any]]:
    text = (directory / patch["path"]).read_text(encoding="utf-8") if "path" in patch else patch["patch"]
    operations = yaml.safe_load(text)
    if not isinstance(operations, list):
        raise Unsupported(f"{directory}: strategic merge patches are not rendered, only JSON patches ({patch})")
    return operations


def _selected(doc: dict[str, Any], target: dict[str, Any]) -> bool:
    unknown = set(target) - {"kind", "name"}
    if unknown:
        raise Unsupported(f"patch target fields {sorted(unknown)}")
    return all(re.fullmatch(target[key], str(doc[key] if key == "kind" else doc["metadata"]["name"]))
               for key in ("kind", "name") if key in target)


def _apply_json_patch(doc: dict[str, Any], operations: list[dict[str, Any]]) -> None:
    for operation in operations:
        keys = [part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]]
        parent = doc
        for key in keys[:-1]:
            parent = parent[int(key)] if isinstance(parent, list) else parent[key]
        last, op = keys[-1], operation["op"]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if op == "add":
                parent.insert(index, copy.deepcopy(operation["value"]))
            elif op == "replace":
                parent[index] = copy.deepcopy(operation["value"])
            elif op == "remove":
                del parent[index]
            else:
                raise Unsupported(f"JSON patch op {op}")
        elif op in ("add", "replace"):
            if op == "replace" and last not in parent:
                raise Unsupported(f"replace of a missing path {operation['path']}")
            parent[last] = copy.deepcopy(operation["value"])
        elif op == "remove":
            del parent[last]
        else:
            raise Unsupported(f"JSON patch op {op}")


def _set_images(node: Any, image: dict[str, Any]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for container in value:
                    name, tag = _split_image(container.get("image", ""))
                    if name == image["name"]:
                        new_name = image.get("newName", name)
                        new_tag = image.get("newTag", tag)
                        container["image"] = (f"{new_name}@{image['digest']}" if "digest" in image
                                              else f"{new_name}:{new_tag}" if new_tag else new_name)
            else:
                _set_images(value, image)
    elif isinstance(node, list):
        for item in node:
            _set_images(item, image)


def _split_image(image: str) -> tuple[str, str]:
    """(name, tag) of ``registry:port/path:tag``: the tag is what follows a colon after the last slash."""
    head, slash, last = image.rpartition("/")
    name, _, tag = last.partition(":")
    return head + slash + name, tag


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump_all(render(argv[0]), sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Grafana Operator manifests (opt-in outputs `grafana-dashboard-crd`, `grafana-folder-crd`): the same
dashboards and folders obsctl renders for the Grafana API, as `GrafanaDashboard` and `GrafanaFolder`
resources (grafana.integreatly.org/v1beta1) for GitOps shops that let Grafana Operator apply them.

Every resource lives in `kubernetes.grafana_namespace`, selects Grafana instances by
`kubernetes.grafana_instance_labels`, and carries obsctl's ownership marks. Dashboards reference their
folder by the folder resource's name (`folderRef`), so the operator creates the folder first; team
folders nest under obsctl's root folder (`parentFolderRef`). Uids are the Grafana uids obsctl uses
everywhere, so switching a Grafana from the API sink to the operator keeps every link.
"""

from __future__ import annotations

from typing import Any

from obsctl.model import conventions as cv
from obsctl.model.artifact import Artifact, Kind
from obsctl.render.options import RenderOptions
from obsctl.render.yamlout import dump_yaml

API_VERSION = "grafana.integreatly.org/v1beta1"


def _meta(name: str, owner: str, options: RenderOptions) -> dict[str, Any]:
    k8s = options.kubernetes
    return {"name": name, "namespace": k8s.grafana_namespace,
            "labels": dict(sorted({**dict(k8s.labels), cv.K8S_MANAGED_BY: cv.OWNER}.items())),
            "annotations": dict(sorted({**dict(k8s.annotations), "obsctl.dev/owner": owner}.items()))}


def _selector(options: RenderOptions) -> dict[str, Any]:
    return {"matchLabels": dict(options.kubernetes.grafana_instance_labels)}


def dashboard(dashboard_json: bytes, uid: str, folder_uid: str, owner: str, options: RenderOptions) -> Artifact:
    """A GrafanaDashboard carrying the dashboard JSON obsctl renders, in its folder."""
    body = {"apiVersion": API_VERSION, "kind": "GrafanaDashboard", "metadata": _meta(cv.k8s_name(uid), owner, options),
            "spec": {"instanceSelector": _selector(options), "uid": uid, "folderRef": cv.k8s_name(folder_uid),
                     "json": dashboard_json.decode()}}
    return Artifact(Kind.GRAFANA_DASHBOARD_CRD, uid, f"kubernetes/grafana/dashboards/{uid}.yaml",
                    dump_yaml(body, header=cv.FILE_HEADER.format(owner=owner)), owner)


def folder(uid: str, title: str, parent: str, owner: str, options: RenderOptions) -> Artifact:
    """A GrafanaFolder with obsctl's folder uid and title, under its parent folder's resource."""
    spec: dict[str, Any] = {"instanceSelector": _selector(options), "uid": uid, "title": title}
    if parent:
        spec["parentFolderRef"] = cv.k8s_name(parent)
    body = {"apiVersion": API_VERSION, "kind": "GrafanaFolder", "metadata": _meta(cv.k8s_name(uid), owner, options),
            "spec": spec}
    return Artifact(Kind.GRAFANA_FOLDER_CRD, uid, f"kubernetes/grafana/folders/{uid}.yaml",
                    dump_yaml(body, header=cv.FILE_HEADER.format(owner=owner)), owner)

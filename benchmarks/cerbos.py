"""A real Cerbos policy decision point beside ours, answering the same decisions.

Cerbos knows no role graph of ours, so the comparison gives it what a calling application would
send: the principal's roles are the user's directly assigned profiles (``p<id>``, plus ``agent`` for
everyone). The generated resource policy (kind ``cpas``, one scoped policy per CPAS, action = function
code) allows a function to the profiles that grant it (inclusions and covering expanded) on condition
that, for each of its prerequisites, the principal holds some profile granting that prerequisite —
which is exactly model.conf's decision. run.py checks every sampled decision against our engine before
it times anything. The binary comes from the npm package @cerbos/cerbos-linux-x64 (not committed).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from authz_service.engine import FUNCTION, profile_role

HERE = Path(__file__).resolve().parent
INSTALL = HERE / "results" / "cerbos"
VERSION = "0.55.0"


def binary() -> Path:
    path = INSTALL / "node_modules" / "@cerbos" / "cerbos-linux-x64" / "cerbos-linux-x64"
    if not path.exists():
        INSTALL.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(INSTALL),
                        f"@cerbos/cerbos-linux-x64@{VERSION}"], check=True)
    return path


def scope(cpas: str) -> str:
    return f"c{cpas}"


def write_policies(service: Any, cpas_ids: set[str], folder: Path) -> None:
    """One root policy and one scoped policy per CPAS."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    root = {"apiVersion": "api.cerbos.dev/v1", "resourcePolicy": {
        "version": "default", "resource": "cpas",
        "rules": [{"actions": ["__none__"], "effect": "EFFECT_DENY", "roles": ["agent"]}]}}
    (folder / "root.yaml").write_text(yaml.safe_dump(root))
    catalog = service.catalog
    for cpas in sorted(cpas_ids):
        policy = service.policy(cpas)
        held: dict[int, set[str]] = {}
        for pid in policy.descriptions:
            roles = policy._reachable(profile_role(pid)) | {profile_role(pid)}
            granted = {r[len(FUNCTION):] for r in roles if r.startswith(FUNCTION)}
            held[pid] = granted | {c for g in granted for c in catalog.functions[g].covers}
        rules = []
        for code in catalog.functions:
            granting = sorted(f"p{pid}" for pid, codes in held.items() if code in codes)
            if not granting:
                continue
            conditions = []
            for pre in sorted(catalog.prerequisites(code)):
                having = sorted(f"p{pid}" for pid, codes in held.items() if pre in codes)
                conditions.append(f"hasIntersection(P.roles, {json.dumps(having)})" if having else "false")
            rule: dict[str, Any] = {"actions": [code], "effect": "EFFECT_ALLOW", "roles": granting}
            if conditions:
                rule["condition"] = {"match": {"expr": " && ".join(conditions)}}
            rules.append(rule)
        document = {"apiVersion": "api.cerbos.dev/v1", "resourcePolicy": {
            "version": "default", "resource": "cpas", "scope": scope(cpas),
            "scopePermissions": "SCOPE_PERMISSIONS_OVERRIDE_PARENT", "rules": rules}}
        (folder / f"{scope(cpas)}.yaml").write_text(yaml.safe_dump(document, width=10_000))


def roles_of(service: Any, cpas: str, user: str) -> list[str]:
    return ["agent", *(f"p{pid}" for pid in service.policy(cpas).profiles_of(user))]


def request_body(service: Any, cpas: str, user: str, function: str, request_id: str = "b") -> dict[str, Any]:
    return {"requestId": request_id, "principal": {"id": user, "roles": roles_of(service, cpas, user)},
            "resources": [{"actions": [function],
                           "resource": {"kind": "cpas", "id": cpas, "scope": scope(cpas)}}]}


class Cerbos:
    def __init__(self, policies: Path, port: int, grpc_port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [str(binary()), "server", "--set=storage.driver=disk", f"--set=storage.disk.directory={policies}",
             f"--set=server.httpListenAddr=127.0.0.1:{port}", f"--set=server.grpcListenAddr=127.0.0.1:{grpc_port}",
             "--set=audit.enabled=false", "--set=telemetry.disabled=true", "--log-level=error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "CERBOS_NO_TELEMETRY": "1"},
        )
        start = time.perf_counter()
        while time.perf_counter() - start < 180:
            try:
                with urllib.request.urlopen(self.base + "/_cerbos/health", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
            if self.proc.poll() is not None:
                raise RuntimeError("cerbos exited: " + (self.proc.stderr.read().decode() if self.proc.stderr else ""))
        raise RuntimeError("cerbos never became healthy")

    def allowed(self, body: dict[str, Any]) -> bool:
        req = urllib.request.Request(self.base + "/api/check/resources", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as answer:
            result = json.loads(answer.read())
        action = body["resources"][0]["actions"][0]
        return bool(result["results"][0]["actions"][action] == "EFFECT_ALLOW")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)

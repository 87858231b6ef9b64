"""docs/api.md: the JSON admin routes accept an admin-scoped API key or the admin UI's session. A signed-in manager
reads and changes their own CPAS through the JSON routes; a change needs the session's CSRF token in
X-CSRFToken; another CPAS, a signed-out browser and the decision routes stay closed."""

from __future__ import annotations

from typing import Any

from .conftest import OTHER_CPAS, Web


def test_manager_session_on_the_json_admin_api(app: Any, demo: dict[str, Any], accounts: dict[str, str]) -> None:
    cpas = demo["cpas"]
    web = Web(app.test_client())
    assert web.client.get(f"/cpas/{cpas}/profiles").status_code == 401  # not signed in
    web.login("gestionnaire")
    listed = web.client.get(f"/cpas/{cpas}/profiles")
    assert listed.status_code == 200 and any(p["builtin"] for p in listed.json)
    assert web.client.get(f"/cpas/{OTHER_CPAS}/profiles").status_code == 403
    assert web.client.post("/enforce", json={"cpas": cpas, "user": "u", "function": "dossier.search"}
                           ).status_code == 401  # decisions need an API key, never a browser session

    body = {"description_fr": "Par la session", "functions": ["dossier.search"]}
    refused = web.client.post(f"/cpas/{cpas}/profiles", json=body)
    assert refused.status_code == 403 and "X-CSRFToken" in refused.json["error"]["message"]
    assert web.client.post(f"/cpas/{cpas}/profiles", json=body, headers={"X-CSRFToken": "forged"}).status_code == 403
    web.get("/ui/")  # a page of the UI hands out the session's token
    made = web.client.post(f"/cpas/{cpas}/profiles", json=body, headers={"X-CSRFToken": web.token})
    assert made.status_code == 201, made.json
    audit = web.client.get(f"/cpas/{cpas}/audit").json["items"][0]
    assert (audit["action"], audit["actor"]) == ("profile.create", "admin:gestionnaire")
    assert web.client.post("/cpas", json={"cpas": "0212345569", "name_fr": "X", "name_nl": "X",
                                          "region": "wallonia"}, headers={"X-CSRFToken": web.token}
                           ).status_code == 403  # a manager is no operator


def test_operator_session_may_create_a_cpas(app: Any, demo: dict[str, Any], accounts: dict[str, str]) -> None:
    web = Web(app.test_client())
    web.login("operateur")
    web.get("/ui/")
    created = web.client.post("/cpas", json={"cpas": "0212345569", "name_fr": "CPAS de X", "name_nl": "OCMW X",
                                             "region": "brussels"}, headers={"X-CSRFToken": web.token})
    assert created.status_code == 201, created.json

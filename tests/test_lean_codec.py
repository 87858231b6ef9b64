"""lean.py is never more lenient than the pydantic models: whatever body its msgspec structs and rules accept,
the model the Flask route validates with accepts too, with the same values (and whatever they refuse goes to
Flask, tests/test_lean_routes.py). Thousands of mutated bodies (wrong types, nulls, floats, big and negative
numbers, bad identifiers, unknown and missing fields, raw-text changes) are read both ways; and the
answers it writes are json's, byte for byte."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from pydantic import ValidationError

from authz_service import lean
from authz_service.authzen_schemas import EvaluationRequest, EvaluationsRequest
from authz_service.inputs import json_too_deep
from authz_service.schemas import BatchRequest, EnforceRequest

CPAS = "0207196354"
VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 7, 1.0, 0.5, 1e3, 2**62, 2**62 + 1, 2**64, -(2**63), "", "x", "u", CPAS,
    "0207.196.354", "0207196355", " 0207196354", "0207196354\n", "０２０７１９６３５４", "0٢07196354",
    "85073003328", "a" * 128, "a" * 129, "josé", "a b", "u\x00", "dossier.search", "Dossier.search",
    "dossier..search", "a" * 200, "a" * 201, "user", "cpas", "group", "true", [], [1], {}, {"a": 1},
    {"type": "user", "id": "85073003328"}, {"name": "dossier.search"}, {"type": "cpas", "id": CPAS},
]
ENFORCE = {"cpas": CPAS, "user": "85073003328", "function": "dossier.search", "explain": True,
           "min_policy_version": 3}
EVALUATION = {"subject": {"type": "user", "id": "85073003328", "properties": {"a": [1]}},
              "action": {"name": "dossier.search"}, "resource": {"type": "cpas", "id": CPAS},
              "context": {"explain": False, "min_policy_version": 0, "other": {"x": None}}}


def mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """``value`` with one to three random changes somewhere inside."""
    if not isinstance(value, dict) or depth > 3 or rng.random() < 0.15:
        return rng.choice(VALUES)
    out = dict(value)
    for _ in range(rng.randint(1, 3)):
        roll = rng.random()
        if roll < 0.15 and out:
            out.pop(rng.choice(list(out)))
        elif roll < 0.25:
            out[rng.choice(["extra", "id", "explain", "type", "properties", "min_policy_version"])] = rng.choice(VALUES)
        elif out:
            key = rng.choice(list(out))
            out[key] = mutate(rng, out[key], depth + 1)
    return out


def raw_variants(rng: random.Random, body: Any) -> list[bytes]:
    text = json.dumps(body)
    out = [text.encode(), json.dumps(body, ensure_ascii=False).encode()]
    if isinstance(body, dict) and body:  # a duplicate key: the last one counts, in both readers
        key = rng.choice(list(body))
        out.append((text[:-1] + f', {json.dumps(key)}: {json.dumps(rng.choice(VALUES))}}}').encode())
    out.append(b"\xef\xbb\xbf" + text.encode())
    out.append(text.replace("1", "1.0", 1).encode())
    return out


def flask_reads(raw: bytes) -> Any:
    """The body as Flask's request.get_json reads it (inputs.GuardedRequest), or a ValueError."""
    if json_too_deep(raw):
        raise ValueError("too deep")
    return json.loads(raw.decode("utf-8-sig"))


def same_request(asked: Any, model: EnforceRequest) -> bool:
    return (asked.cpas, asked.user, asked.function, asked.explain, asked.min_policy_version) == (
        model.cpas, model.user, model.function, model.explain, model.min_policy_version)


def accepted(model: Any, obj: Any) -> Any:
    try:
        return model.model_validate(obj)
    except ValidationError:
        return None


@pytest.mark.parametrize("seed", range(4))
def test_enforce_and_batch_items_never_more_lenient(seed: int) -> None:
    rng = random.Random(seed)
    taken = 0
    for _ in range(1500):
        body = mutate(rng, ENFORCE) if rng.random() < 0.9 else ENFORCE
        for raw in raw_variants(rng, body):
            asked = lean.enforce(raw)
            if asked is None:
                continue
            taken += 1
            model = accepted(EnforceRequest, flask_reads(raw))
            assert model is not None and same_request(asked, model), raw
            batch = b'{"requests": [' + raw + b"]}"
            items = lean.batch(batch)
            assert items is not None, raw
            obj = flask_reads(batch)
            assert accepted(BatchRequest, obj) is not None
            item = obj["requests"][0]
            model = accepted(EnforceRequest, {k: v for k, v in item.items() if k != "id"})
            assert model is not None and same_request(lean.Asked(items[0].cpas, items[0].user, items[0].function,
                                                                  items[0].explain, items[0].min_policy_version),
                                                      model), raw
    assert taken > 100  # the good ones and their harmless variants were accepted


@pytest.mark.parametrize("seed", range(4))
def test_batch_ids_and_bodies_never_more_lenient(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(1500):
        items = [{**ENFORCE, "id": rng.choice(VALUES)} if rng.random() < 0.8 else mutate(rng, ENFORCE)
                 for _ in range(rng.randint(0, 4))]
        body: Any = {"requests": items}
        if rng.random() < 0.2:
            body = mutate(rng, body)
        for raw in raw_variants(rng, body):
            found = lean.batch(raw)
            if found is None:
                continue
            obj = flask_reads(raw)
            assert accepted(BatchRequest, obj) is not None, raw
            for parsed, item in zip(found, obj["requests"], strict=True):
                model = accepted(EnforceRequest, {k: v for k, v in item.items() if k != "id"})
                assert model is not None and parsed.cpas == model.cpas and parsed.id == item.get("id"), raw


@pytest.mark.parametrize("seed", range(4))
def test_authzen_never_more_lenient(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(1500):
        body = mutate(rng, EVALUATION) if rng.random() < 0.9 else EVALUATION
        for raw in raw_variants(rng, body):
            asked = lean.evaluation(raw)
            if asked is not None:
                model = accepted(EvaluationRequest, flask_reads(raw))
                assert model is not None, raw
                assert (asked.cpas, asked.user, asked.function, asked.explain, asked.min_policy_version) == (
                    model.resource.id, model.subject.id, model.action.name, model.context.explain,
                    model.context.min_policy_version), raw
        items = [mutate(rng, {k: v for k, v in EVALUATION.items() if rng.random() < 0.5}) if rng.random() < 0.3
                 else {k: v for k, v in EVALUATION.items() if rng.random() < 0.5} for _ in range(rng.randint(0, 3))]
        defaults = {k: v for k, v in EVALUATION.items() if rng.random() < 0.7}
        many: Any = {**defaults, "evaluations": items}
        if rng.random() < 0.2:
            many["options"] = {"evaluations_semantic": rng.choice(["execute_all", "deny_on_first_deny", "x", 1])}
        for raw in raw_variants(rng, many):
            found = lean.evaluations(raw)
            if found is None:
                continue
            obj = flask_reads(raw)
            top = accepted(EvaluationsRequest, obj)
            assert top is not None, raw
            merged_defaults = top.model_dump(include={"subject", "action", "resource", "context"}, exclude_none=True)
            asked_list, semantic, single = found
            assert single == (not top.evaluations)
            assert single or semantic == top.options.evaluations_semantic
            for asked, item in zip(asked_list, top.evaluations or [{}], strict=True):
                assert isinstance(item, dict)
                one = accepted(EvaluationRequest, {**merged_defaults, **{
                    k: item[k] for k in ("subject", "action", "resource", "context") if k in item}})
                assert one is not None, raw
                assert (asked.cpas, asked.user, asked.function, asked.explain, asked.min_policy_version) == (
                    one.resource.id, one.subject.id, one.action.name, one.context.explain,
                    one.context.min_policy_version), raw


def test_answers_are_written_as_json_writes_them() -> None:
    rng = random.Random(5)
    pool = [chr(i) for i in range(0x250)] + ["é", "日", "😀", "\u2028", "\x7f", '"', "\\", "/", "\U0010fffd", "\ufeff"]
    for _ in range(3000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 12)))
        obj = {text: [text, 1, None, True, {"b": text, "a": -5, "c": 2**70}], "k": text}
        assert lean.jsonify(obj) == (json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode()
        assert lean.json_value(text) == json.dumps(text).encode()
    assert lean.json_value(None) == b"null" and lean.json_value(-12) == b"-12"
    assert lean.jsonify({"lone": "\ud800"}) == b'{"lone":"\\ud800"}\n'  # what msgspec cannot write: json

"""Identifier and text validation of the JSON API (schemas.py) in isolation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from authz_service.schemas import EnforceRequest, ProfileCreate, UserSeen, parse_kbo


@pytest.mark.parametrize("text", ["0212345668", "0212.345.668"])
def test_kbo_forms(text: str) -> None:
    assert parse_kbo(text) == "0212345668"


@pytest.mark.parametrize(
    "text", ["0212345669", "212345668", "2212345668", "0212345668\n", " 0212345668", "02123456a8", "0212.345668x"]
)
def test_bad_kbo(text: str) -> None:
    with pytest.raises(ValueError):
        parse_kbo(text)


@pytest.mark.parametrize("user", ["85073003328\n", "a b", "a/b", "x" * 129, ""])
def test_bad_user_ids(user: str) -> None:
    with pytest.raises(ValidationError):
        EnforceRequest.model_validate({"cpas": "0212345668", "user": user, "function": "dossier.search"})


@pytest.mark.parametrize("code", ["dossier.search\n", "Dossier.search", "dossier..search", ".x", "x."])
def test_bad_function_codes(code: str) -> None:
    with pytest.raises(ValidationError):
        EnforceRequest.model_validate({"cpas": "0212345668", "user": "u", "function": code})


@pytest.mark.parametrize("text", ["a\x00b", "line\x07bell", "\x1b[31mred"])
def test_control_characters_refused_in_texts(text: str) -> None:
    with pytest.raises(ValidationError):
        ProfileCreate.model_validate({"description_fr": text})
    with pytest.raises(ValidationError):
        UserSeen.model_validate({"name": text})


def test_descriptions_are_trimmed_and_blank_is_none() -> None:
    body = ProfileCreate.model_validate({"description_fr": "  Full   profil ", "description_nl": "   "})
    assert (body.description_fr, body.description_nl) == ("Full profil", None)

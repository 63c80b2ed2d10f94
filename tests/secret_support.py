"""The secrets of chat-shell's settings, found in the settings models themselves.

A field is a secret when it is typed ``SecretStr``/``SecretBytes`` (also inside a list, a dict or
an optional) or marked ``json_schema_extra={"secret": True}``; nested models are searched too.
Tests fill every such field with a distinct value and check that no output shows one, so a
secret added to a model later is checked without anyone listing it.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from typing import Any, get_args, get_origin

from pydantic import BaseModel, SecretBytes, SecretStr

Path = tuple[str, ...]
ANY_NAME = "*"  # in a path: any key of a mapping (e.g. a model name under ``models``)
_counter = itertools.count()


def _types_in(annotation: Any) -> Iterator[Any]:
    yield annotation
    for argument in get_args(annotation):
        yield from _types_in(argument)


def _is_secret(annotation: Any, extra: Any) -> bool:
    marked = isinstance(extra, dict) and extra.get("secret") is True
    return marked or any(t in (SecretStr, SecretBytes) for t in _types_in(annotation))


def _nested_models(annotation: Any) -> Iterator[tuple[type[BaseModel], bool]]:
    """The models inside ``annotation``, and whether they sit under a mapping's names."""
    for argument in _types_in(annotation):
        if isinstance(argument, type) and issubclass(argument, BaseModel):
            under_names = any(get_origin(t) is dict for t in _types_in(annotation))
            yield argument, under_names


def field_paths(model: type[BaseModel], prefix: Path = ()) -> Iterator[tuple[Path, bool, bool]]:
    """Every field of ``model`` and its nested models: (path, is a secret, holds a list)."""
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        annotation = field.annotation
        holds_list = any(get_origin(t) is list for t in _types_in(annotation))
        yield path, _is_secret(annotation, field.json_schema_extra), holds_list
        for nested, under_names in _nested_models(annotation):
            yield from field_paths(nested, (*path, ANY_NAME) if under_names else path)


def secret_paths(model: type[BaseModel]) -> list[Path]:
    return [path for path, secret, _ in field_paths(model) if secret]


def new_secret() -> str:
    """A distinct secret value, long enough for every validator (server keys need 16)."""
    return f"sekret-{next(_counter):03}-{secrets.token_hex(12)}"


def fill_secrets(
    model: type[BaseModel], name: str = "openai/test-model"
) -> tuple[dict[str, Any], list[str]]:
    """Values for ``model`` with a distinct secret in every secret field (two in a list), and the
    secrets used; ``name`` stands for any key of a mapping."""
    values: dict[str, Any] = {}
    used: list[str] = []
    lists = {path: holds_list for path, _, holds_list in field_paths(model)}
    for path in secret_paths(model):
        target = values
        for part in path[:-1]:
            target = target.setdefault(name if part == ANY_NAME else part, {})
        if lists[path]:
            target[path[-1]] = [new_secret(), new_secret()]
            used += target[path[-1]]
        else:
            target[path[-1]] = new_secret()
            used.append(target[path[-1]])
    return values, used


def concrete(path: Path, name: str = "openai/test-model") -> str:
    """A path as a ``chat-shell config get`` key."""
    return ".".join(name if part == ANY_NAME else part for part in path)


def leaked(text: str, secrets_used: list[str]) -> list[str]:
    return [secret for secret in secrets_used if secret in text]

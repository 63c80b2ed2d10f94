"""The public surface: curated, sorted, complete, typed and light to import."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import chat_shell
import chat_shell.testing
import pytest


def test_all_is_sorted_and_every_name_exists() -> None:
    for module in (chat_shell, chat_shell.testing):
        # sorted as ruff's RUF022 sorts: CONSTANTS, then Classes, then functions
        order = sorted(module.__all__, key=lambda n: (not n.isupper(), not n[:1].isupper(), n))
        assert module.__all__ == order, module.__name__
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_every_public_name_of_a_private_module_is_exported() -> None:
    exported = set(chat_shell.__all__)
    internal = {
        "DocumentHistory",
        "SessionDocument",
        "is_retryable_status",
        "describe_http_error",
        "import_litellm",
        "LiteLLMBackend",
        "OpenAIBackend",
        "MAX_REDIRECTS",
        "Transport",
        "transport_error",
        "bypasses_proxy",
        "proxy_for",
        "TrustError",
        "trust_context",
        "LineSplitter",
        "SSEError",
        "SSEParser",
        "MemoryHistoryStorage",
        "JSONHistoryStorage",
        "ChunkAccumulator",
        "parse_retry_after",
        "stream_error",
        "LITELLM_PROVIDERS",
        "bare_model_provider",
        "is_openai_reasoning_model",
        "INSTALL_LITELLM",
        "require_litellm",
        "with_overrides",
        # the storage family's own helpers
        "check_keep",
        "find_by_prefix",
        "fold",
        "match_words",
        "scan_for_words",
        "search_words",
        # … and what the SQL backends share (rows.py)
        "check_paging",
        "encode_json",
        "message_json",
        "messages_from_rows",
        "query_words",
        "search_hits",
        "session_from_row",
        "TITLE_LENGTH",
        "title_untitled",
        # the context window: used by the agent loop (and its tests and benchmarks)
        "SUMMARY_KEY",
        "Budget",
        "ContextMode",
        "Fitted",
        "RequestContext",
        "budget_for",
        "estimate_tokens",
        "summary_message",
        "summary_request",
        "ModelFacts",
        "build_table",
        "model_facts",
        # used by the CLI and the server only
        "PROVIDER_KEY_VARIABLES",
        "PackedEvents",
        # run stores' vocabulary, for stores and the edges
        "FINAL_STATUSES",
        "INTERRUPTED_REASON",
        "PUBLIC_FIELDS",
        "RunStatusName",
        "INTERRUPTED_TOOL_RESULT",
        "store_interrupted",
        "make_private_folder",
        "mask_secret",
        # entry-point plugins: what storage, run stores and the model router share
        "PluginGroup",
        "plugin_entry_points",
    }
    missing = []
    private = [
        info.name
        for info in pkgutil.walk_packages(chat_shell.__path__, "chat_shell.")
        if info.name.split(".")[1].startswith("_")
    ]
    assert "chat_shell._models.router" in private  # the families are walked too
    for name in private:
        module = importlib.import_module(name)
        for public in getattr(module, "__all__", []):
            if public not in exported and public not in internal:
                missing.append(f"{name}.{public}")
    assert missing == []


def test_the_name_table_is_what_type_checkers_see() -> None:
    """The lazy look-up follows ``_EXPORTS``; type checkers read the imports under
    ``TYPE_CHECKING``. Both must name the same things, from the same modules."""
    tree = ast.parse(Path(chat_shell.__file__).read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
    )
    seen: dict[str, str] = {}
    for node in block.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                assert alias.asname == alias.name  # an explicit re-export
                seen[alias.name] = node.module or ""
    table = {name: module for module, names in chat_shell._EXPORTS.items() for name in names}
    assert seen == table
    assert sorted([*table, "__version__"]) == sorted(chat_shell.__all__)


def test_package_is_typed() -> None:
    assert (Path(chat_shell.__file__).parent / "py.typed").exists()
    assert chat_shell.__version__[0].isdigit()


def test_importing_chat_shell_stays_light() -> None:
    code = (
        "import sys, chat_shell, chat_shell.testing; "
        "heavy = ('litellm', 'fastapi', 'typer', 'uvicorn', 'httpx', 'httpcore', 'certifi', "
        "'aiohttp', "
        "'pytest'); "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


@pytest.mark.litellm
def test_the_provider_list_matches_litellm() -> None:
    """``_providers`` lets us name models without importing litellm; it must not drift."""
    code = (
        "import os; os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'True'\n"
        "import litellm; print('\\n'.join(sorted(p.value for p in litellm.provider_list)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    from chat_shell._models.providers import LITELLM_PROVIDERS

    assert set(result.stdout.split()) == LITELLM_PROVIDERS


@pytest.mark.litellm
def test_the_model_table_matches_litellm() -> None:
    """``model_table.json`` (context windows, prices) is litellm's table; it must not drift.
    After upgrading litellm: ``python -m chat_shell._models.model_table``."""
    code = (
        "import os, json; os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'True'\n"
        "import litellm; print(json.dumps(litellm.model_cost))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    from chat_shell._models.model_table import TABLE_FILE, build_table

    shipped = json.loads(TABLE_FILE.read_text(encoding="utf-8"))
    assert build_table(json.loads(result.stdout.splitlines()[-1])) == shipped

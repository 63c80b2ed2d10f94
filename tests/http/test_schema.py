"""schemathesis over the server's OpenAPI schema: ≥ 100 examples per operation, no 5xx, and
every error in the one documented shape (OpenAI's on the OpenAI-compatible routes)."""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest

schemathesis = pytest.importorskip("schemathesis")

from http_support import ThreadServer  # noqa: E402

EXAMPLES = 100


@pytest.mark.slow
def test_no_server_errors(server: ThreadServer) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    counts: dict[str, int] = {}
    for operation in operations:
        _fuzz(operation, counts)
    # An operation without any input (GET /v1/health) has a single possible example.
    thin = {label: n for label, n in counts.items() if n < EXAMPLES and label != "GET /v1/health"}
    assert not thin, thin


def _fuzz(operation: Any, counts: dict[str, int]) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    counts[label] = 0

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        derandomize=True,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy())
    def check(case: Any) -> None:
        counts[label] += 1
        response = case.call(timeout=30)
        assert response.status_code < 500, (label, response.status_code, response.text[:300])
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"error"}, body
            assert {"code", "message", "retryable"} <= set(body["error"]), body
            if operation.path in ("/v1/chat/completions", "/v1/models"):  # OpenAI's shape
                assert set(body["error"]) == {"message", "type", "param", "code", "retryable"}

    check()

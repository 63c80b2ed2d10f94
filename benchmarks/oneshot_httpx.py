"""The one-shot floor of bench_cli.py: stream one answer with bare httpx and print it.

No history, no configuration, no retries: the least a one-shot client can do.

    OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 python benchmarks/oneshot_httpx.py "tokens 100"
"""

from __future__ import annotations

import json
import os
import sys

# The same guard as chat-shell's entry point: httpx imports its own command line (rich, click …)
# when they are installed, which a client never uses; the floor should not pay for it either.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import httpx  # noqa: E402


def main() -> None:
    body = {
        "model": "bench",
        "messages": [{"role": "user", "content": " ".join(sys.argv[1:])}],
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {os.environ.get('OPENAI_API_KEY', '')}"}
    url = os.environ["OPENAI_BASE_URL"].rstrip("/") + "/chat/completions"
    out = sys.stdout
    with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            choices = json.loads(data).get("choices")
            if choices and (content := choices[0]["delta"].get("content")):
                out.write(content)
    out.write("\n")


if __name__ == "__main__":
    main()

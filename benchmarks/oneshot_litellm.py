"""The litellm one-shot of bench_cli.py: stream one answer through litellm.acompletion.

OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 python benchmarks/oneshot_litellm.py "tokens 100"
"""

from __future__ import annotations

import asyncio
import os
import sys


async def ask(prompt: str) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at import
    import litellm

    response = await litellm.acompletion(
        model="openai/bench",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        api_base=os.environ["OPENAI_BASE_URL"],
        api_key=os.environ.get("OPENAI_API_KEY", ""),
    )
    async for chunk in response:
        if chunk.choices and chunk.choices[0].delta.content:
            sys.stdout.write(chunk.choices[0].delta.content)
    sys.stdout.write("\n")


if __name__ == "__main__":
    asyncio.run(ask(" ".join(sys.argv[1:])))

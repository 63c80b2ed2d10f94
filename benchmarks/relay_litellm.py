"""The peer of bench_http.py: the same relay as relay_bare.py, through litellm.acompletion.

python benchmarks/relay_litellm.py --port PORT --upstream http://127.0.0.1:U/v1
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse


def build(upstream: str) -> FastAPI:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    app = FastAPI()

    @app.post("/relay")
    async def relay(request: Request) -> StreamingResponse:
        body: dict[str, Any] = await request.json()

        async def frames() -> AsyncIterator[bytes]:
            response = await litellm.acompletion(
                model="openai/bench",
                messages=[{"role": "user", "content": body["content"]}],
                stream=True,
                api_base=upstream,
                api_key="sk-bench",
            )
            seq = 0
            async for chunk in response:
                if chunk.choices and chunk.choices[0].delta.content:
                    frame = json.dumps({"delta": chunk.choices[0].delta.content, "seq": seq})
                    yield f"event: content\nid: {seq}\ndata: {frame}\n\n".encode()
                    seq += 1
            yield f"event: complete\nid: {seq}\ndata: {{}}\n\n".encode()

        return StreamingResponse(frames(), media_type="text/event-stream")

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    uvicorn.run(
        build(args.upstream), host="127.0.0.1", port=args.port, log_level="warning", ws="none"
    )


if __name__ == "__main__":
    main()

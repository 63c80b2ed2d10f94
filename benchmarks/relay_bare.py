"""The floor of bench_http.py: a bare FastAPI + httpx relay of the upstream's stream as SSE.

python benchmarks/relay_bare.py --port PORT --upstream http://127.0.0.1:U/v1
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse


def build(upstream: str) -> FastAPI:
    app = FastAPI()
    client = httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=1000))

    @app.post("/relay")
    async def relay(request: Request) -> StreamingResponse:
        body: dict[str, Any] = await request.json()
        payload = {
            "model": "bench",
            "messages": [{"role": "user", "content": body["content"]}],
            "stream": True,
        }

        async def frames() -> AsyncIterator[bytes]:
            seq = 0
            async with client.stream(
                "POST", f"{upstream}/chat/completions", json=payload
            ) as response:
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    choices = chunk.get("choices")
                    if choices and choices[0]["delta"].get("content"):
                        delta = choices[0]["delta"]["content"]
                        frame = json.dumps({"delta": delta, "seq": seq})
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

"""The baseline for the ingest benchmark: a FastAPI webhook endpoint that does nothing.

It reads the body (any endpoint must) and answers 200 with a small JSON body, without verifying,
parsing or storing anything. The ingest benchmark serves it with the same uvicorn setup as
ShopPulse and reports ShopPulse's figures as a ratio of this one's.

    .venv/bin/python -m uvicorn --app-dir bench bare_app:app --port 8001
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import Response

app = FastAPI(title="bare webhook endpoint")

_OK = b'{"status":"ok"}'


@app.post("/webhooks/{source_id}")
async def receive(source_id: str, request: Request) -> Response:
    await request.body()
    return Response(_OK, 200, media_type="application/json")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}

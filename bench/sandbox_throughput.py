"""How many synchronous single-record creates a second the local RootFi sandbox answers.

    python -m bench.sandbox_throughput [--requests 20000] [--concurrency 64]
                                       [--client raw|httpx] [--max-seconds 60]

Starts the sandbox (`bench.common.start_sandbox`: in memory, no faults, no rate limit), warms
it up with 500 creates and resets it, then sends `POST /v3/ecommerce/customers` over
--concurrency keep-alive connections until --requests are answered or --max-seconds pass.
`--client raw` is a minimal HTTP/1.1 client on asyncio streams, so the figure is the server's;
`--client httpx` shows what one httpx.AsyncClient gets. Prints a Markdown table row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
from rootfi_sandbox.adminclient import SandboxAdmin

from bench.common import API_KEY, COMPANY_ID, Children, OthersCpu, start_sandbox, write_record

PATH = "/v3/ecommerce/customers"


def body_for(n: int) -> bytes:
    """One customer create, a little different each time."""
    customer = {
        "name": f"Bench customer {n}",
        "email": f"bench{n}@example.com",
        "phone": "+1 555 0100",
        "currency_id": "USD",
        "status": "ACTIVE",
    }
    return json.dumps({"company_id": COMPANY_ID, "data": [customer], "run_async": False}).encode()


Tally = tuple[Iterator[int], Counter[int]]  # request numbers still to send; answers by status


async def raw_worker(host: str, port: int, tally: Tally, deadline: float) -> None:
    """Sequential keep-alive creates on one connection."""
    reader, writer = await asyncio.open_connection(host, port)
    head = f"POST {PATH} HTTP/1.1\r\nhost: {host}\r\napi_key: {API_KEY}\r\n"
    head += "content-type: application/json\r\n"
    while time.monotonic() < deadline and (n := next(tally[0], None)) is not None:
        body = body_for(n)
        writer.write(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)
        answer = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"content-length: *(\d+)", answer, re.I).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
        tally[1][int(answer[9:12])] += 1
    writer.close()


async def httpx_worker(client: httpx.AsyncClient, tally: Tally, deadline: float) -> None:
    """Sequential creates through a shared httpx.AsyncClient."""
    headers = {"api_key": API_KEY, "content-type": "application/json"}
    while time.monotonic() < deadline and (n := next(tally[0], None)) is not None:
        response = await client.post(PATH, content=body_for(n), headers=headers)
        tally[1][response.status_code] += 1


async def drive(
    url: str, kind: str, total: int, concurrency: int, seconds: float
) -> tuple[Tally, float]:
    """Run the load; returns the tally and the elapsed wall time."""
    tally: Tally = (iter(range(1, total + 1)), Counter())
    started = time.monotonic()
    deadline = started + seconds
    if kind == "raw":
        host, port = url.removeprefix("http://").rsplit(":", 1)
        jobs = [raw_worker(host, int(port), tally, deadline) for _ in range(concurrency)]
        await asyncio.gather(*jobs)
    else:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            jobs = [httpx_worker(client, tally, deadline) for _ in range(concurrency)]
            await asyncio.gather(*jobs)
    return tally, time.monotonic() - started


def main() -> None:
    """Parse arguments, run warm-up and load, print the figure."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.sandbox_throughput", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args()
    children = Children()
    try:
        _, url = start_sandbox(children, Path(tempfile.mkdtemp(prefix="bench-sandbox-")))
        with SandboxAdmin(url) as admin:
            asyncio.run(drive(url, args.client, 500, 16, 10.0))  # warm-up
            admin.reset()
            others = OthersCpu(children)
            tally, elapsed = asyncio.run(
                drive(url, args.client, args.requests, args.concurrency, args.max_seconds)
            )
            stored, others_share = admin.state()["customers"], others.share()
    finally:
        children.stop_all()
    answers = tally[1]
    ok, sent = answers[200], answers.total()
    result = {
        "client": args.client,
        "concurrency": args.concurrency,
        "answers": answers,
        "stored": stored,
        "seconds": elapsed,
        "requests_per_second": ok / elapsed,
        "others_cpu": others_share,
    }
    print(
        "| client | concurrency | requests | ok | stored | seconds | creates/s | others' CPU |\n"
        "|---|---|---|---|---|---|---|---|\n"
        f"| {args.client} | {args.concurrency} | {sent:,} | {ok:,} | {stored:,} | "
        f"{elapsed:.1f} | {ok / elapsed:,.0f} | {others_share:.0%} |"
    )
    print(f"\n(written to {write_record('sandbox_throughput', result)})")


if __name__ == "__main__":
    main()

"""Hub memory under oversized uploads: RSS of a real `vward hub` process during 100 MB POSTs.

Starts `python -m ward.cli hub` (uvicorn) on a throwaway schema, then sends unauthenticated
100 MB POSTs (JSON to `/api/auth/token` by default, `--form` for the `/login` form) over raw
sockets — one, then 8 in parallel with a declared
Content-Length, then 8 in parallel chunked (no length) — each client pushing its bytes as fast
as the hub takes them. Prints, after each round, the hub's VmRSS and VmHWM (peak) from
/proc, how the requests ended (HTTP status, or the socket error when the hub closed the
connection first) and how many bytes the clients got into the socket in total.

Usage: python benchmarks/bench_hub_limits.py [--mb 100] [--parallel 8] [--form]
Uses VW_DATABASE_URL (default: the local server); the schema is dropped afterwards. Run it
with PYTHONPATH pointing at another checkout to measure that one.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from ward.db.connect import throwaway_schema
from ward.embedded import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ward_setup import conninfo_url

MIB = 1024 * 1024


def _mem(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def _upload(port: int, size: int, *, chunked: bool, form: bool, outcomes: list[str],
            sent: list[int]) -> None:
    block = b"x" * MIB
    total = 0
    frame = b"%x\r\n%s\r\n" % (len(block), block) if chunked else block
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    try:
        # A server that buffers the upload answers only once it has all of it: allow that.
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            path, kind = (("/login", "application/x-www-form-urlencoded") if form
                          else ("/api/auth/token", "application/json"))
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                         f"{kind}\r\n{length}\r\n\r\n".encode())
            with contextlib.suppress(OSError):
                for _ in range(size // MIB):
                    sock.sendall(frame)
                    total += len(block)
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            outcomes.append(data.split(b" ", 2)[1].decode() if data else "closed")
    except OSError as exc:
        outcomes.append(type(exc).__name__)
    sent.append(total)


def _round(port: int, pid: int, label: str, n: int, size: int, *, chunked: bool,
           form: bool) -> None:
    outcomes: list[str] = []
    sent: list[int] = []
    threads = [threading.Thread(target=_upload, args=(port, size), kwargs={
        "chunked": chunked, "form": form, "outcomes": outcomes, "sent": sent}) for _ in range(n)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rss, hwm = _mem(pid)
    print(f"{label:<34} RSS {rss:7.1f} MiB  peak {hwm:7.1f} MiB  "
          f"outcomes {dict(collections.Counter(outcomes))}  "
          f"client bytes sent {sum(sent) / MIB:7.1f} MiB  ({time.monotonic() - started:.1f} s)",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--form", action="store_true", help="POST the /login form instead")
    args = parser.parse_args()
    base_url = os.environ.get("VW_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    with throwaway_schema(base_url, "bench_limits_") as (_, conninfo):
        url = conninfo_url(conninfo)
        port = free_port()
        hub = None
        try:
            env = {**os.environ, "VW_DATABASE_URL": url, "VW_LOG_LEVEL": "WARNING"}
            hub = subprocess.Popen([sys.executable, "-m", "ward.cli", "hub", "--port", str(port)],
                                   env=env, stdout=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"http://127.0.0.1:{port}/login", timeout=1).status_code == 200:
                        break
                time.sleep(0.2)
            rss, hwm = _mem(hub.pid)
            print(f"{'hub started (after one GET)':<34} RSS {rss:7.1f} MiB  peak {hwm:7.1f} MiB",
                  flush=True)
            size = args.mb * MIB
            _round(port, hub.pid, f"1 x {args.mb} MB, Content-Length", 1, size, chunked=False,
                   form=args.form)
            _round(port, hub.pid, f"{args.parallel} x {args.mb} MB, Content-Length",
                   args.parallel, size, chunked=False, form=args.form)
            _round(port, hub.pid, f"{args.parallel} x {args.mb} MB, chunked", args.parallel, size,
                   chunked=True, form=args.form)
        finally:
            if hub is not None:
                hub.terminate()
                hub.wait(30)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A bounded abuse run against a local `anquan serve` (issue #17): fragment fan-out, 1,000
aliases of colourHistory, 64 MiB bodies (declared and chunked), then anonymous queries at
1,000 requests/s for 10 s with `anquan load`, while sampling the service's resident set and
`/healthz` latency. Loopback only; not part of `cargo test`.

    python3 scripts/abuse_run.py --anquan target/debug/anquan [--data-dir DIR]

Prints one line per phase and the peak resident set (VmHWM) and slowest `/healthz`.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SECRET = "abuse-run-secret-of-at-least-32-bytes!!"


def fan_out():
    query = "query{...F24} fragment F0 on QueryRoot{__typename}"
    for i in range(1, 25):
        query += f" fragment F{i} on QueryRoot{{...F{i - 1} ...F{i - 1}}}"
    return query


def aliases(count):
    fields = " ".join(f"a{i}: colourHistory {{ at }}" for i in range(count))
    return f'{{ enterprise(id: "00000000-0000-0000-0000-000000000000") {{ {fields} }} }}'


def post(port, query, timeout=60):
    body = json.dumps({"query": query}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def big_body(port, declared):
    """Sends a 64 MiB JSON body; returns the status line the server answered with."""
    size = 64 * 1024 * 1024
    connection = socket.create_connection(("127.0.0.1", port), timeout=60)
    if declared:
        head = f"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    else:
        head = "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    connection.sendall(head.encode())
    chunk = b" " * (1024 * 1024)
    framed = (f"{len(chunk):x}\r\n").encode() + chunk + b"\r\n"
    try:
        for _ in range(64):
            connection.sendall(chunk if declared else framed)
        if not declared:
            connection.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server answered and closed before the whole body was sent
    try:
        answer = connection.recv(4096).decode(errors="replace")
    except OSError as error:
        answer = f"(no answer: {error})"
    connection.close()
    return answer.split("\r\n", 1)[0]


class Sampler(threading.Thread):
    """Samples the resident set and `/healthz` latency every 50 ms."""

    def __init__(self, pid, port):
        super().__init__(daemon=True)
        self.pid, self.port = pid, port
        self.stop = threading.Event()
        self.rss_max_kb = 0
        self.healthz_max_ms = 0.0
        self.healthz = []

    def run(self):
        while not self.stop.is_set():
            self.rss_max_kb = max(self.rss_max_kb, status_kb(self.pid, "VmRSS"))
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=10) as response:
                    response.read()
                elapsed = (time.perf_counter() - started) * 1000
            except OSError:
                elapsed = 10_000.0
            self.healthz.append(elapsed)
            self.healthz_max_ms = max(self.healthz_max_ms, elapsed)
            time.sleep(0.05)

    def phase(self):
        """Resets the per-phase figures and returns the ones since the last call."""
        figures = (self.rss_max_kb, self.healthz_max_ms, sorted(self.healthz))
        self.rss_max_kb, self.healthz_max_ms, self.healthz = 0, 0.0, []
        return figures


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def in_threads(count, threads, work):
    results = []
    lock = threading.Lock()

    def run(n):
        for _ in range(n):
            result = work()
            with lock:
                results.append(result)

    pool = [threading.Thread(target=run, args=(count // threads,)) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--anquan", default="target/debug/anquan")
    parser.add_argument("--data-dir", help="an existing data directory (default: a fresh one)")
    parser.add_argument("--port", type=int, default=18_917)
    args = parser.parse_args()
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="anquan-abuse-")
    env = dict(os.environ, ANQUAN_JWT_SECRET=SECRET, RUST_LOG="warn")
    service = subprocess.Popen(
        [args.anquan, "serve", "--listen", f"127.0.0.1:{args.port}", "--data-dir", data_dir, "--graphiql", "false"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{args.port}/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        sampler = Sampler(service.pid, args.port)
        sampler.start()
        time.sleep(1)
        rss, healthz, _ = sampler.phase()
        print(f"idle: rss max {rss / 1024:.0f} MiB, /healthz max {healthz:.1f} ms")

        def report(name, results, started):
            rss, healthz, samples = sampler.phase()
            p99 = samples[int(len(samples) * 0.99) - 1] if samples else 0.0
            print(
                f"{name}: {len(results)} requests in {time.time() - started:.1f} s, answers {sorted(set(results))}; "
                f"rss max {rss / 1024:.0f} MiB, /healthz p99 {p99:.1f} ms, max {healthz:.1f} ms"
            )

        query = fan_out()
        started = time.time()
        results = in_threads(100, 4, lambda: str(post(args.port, query)[1].get("errors", [{}])[0].get("extensions", {}).get("code")))
        report("fragment fan-out x100", results, started)

        query = aliases(1000)
        started = time.time()
        results = in_threads(100, 4, lambda: str(post(args.port, query)[1].get("errors", [{}])[0].get("extensions", {}).get("code")))
        report("1,000 colourHistory aliases x100", results, started)

        started = time.time()
        results = in_threads(8, 4, lambda: big_body(args.port, True)) + in_threads(8, 4, lambda: big_body(args.port, False))
        report("64 MiB bodies x16 (8 declared, 8 chunked)", results, started)

        started = time.time()
        load = subprocess.run(
            [args.anquan, "load", "--address", f"127.0.0.1:{args.port}", "--scenario", "anonymous", "--target", "-",
             "--rate", "1000", "--seconds", "10", "--connections", "32"],
            capture_output=True,
            text=True,
            check=False,
        )
        report("anonymous queries 1,000/s for 10 s", [load.stdout.strip() or load.stderr.strip()], started)

        sampler.stop.set()
        sampler.join()
        peak = status_kb(service.pid, "VmHWM")
        print(f"peak resident set (VmHWM) over the run: {peak / 1024:.0f} MiB")
    finally:
        service.terminate()
        service.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

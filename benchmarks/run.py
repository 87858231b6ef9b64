"""`make bench`: every figure a median of several runs, each beside a reference measured in the same run.

Sections (each can be chosen with --only):
  inprocess   decision latency p50/p99 at 1, 50 and 580 CPAS: our engine, a plain dict lookup of
              precomputed sets, stock pycasbin Enforcer and FastEnforcer over the same exported policy
  coldstart   national scale: time to a loaded engine and peak RSS, in a fresh process and as a
              gunicorn worker (time to /readyz 200, worker RSS)
  http        wrk against gunicorn: /enforce, /enforce/batch (100), user functions 200 and 304, AuthZEN's
              /access/v1/evaluation, each beside the no-op route /healthz of the same app and beside the
              floor: a raw WSGI app (floor.py) under the same gunicorn settings, reading the same body and
              answering as many bytes, driven by the same wrk in turns with the service (5 rounds of 6 s
              each); the medians, the median of the rounds' ratios to the floor, and the worker CPU time
              per request of each (/proc), which the machine's other load disturbs least
  lean        worker CPU per request in-process: each read route as WSGI, the lean path and Flask alone
              (/enforce, batches of 100 and 1,000, functions 200 and 304, AuthZEN evaluation)
  memory      national scale, `serve --preload` (the default) and `--no-preload`, 1 and 2 workers: PSS and
              USS of the master and each worker (/proc/<pid>/smaps_rollup), what the second worker adds,
              time to ready
  propagation two servers on PostgreSQL + Redis: a change on one, time until the other answers it
  writes      national scale: saving a 150-function profile, assigning profiles (through Service.change,
              the CPAS's policy rebuilt before the call returns), 50 of each
Writes benchmarks/results/latest.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BIN = Path(sys.executable).parent
PG_URL = os.environ.get("AUTHZ_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("AUTHZ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ROUNDS = 5


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# -- data ----------------------------------------------------------------------------------------------
def dataset(cpas: int) -> str:
    """A SQLite file with `generate --cpas K --seed 1` (national scale for 580), made once and kept."""
    from authz_service.catalog import load_catalog
    from authz_service.cli import init_db
    from authz_service.config import load_settings
    from authz_service.db import Database
    from authz_service.generate import generate, plan

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"data-{cpas}.sqlite3"
    url = f"sqlite:///{path}"
    if not path.exists():
        log(f"generating {cpas} CPAS into {path.name} ...")
        tmp = path.with_suffix(".tmp")
        for leftover in RESULTS.glob(tmp.name + "*"):
            leftover.unlink()
        tmp_url = f"sqlite:///{tmp}"
        settings = load_settings({"database_url": tmp_url})
        init_db(settings)
        database = Database(tmp_url)
        generate(database, load_catalog(settings.policies_dir), plan("national" if cpas == 580 else None,
                                                                      None if cpas == 580 else cpas, 1))
        database.dispose()
        tmp.rename(path)
    else:  # made by an older revision: bring its schema up to this one's (a no-op when it is)
        init_db(load_settings({"database_url": url}))
    return url


def service_for(url: str) -> Any:
    from authz_service.config import load_settings
    from authz_service.service import Service

    # no poller here, and the stock Enforcer takes minutes at national scale: keep the snapshot trusted
    service = Service(load_settings({"database_url": url, "poll_interval": 0, "notify": "off", "max_staleness": 86400}))
    assert service.sync(), service.last_error
    return service


def sample_requests(service: Any, n: int, seed: int = 7, cpas: int | None = None) -> list[tuple[str, str, str]]:
    """Half of them allowed, as a calling application would mostly ask for what the menu shows;
    from ``cpas`` CPAS only when given (the largest city among them)."""
    rng = random.Random(seed)
    policies = sorted(service.engine.snapshot.policies.values(), key=lambda p: p.cpas)
    if cpas is not None:
        policies = policies[:1] + rng.sample(policies[1:], k=min(cpas, len(policies)) - 1)
    codes = list(service.catalog.functions)
    out: list[tuple[str, str, str]] = []
    while len(out) < n:
        policy = rng.choice(policies)
        users = list(policy._users)
        user = rng.choice(users)
        granted = sorted(policy.functions_of(user))
        if granted and rng.random() < 0.5:
            out.append((policy.cpas, user, rng.choice(granted)))
        else:
            out.append((policy.cpas, user, rng.choice(codes)))
    return out


# -- in-process -----------------------------------------------------------------------------------------
def time_calls(fn: Any, requests: list[tuple[str, str, str]]) -> list[float]:
    clock = time.perf_counter_ns
    out = []
    for c, u, f in requests:
        start = clock()
        fn(c, u, f)
        out.append((clock() - start) / 1000)
    return out


def rounds(fn: Any, requests: list[tuple[str, str, str]]) -> dict[str, float]:
    p50s, p99s = [], []
    for _ in range(ROUNDS):
        lat = time_calls(fn, requests)
        p50s.append(pct(lat, 0.5))
        p99s.append(pct(lat, 0.99))
    return {"p50_us": statistics.median(p50s), "p99_us": statistics.median(p99s)}


def inprocess(scales: list[int]) -> dict[str, Any]:
    import casbin

    from authz_service.store import policy_csv

    out: dict[str, Any] = {}
    for k in scales:
        url = dataset(k)
        service = service_for(url)
        requests = sample_requests(service, 20_000)
        reference = {(c, u): service.policy(c).functions_of(u) for c, u, _ in requests}
        engine = service.engine
        ours = rounds(engine.allows, requests)
        # what a request pays: the same decision after the per-decision freshness check (version board)
        checked = rounds(lambda c, u, f, s=service: s.fresh_policy(c).allows(u, f), requests)
        dict_ref = rounds(lambda c, u, f, ref=reference: f in ref[(c, u)], requests)
        # the exported policy, as any Casbin implementation would load it
        lines: dict[tuple[str, ...], None] = {}
        for cpas in engine.snapshot.policies:
            for line in service.read(lambda store, c=cpas: store.policy_lines(c)):
                lines[line] = None
        csv_path = Path(tempfile.mkstemp(suffix=".csv")[1])
        csv_path.write_text(policy_csv(lines))
        row: dict[str, Any] = {"cpas": k, "policy_lines": len(lines), "ours": ours, "checked": checked,
                               "dict": dict_ref}
        for name, factory, n in (
            ("fast_enforcer", lambda p=csv_path: casbin.FastEnforcer(str(ROOT / "model.conf"), str(p),
                                                                      cache_key_order=[2]),
             {1: 300, 50: 100, 580: 20}.get(k, 20)),
            ("enforcer", lambda p=csv_path: casbin.Enforcer(str(ROOT / "model.conf"), str(p)),
             {1: 200, 50: 6, 580: 3}.get(k, 3)),
        ):
            log(f"  {k} CPAS: loading stock {name} ({len(lines)} lines) ...")
            start = time.perf_counter()
            enforcer = factory()
            load_s = time.perf_counter() - start
            subset = requests[:n]
            lat = []
            for c, u, f in subset:
                t0 = time.perf_counter_ns()
                got = enforcer.enforce(f"user:{u}", c, f)
                lat.append((time.perf_counter_ns() - t0) / 1000)
                assert got == engine.allows(c, u, f), ("stock pycasbin disagrees", c, u, f)
            row[name] = {"p50_us": pct(lat, 0.5), "p99_us": pct(lat, 0.99), "load_s": load_s, "n": n}
            del enforcer
        csv_path.unlink()
        row["p99_vs_dict"] = ours["p99_us"] / dict_ref["p99_us"]
        row["checked_p99_vs_dict"] = checked["p99_us"] / dict_ref["p99_us"]
        row["speedup_vs_enforcer_p50"] = row["enforcer"]["p50_us"] / ours["p50_us"]
        out[str(k)] = row
        service.close()
        log(f"  {k} CPAS: ours p50 {ours['p50_us']:.2f} us p99 {ours['p99_us']:.2f} us; "
            f"dict p99 {dict_ref['p99_us']:.2f} us; Enforcer p50 {row['enforcer']['p50_us']:.0f} us")
    return out


# -- servers ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, url: str, *, workers: int = 2, env: dict[str, str] | None = None,
                 preload: bool = True) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # no access log: the Cerbos beside it runs without its audit log too
        environment = {**os.environ, "AUTHZ_DATABASE_URL": url, "AUTHZ_LOG_LEVEL": "WARNING",
                       "AUTHZ_ACCESS_LOG": "false", **(env or {})}
        environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [str(BIN / "authz-service"), "serve", "--port", str(self.port), "--workers", str(workers),
             "--preload" if preload else "--no-preload"],
            env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.ready_s = self.wait_ready()

    def wait_ready(self, limit: float = 120) -> float:
        while time.perf_counter() - self.started < limit:
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("the server exited")
            time.sleep(0.05)
        raise RuntimeError("the server never became ready")

    def worker_rss_mb(self) -> list[float]:
        out = []
        for child in Path(f"/proc/{self.proc.pid}/task").parent.parent.iterdir():
            if not child.name.isdigit():
                continue
            try:
                status = (child / "status").read_text()
            except OSError:
                continue
            if f"PPid:\t{self.proc.pid}\n" in status:
                rss = next(line for line in status.splitlines() if line.startswith("VmRSS"))
                out.append(int(rss.split()[1]) / 1024)
        return out

    def worker_pids(self) -> list[int]:
        out = []
        for child in Path("/proc").iterdir():
            if not child.name.isdigit():
                continue
            try:
                status = (child / "status").read_text()
            except OSError:
                continue
            if f"PPid:\t{self.proc.pid}\n" in status:
                out.append(int(child.name))
        return sorted(out)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def api_key(url: str, cpas: list[str] | None = None) -> str:
    from authz_service.db import Database
    from authz_service.security import new_api_key
    from authz_service.store import Store

    database = Database(url)
    with database.transaction() as session:
        key = new_api_key(Store(session), "bench", ("enforce", "users", "admin"), cpas)
    database.dispose()
    return key


def coldstart() -> dict[str, Any]:
    url = dataset(580)
    runs = []
    for _ in range(3):
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "coldstart.py"), url],
                              capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout))
    served = []
    for _ in range(3):
        server = Server(url, workers=1)
        served.append({"ready_s": server.ready_s, "worker_rss_mb": max(server.worker_rss_mb() or [0])})
        server.stop()
    return {
        "process_seconds": statistics.median(r["seconds"] for r in runs),
        "process_rss_mb": statistics.median(r["rss_mb"] for r in runs),
        "gunicorn_ready_seconds": statistics.median(r["ready_s"] for r in served),
        "gunicorn_worker_rss_mb": statistics.median(r["worker_rss_mb"] for r in served),
    }


def smaps_mb(pid: int) -> dict[str, float]:
    """RSS, PSS (shared pages divided among the processes that map them) and USS (pages of this process
    alone: Private_Clean + Private_Dirty) of a process, in MB, from /proc/<pid>/smaps_rollup."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[-1] == "kB":
            fields[name] = int(parts[0]) / 1024
    return {"rss": fields["Rss"], "pss": fields["Pss"],
            "uss": fields["Private_Clean"] + fields["Private_Dirty"]}


def memory() -> dict[str, Any]:
    """Each mode with 1 and 2 workers, after every worker has answered decisions for a few seconds (so
    the pages a decision touches are counted); what the second worker adds to the whole server's PSS."""
    url = dataset(580)
    service = service_for(url)
    singles = [json.dumps({"cpas": c, "user": u, "function": f}) for c, u, f in sample_requests(service, 2000)]
    service.close()
    key = api_key(url)
    out: dict[str, Any] = {}
    for preload in (True, False):
        mode = "preload" if preload else "no_preload"
        runs: dict[str, Any] = {}
        for workers in (1, 2):
            server = Server(url, workers=workers, preload=preload)
            try:
                ready_s = server.ready_s
                deadline = time.perf_counter() + 60
                while True:  # every worker loaded (/readyz answers as soon as one is): its poller thread runs
                    pids = server.worker_pids()
                    if len(pids) == workers and all(len(os.listdir(f"/proc/{pid}/task")) > 1 for pid in pids):
                        break
                    if time.perf_counter() > deadline:
                        raise RuntimeError("the workers never all became ready")
                    time.sleep(0.2)
                all_ready_s = time.perf_counter() - server.started
                wrk(server.base, "/enforce", "POST", key, singles, seconds=2)
                master = smaps_mb(server.proc.pid)
                each = [smaps_mb(pid) for pid in server.worker_pids()]
            finally:
                server.stop()
            runs[str(workers)] = {"ready_s": ready_s, "all_workers_ready_s": all_ready_s, "master": master,
                                  "workers": each, "total_pss": master["pss"] + sum(w["pss"] for w in each)}
        runs["second_worker_adds_pss"] = runs["2"]["total_pss"] - runs["1"]["total_pss"]
        out[mode] = runs
        log(f"  {mode}: total PSS 1 worker {runs['1']['total_pss']:.0f} MB, 2 workers {runs['2']['total_pss']:.0f}"
            f" MB: +{runs['second_worker_adds_pss']:.0f} MB")
    return out


# -- HTTP -----------------------------------------------------------------------------------------------
WRK_SCRIPT = """
local bodies = {%s}
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format(%s, %s, {["Authorization"] = "Bearer %s", ["Content-Type"] = "application/json"%s}, bodies[i])
end
"""


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def wrk(base: str, path: str, method: str, key: str, bodies: list[str] | None, extra_header: str = "",
        seconds: int = 6) -> dict[str, float]:
    runs = [wrk_once(base, path, method, key, bodies, extra_header, seconds) for _ in range(3)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def wrk_once(base: str, path: str, method: str, key: str, bodies: list[str] | None, extra_header: str = "",
             seconds: int = 6) -> dict[str, float]:
    script = WRK_SCRIPT % (
        ", ".join(lua_string(b) for b in (bodies or [""])), lua_string(method), lua_string(path), key, extra_header)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        done = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", handle.name, base],
                              capture_output=True, text=True, check=True)
    finally:
        os.unlink(handle.name)
    return parse_wrk(done.stdout)


def cpu_seconds(master: int) -> float:
    """User + system CPU time of the worker processes of a gunicorn master, from /proc."""
    total = 0
    for child in Path("/proc").iterdir():
        if not child.name.isdigit():
            continue
        try:
            fields = (child / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:  # the parent's pid; utime and stime are fields 14 and 15 of stat
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def measured(base: str, master: int, path: str, method: str, key: str, bodies: list[str] | None,
             extra_header: str) -> dict[str, float]:
    """One wrk run, and the worker CPU time it cost per request (microseconds): what the machine's other
    load changes least."""
    before = cpu_seconds(master)
    out = wrk_once(base, path, method, key, bodies, extra_header)
    out["cpu_us"] = (cpu_seconds(master) - before) / max(out["requests"], 1) * 1e6
    return out


def beside_floor(server: Any, floor: Any, path: str, method: str, key: str, bodies: list[str] | None,
                 extra_header: str = "", rounds: int = 5) -> tuple[dict[str, Any], dict[str, Any], float]:
    """The service and its floor in turns (service, floor, service, floor...), so that whatever else the
    machine does weighs on both alike: the medians of each (with each round's request rate), and the median
    of the rounds' ratios."""
    ours, floors, ratios = [], [], []
    for _ in range(rounds):
        ours.append(measured(server.base, server.proc.pid, path, method, key, bodies, extra_header))
        floors.append(measured(floor.base, floor.proc.pid, path, method, key, bodies, extra_header))
        ratios.append(ours[-1]["rps"] / floors[-1]["rps"])

    def median(runs: list[dict[str, float]]) -> dict[str, Any]:
        return {**{k: statistics.median(r[k] for r in runs) for k in runs[0]}, "rounds_rps": [r["rps"] for r in runs]}

    return median(ours), median(floors), statistics.median(ratios)


def parse_wrk(text: str) -> dict[str, float]:
    def ms(value: str) -> float:
        for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
            if value.endswith(unit):
                return float(value[: -len(unit)]) * factor
        return float(value)

    out = {"rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "non2xx": 0.0, "requests": 0.0}
    for line in text.splitlines():
        parts = line.split()
        if " requests in " in line:
            out["requests"] = float(parts[0])
        elif line.startswith("Requests/sec:"):
            out["rps"] = float(parts[1])
        elif parts[:1] == ["50%"]:
            out["p50_ms"] = ms(parts[1])
        elif parts[:1] == ["99%"]:
            out["p99_ms"] = ms(parts[1])
        elif "Non-2xx or 3xx responses" in line:
            out["non2xx"] = float(parts[-1])
    return out


def http() -> dict[str, Any]:
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (apt-get install wrk)"}
    url = dataset(580)
    service = service_for(url)
    # 30 CPAS: a Cerbos policy per CPAS, and Cerbos compiles them all at start (about 0.3 s each)
    requests = sample_requests(service, 200, cpas=30)
    cerbos_result = cerbos_http(service, requests)
    service.close()
    key = api_key(url)
    server = Server(url, workers=2)
    # /readyz answers as soon as one worker has its engine; let the other finish loading, then warm up
    time.sleep(server.ready_s + 2)
    subprocess.run(["wrk", "-t2", "-c16", "-d2s", server.base + "/healthz"], capture_output=True, check=True)
    try:
        singles = [json.dumps({"cpas": c, "user": u, "function": f}) for c, u, f in requests]
        batches = [json.dumps({"requests": [{"id": i, "cpas": c, "user": u, "function": f}
                                            for i, (c, u, f) in enumerate(requests[j:j + 100])]})
                   for j in (0, 100)]
        cpas, user, _ = requests[0]
        path = f"/cpas/{cpas}/users/{user}/functions"
        request = urllib.request.Request(server.base + path, headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(request) as answer:
            etag = answer.headers["ETag"]
            functions_size = len(answer.read())
        # AuthZEN's evaluation: the same decisions in AuthZEN's words
        evaluations = [json.dumps({"subject": {"type": "user", "id": u}, "action": {"name": f},
                                   "resource": {"type": "cpas", "id": c}}) for c, u, f in requests]
        sizes = {"/enforce": answer_size(server.base, "/enforce", key, singles[0]),
                 "/enforce/batch": answer_size(server.base, "/enforce/batch", key, batches[0]), path: functions_size,
                 "/access/v1/evaluation": answer_size(server.base, "/access/v1/evaluation", key, evaluations[0])}
        floor = FloorServer(sizes)
        try:
            noop = wrk(server.base, "/healthz", "GET", key, None)
            if_none_match = ', ["If-None-Match"] = ' + lua_string(etag)
            results: dict[str, Any] = {"noop": noop, "floor_answer_bytes": sizes}
            for name, route, method, bodies, extra in (
                ("enforce", "/enforce", "POST", singles, ""),
                ("batch100", "/enforce/batch", "POST", batches, ""),
                ("functions_200", path, "GET", None, ""),
                ("functions_304", path, "GET", None, if_none_match),
                ("evaluation", "/access/v1/evaluation", "POST", evaluations, ""),
            ):
                # the service and its floor in turns, for each route: the same wrk, script and bodies
                results[name], results[f"floor_{name}"], results[f"{name}_vs_floor"] = beside_floor(
                    server, floor, route, method, key, bodies, extra_header=extra)
                results[f"{name}_cpu_vs_floor"] = results[f"floor_{name}"]["cpu_us"] / results[name]["cpu_us"]
        finally:
            floor.stop()
    finally:
        server.stop()
    results["cerbos"] = cerbos_result
    if "rps" in cerbos_result:
        results["enforce_vs_cerbos"] = results["enforce"]["rps"] / cerbos_result["rps"]
    results["enforce_vs_noop"] = results["enforce"]["rps"] / noop["rps"]
    results["batch_decisions_per_s"] = results["batch100"]["rps"] * 100
    return results


def answer_size(base: str, path: str, key: str, body: str) -> int:
    request = urllib.request.Request(base + path, data=body.encode(), method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return len(answer.read())


class FloorServer:
    """benchmarks/floor.py under gunicorn as ``serve`` runs: 2 workers x 4 threads, gthread, no access log."""

    def __init__(self, sizes: dict[str, int], *, workers: int = 2, threads: int = 4) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "--workers", str(workers), "--worker-class", "gthread", "--threads",
             str(threads), "--bind", f"127.0.0.1:{self.port}", "--chdir", str(ROOT / "benchmarks"), "floor:app"],
            env={**os.environ, "AUTHZ_FLOOR_ANSWERS": json.dumps(sizes)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.perf_counter() + 30
        while True:
            try:
                with urllib.request.urlopen(self.base + "/", timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.perf_counter() > deadline:
                    raise RuntimeError("the floor server did not start") from None
                time.sleep(0.05)
        time.sleep(0.5)  # the second worker
        subprocess.run(["wrk", "-t2", "-c16", "-d1s", self.base + "/"], capture_output=True, check=True)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def cerbos_http(service: Any, requests: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The same decisions asked of a real Cerbos PDP, after checking that it answers them like us."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import cerbos

    try:
        cerbos.binary()
    except Exception as exc:  # npm missing or refused
        return {"skipped": f"cerbos could not be installed: {exc}"}
    folder = RESULTS / "cerbos-policies"
    cerbos.write_policies(service, {c for c, _, _ in requests}, folder)
    pdp = cerbos.Cerbos(folder, free_port(), free_port())
    try:
        bodies = [cerbos.request_body(service, c, u, f) for c, u, f in requests]
        for (c, u, f), body in zip(requests, bodies, strict=True):
            assert pdp.allowed(body) is service.engine.allows(c, u, f), ("cerbos disagrees", c, u, f)
        result = wrk(pdp.base, "/api/check/resources", "POST", "unused", [json.dumps(b) for b in bodies])
    finally:
        pdp.stop()
    result["agreed_on"] = len(requests)
    return result


# -- the lean path in-process ----------------------------------------------------------------------------
def lean() -> dict[str, Any]:
    """Worker CPU per request, without the server: each read route called as WSGI on the app (the lean path
    in front) and on Flask alone (what the lean path hands over to), national scale, cycling through the
    same bodies as the HTTP section (200 decisions from 30 CPAS); the median of 7 rounds of the mean
    microseconds per request."""
    import io

    from werkzeug.test import EnvironBuilder

    from authz_service import create_app

    url = dataset(580)
    service = service_for(url)
    requests = sample_requests(service, 1000, cpas=30)
    service.close()
    key = api_key(url)
    app = create_app({"database_url": url, "access_log": False, "log_level": "WARNING"}, start_polling=False)
    cpas, user, _ = requests[0]
    auth = {"Authorization": f"Bearer {key}"}

    def batch(n: int, start: int = 0) -> str:
        return json.dumps({"requests": [{"id": i, "cpas": c, "user": u, "function": f}
                                        for i, (c, u, f) in enumerate(requests[start:start + n])]})

    path = f"/cpas/{cpas}/users/{user}/functions"
    answer: list[Any] = []
    b"".join(app.wsgi_app(EnvironBuilder(path=path, headers=auth).get_environ(),
                          lambda status, headers, *_: answer.append(dict(headers))))
    calls: dict[str, tuple[str, str, list[str | None], dict[str, str]]] = {
        "enforce": ("POST", "/enforce", [json.dumps({"cpas": c, "user": u, "function": f})
                                         for c, u, f in requests[:200]], {}),
        "batch100": ("POST", "/enforce/batch", [batch(100), batch(100, 100)], {}),
        "batch1000": ("POST", "/enforce/batch", [batch(1000)], {}),
        "evaluation": ("POST", "/access/v1/evaluation", [json.dumps({
            "subject": {"type": "user", "id": u}, "action": {"name": f}, "resource": {"type": "cpas", "id": c}})
            for c, u, f in requests[:200]], {}),
        "functions_200": ("GET", path, [None], {}),
        "functions_304": ("GET", path, [None], {"If-None-Match": answer[0]["ETag"]}),
    }
    out: dict[str, Any] = {}
    try:
        for name, (method, route, bodies, headers) in calls.items():
            environs = []
            for body in bodies:
                data = None if body is None else body.encode()
                environs.append((data, EnvironBuilder(path=route, method=method, data=data, headers={
                    **auth, **headers, **({"Content-Type": "application/json"} if data else {})}).get_environ()))
            row = {}
            for side, wsgi in (("lean", app.wsgi_app), ("flask", app.wsgi_app.app)):
                n = 20 if name == "batch1000" else 200

                def once(i: int, wsgi: Any = wsgi, environs: list[Any] = environs) -> None:
                    data, environ = environs[i % len(environs)]
                    environ = dict(environ)
                    if data is not None:
                        environ["wsgi.input"] = io.BytesIO(data)
                    for _ in wsgi(environ, lambda status, headers, *_: None):
                        pass

                for i in range(n):
                    once(i)
                means = []
                for _ in range(7):
                    start = time.perf_counter()
                    for i in range(n):
                        once(i)
                    means.append((time.perf_counter() - start) / n * 1e6)
                row[f"{side}_us"] = statistics.median(means)
            row["speedup"] = row["flask_us"] / row["lean_us"]
            out[name] = row
            log(f"  {name}: lean {row['lean_us']:.1f} us, Flask {row['flask_us']:.1f} us per request")
    finally:
        app.extensions["authz"].close()
    return out


# -- propagation ----------------------------------------------------------------------------------------
def propagation() -> dict[str, Any]:
    """Both carriers, each over 100 changes."""
    return {carrier: propagation_over(carrier) for carrier in ("redis", "postgres")}


def propagation_over(carrier: str, changes: int = 100) -> dict[str, Any]:
    from sqlalchemy import create_engine, text

    from authz_service.catalog import load_catalog
    from authz_service.cli import init_db
    from authz_service.config import load_settings
    from authz_service.db import Database
    from authz_service.generate import generate, plan

    schema = "bench_propagation"
    admin_engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = PG_URL + ("&" if "?" in PG_URL else "?") + f"options=-csearch_path%3D{schema}"
    settings = load_settings({"database_url": url})
    init_db(settings)
    database = Database(url)
    generate(database, load_catalog(settings.policies_dir), plan(None, 50, 1))
    database.dispose()
    service = service_for(url)
    cpas, user, _ = sample_requests(service, 1)[0]
    profile = next(p for p in service.read(lambda store: store.profiles(cpas)) if not p.builtin)
    function = sorted(service.read(lambda store: store.profile_functions(cpas, profile.id)))[0]
    service.close()
    key = api_key(url)
    env = {"AUTHZ_NOTIFY": carrier, "AUTHZ_POLL_INTERVAL": "5"}
    if carrier == "redis":
        env["AUTHZ_REDIS_URL"] = REDIS_URL
    first, second = Server(url, workers=1, env=env), Server(url, workers=1, env=env)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def call(base: str, method: str, path: str, body: Any) -> Any:
        req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=5) as answer:
            return json.loads(answer.read())

    delays = []
    try:
        for i in range(changes):
            want = i % 2 == 0
            call(first.base, "PUT", f"/cpas/{cpas}/users/{user}/profiles", {"profiles": [profile.id] if want else []})
            start = time.perf_counter()
            while True:
                got = call(second.base, "POST", "/enforce", {"cpas": cpas, "user": user, "function": function})
                if got["allowed"] is want:
                    break
                if time.perf_counter() - start > 10:
                    raise RuntimeError("the second server never caught up")
            delays.append((time.perf_counter() - start) * 1000)
    finally:
        first.stop()
        second.stop()
        with admin_engine.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin_engine.dispose()
    return {"changes": changes, "p50_ms": pct(delays, 0.5), "p99_ms": pct(delays, 0.99), "carrier": carrier}


# -- admin writes ---------------------------------------------------------------------------------------
def writes(runs: int = 50) -> dict[str, Any]:
    from authz_service.admin import Admin

    url = dataset(580)
    work = RESULTS / "data-580-writes.sqlite3"
    shutil.copy(url.removeprefix("sqlite:///"), work)
    service = service_for(f"sqlite:///{work}")
    rng = random.Random(3)
    snapshot = service.engine.snapshot
    big = max(snapshot.policies.values(), key=lambda p: len(p._users))
    cpas = big.cpas
    functions = service.catalog.selectable
    save, assign = [], []
    try:
        profile = service.change("bench", Admin.create_profile, cpas, description_fr="Bench", description_nl=None,
                                 functions=[]).value
        version = profile.version
        users = [u for u, active in big._users.items() if active]
        profiles = [p.id for p in service.read(lambda store: store.profiles(cpas))]
        for i in range(runs):
            chosen = rng.sample(functions, k=min(150, len(functions)))
            start = time.perf_counter()
            service.change("bench", Admin.update_profile, cpas, profile.id, version=version,
                           description_fr=f"Bench {i}", description_nl=None, functions=chosen, includes=None)
            save.append((time.perf_counter() - start) * 1000)
            version += 1
            user = rng.choice(users)
            start = time.perf_counter()
            service.change("bench", Admin.set_user_profiles, cpas, user, rng.sample(profiles, k=2))
            assign.append((time.perf_counter() - start) * 1000)
    finally:
        service.close()
        work.unlink()
    return {"cpas_users": len(big._users), "save_150_ms_p50": statistics.median(save),
            "save_150_ms_max": max(save), "assign_ms_p50": statistics.median(assign),
            "assign_ms_max": max(assign)}


# -- report ---------------------------------------------------------------------------------------------
def table(results: dict[str, Any]) -> str:
    rows = [f"machine: {results['machine']}", ""]
    for k, row in results.get("inprocess", {}).items():
        rows.append(
            f"in-process {k:>3} CPAS ({row['policy_lines']} lines): ours p50 {row['ours']['p50_us']:.2f} us "
            f"p99 {row['ours']['p99_us']:.2f} us | dict p50 {row['dict']['p50_us']:.2f} p99 {row['dict']['p99_us']:.2f}"
            f" us | p99/dict {row['p99_vs_dict']:.1f}x | FastEnforcer p50 {row['fast_enforcer']['p50_us']:.0f} us"
            f" | Enforcer p50 {row['enforcer']['p50_us']:.0f} us (x{row['speedup_vs_enforcer_p50']:.0f})"
        )
        rows.append(
            f"  with the freshness check: p50 {row['checked']['p50_us']:.2f} us p99 {row['checked']['p99_us']:.2f} us"
            f" | p99/dict {row['checked_p99_vs_dict']:.1f}x"
        )
    if "coldstart" in results:
        c = results["coldstart"]
        rows.append(f"cold start national: {c['process_seconds']:.1f} s, {c['process_rss_mb']:.0f} MB peak; "
                    f"gunicorn worker ready {c['gunicorn_ready_seconds']:.1f} s, {c['gunicorn_worker_rss_mb']:.0f} MB")
    h = results.get("http", {})
    if "noop" in h:
        for name in ("noop", "enforce", "batch100", "functions_200", "functions_304", "evaluation", "cerbos"):
            if "rps" not in h.get(name, {}):
                rows.append(f"http {name}: {h.get(name)}")
                continue
            r = h[name]
            line = (f"http {name:<14} {r['rps']:>8.0f} req/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms"
                    f"  non-2xx {r['non2xx']:.0f}")
            floor = h.get(f"floor_{name}")
            if floor is not None:
                line += (f"  | floor {floor['rps']:>7.0f} req/s  p50 {floor['p50_ms']:.2f} ms"
                         f"  p99 {floor['p99_ms']:.2f} ms  | {h[f'{name}_vs_floor']:.2f}x the floor"
                         f" | worker CPU {r['cpu_us']:.0f} us/request, floor {floor['cpu_us']:.0f}: "
                         f"{h[f'{name}_cpu_vs_floor']:.2f}x")
            rows.append(line)
        rows.append(f"http enforce/noop {h['enforce_vs_noop']:.2f}x; "
                    f"enforce/cerbos {h.get('enforce_vs_cerbos', 0):.2f}x; "
                    f"batch decisions/s {h['batch_decisions_per_s']:.0f}")
        if "enforce_vs_floor" in h:
            rows.append(f"http vs floor: enforce {h['enforce_vs_floor']:.2f}x (target 0.90x); functions 304 "
                        f"{h['functions_304_vs_floor']:.2f}x (target 0.85x); batch100 {h['batch100_vs_floor']:.2f}x "
                        f"(target 0.35x); functions 200 {h['functions_200_vs_floor']:.2f}x; AuthZEN evaluation "
                        f"{h['evaluation_vs_floor']:.2f}x")
    elif h:
        rows.append(f"http: {h.get('skipped')}")
    for mode, m in results.get("memory", {}).items():
        for n in ("1", "2"):
            run = m[n]
            workers = ", ".join(f"PSS {w['pss']:.0f} / USS {w['uss']:.0f} / RSS {w['rss']:.0f}" for w in run["workers"])
            rows.append(f"memory {mode:<10} {n} worker(s): total PSS {run['total_pss']:.0f} MB; master PSS "
                        f"{run['master']['pss']:.0f} / USS {run['master']['uss']:.0f}; workers {workers} MB; ready "
                        f"{run['ready_s']:.1f} s (all workers {run['all_workers_ready_s']:.1f} s)")
        rows.append(f"memory {mode:<10} the second worker adds {m['second_worker_adds_pss']:.0f} MB PSS (target < 60)")
    for name, row in results.get("lean", {}).items():
        rows.append(f"in-process {name:<14} lean {row['lean_us']:8.1f} us  Flask {row['flask_us']:8.1f} us per "
                    f"request ({row['speedup']:.1f}x)")
    for p in results.get("propagation", {}).values():
        rows.append(f"propagation ({p['carrier']}, {p['changes']} changes): p50 {p['p50_ms']:.0f} ms, "
                    f"p99 {p['p99_ms']:.0f} ms")
    if "writes" in results:
        w = results["writes"]
        rows.append(f"writes national (CPAS of {w['cpas_users']} users): save 150 functions p50 "
                    f"{w['save_150_ms_p50']:.1f} ms (max {w['save_150_ms_max']:.0f}); assign p50 "
                    f"{w['assign_ms_p50']:.1f} ms (max {w['assign_ms_max']:.0f})")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*",
                        default=["inprocess", "coldstart", "http", "lean", "memory", "propagation", "writes"])
    parser.add_argument("--scales", default="1,50,580")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    sections = {
        "inprocess": lambda: inprocess([int(s) for s in args.scales.split(",")]),
        "coldstart": coldstart,
        "http": http,
        "lean": lean,
        "memory": memory,
        "propagation": propagation,
        "writes": writes,
    }
    for name in args.only:
        log(f"== {name}")
        start = time.perf_counter()
        results[name] = sections[name]()
        log(f"   ({time.perf_counter() - start:.0f} s)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()

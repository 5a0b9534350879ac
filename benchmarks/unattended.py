"""unattended: a scheduled run's overhead against the same cycles from `flywheel run` (issue 14).

One finished tiny workspace (1 digits cycle, 80 training steps, made with `flywheel run`) is
copied twice. On copy A, `flywheel serve --interval 10 --add-cycles 1` runs against a real
`prefect server start` on 127.0.0.1 until K scheduled runs completed, each adding one cycle. On
copy B, K successive `flywheel run --cycles 2, 3, ...` (PREFECT_API_URL at the same server) each
add one cycle too. One command per cycle because that is what a scheduled tick is: a whole flow
run (lock, params, the seed stages checked and skipped, the cycle, status), so both sides pay a
run's fixed cost once per cycle; one `flywheel run --cycles K+1` would pay it once for K cycles
and compare unlike things. The two sides run one after the other (serve first), never at once:
the machines here have two cores.

Per cycle, from the Prefect API: each side's flow run wall (start_time -> end_time), their
difference and ratio; for the scheduled run its latency (scheduled time -> start), split into
queueing behind the previous run (runs fall due every S seconds, a cycle takes longer), the
pickup (-> Pending: the previous run's process exit and the runner's 10 s poll) and the flow
subprocess's start (-> Running); for `flywheel run`, the process wall and what it spends
outside the flow (imports, preflight, exit). Once: the serve process's start-up up to its
deployment in the API, and the imports alone. Asserts that both copies end with the same
cycles, champion, snapshot and candidate model ids (the runs are seeded and a model id is the
md5 of its file, so the comparison is of equal work).

    python benchmarks/unattended.py [--runs K] [--interval S] [--keep]

Prints tables; writes benchmarks/results/unattended.json with `uptime` before and after
(timings depend on what else the machine does).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    BIN,
    make_workspace,
    rounded,
    scratch_dir,
    setup_environment,
    timed_run,
    write_result,
)
from benchmarks.tables import show  # noqa: E402
from tests.servers import (  # noqa: E402
    ServerError,
    background,
    log_tail,
    prefect_env,
    prefect_server,
    wait_until,
)

RUNS = 3
INTERVAL = 10.0
TINY = ["digits.train.steps=80"]
BASE_CYCLES = 1
SERVE_TIMEOUT = 600.0
FLOW = "dataflywheel"
BROKEN = ("FAILED", "CRASHED", "CANCELLED")


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def api(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """GET `path`, or POST `body` to it; the decoded answer (None when empty)."""
    if body is None:
        response = httpx.get(f"{url}{path}", timeout=10)
    else:
        response = httpx.post(f"{url}{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json() if response.content else None


def flow_runs(url: str, deployment_id: str | None) -> list[dict[str, Any]]:
    """The flow runs of a deployment, or those started without one (`flywheel run`)."""
    if deployment_id is None:
        where: dict[str, Any] = {"flow_runs": {"deployment_id": {"is_null_": True}}}
    else:
        where = {"deployments": {"id": {"any_": [deployment_id]}}}
    return list(api(url, "/flow_runs/filter", where))


@dataclass(frozen=True)
class Span:
    """One flow run as the Prefect API recorded it (epoch seconds)."""

    name: str
    scheduled: float
    pending: float | None
    start: float
    end: float

    @property
    def wall(self) -> float:
        return self.end - self.start


def span(url: str, run: dict[str, Any]) -> Span:
    states = api(url, f"/flow_run_states/?flow_run_id={run['id']}")
    pending = [epoch(s["timestamp"]) for s in states if s["type"] == "PENDING"]
    return Span(
        run["name"],
        epoch(run["expected_start_time"]),
        min(pending) if pending else None,
        epoch(run["start_time"]),
        epoch(run["end_time"]),
    )


def status_rows(workspace: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(BIN / "flywheel"), "status", "--json", "--params", str(workspace / "params.yaml")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return list(json.loads(done.stdout))


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def base_workspace(url: str, scratch: Path) -> dict[str, Any]:
    """The finished tiny workspace both sides start from, and two copies of it."""
    base = make_workspace(scratch / "base" / "repo", BASE_CYCLES, TINY)
    env = prefect_env(scratch / "base-home", url)
    done = timed_run([str(BIN / "flywheel"), "run"], base, scratch / "base.log", env)
    if done.returncode != 0:
        raise RuntimeError(f"the base run failed ({done.returncode}):\n{done.tail()}")
    for side in ("serve", "run"):
        shutil.copytree(base, scratch / side / "repo", symlinks=True)
    return {"workspace": str(base), "base run (flywheel run, 1 cycle)": round(done.seconds, 2)}


def imports_alone(scratch: Path) -> float:
    """What importing the flow costs a fresh process (what serve imports before registering)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import flows.flywheel"], cwd=scratch, check=True)
    return time.perf_counter() - started


def watcher(url: str, deployment_id: str, runs: int, log: Path) -> Callable[[], bool]:
    """True once `runs` scheduled runs completed. When the last of them is running, the
    deployment is paused (its pending scheduled runs deleted), so no further tick starts a
    cycle that the serve process's stop would interrupt."""
    paused = [False]

    def done() -> bool:
        found = flow_runs(url, deployment_id)
        broken = [r for r in found if r["state_type"] in BROKEN]
        if broken:
            raise ServerError(f"scheduled run {broken[0]['name']}: {broken[0]['state_type']}")
        begun = [r for r in found if r["state_type"] in ("RUNNING", "COMPLETED")]
        if len(begun) >= runs and not paused[0]:
            api(url, f"/deployments/{deployment_id}/pause_deployment", {})
            paused[0] = True
        return sum(r["state_type"] == "COMPLETED" for r in found) >= runs

    return done


def flow_subprocess(pid: int) -> bool:
    """Whether serve's process `pid` still has a flow run's subprocess (multiprocessing's
    spawn; its resource tracker, also a child, does not count)."""
    found = subprocess.run(["pgrep", "-P", str(pid), "-f", "spawn_main"], capture_output=True)
    return found.returncode == 0


def measure_serve(url: str, workspace: Path, runs: int, interval: float, scratch: Path) -> Any:
    """`flywheel serve` until `runs` scheduled runs completed: its start-up and their spans."""
    command = [
        str(BIN / "flywheel"), "serve", "--interval", f"{interval:g}", "--add-cycles", "1",
    ]  # fmt: skip
    name, log = f"flywheel-{workspace.name}", scratch / "serve.log"
    env = prefect_env(scratch / "serve-home", url)
    found: dict[str, Any] = {}

    def registered() -> bool:
        answer = httpx.get(f"{url}/deployments/name/{FLOW}/{name}", timeout=10)
        if answer.status_code == 200:
            found.update(answer.json())
        return bool(found)

    started = time.time()
    with background(command, log, env, cwd=workspace) as proc:
        wait_until(registered, "the serve deployment", 300, proc, log, every=0.2)
        done = watcher(url, found["id"], runs, log)
        try:
            wait_until(done, f"{runs} scheduled runs", SERVE_TIMEOUT, proc, log, every=1)
            # stopped only once the last run's process has exited: killed while it exits, the
            # runner would report a completed run as crashed
            gone = lambda: not flow_subprocess(proc.pid)  # noqa: E731
            wait_until(gone, "the last flow subprocess to exit", 120, proc, log, every=0.2)
            exited = time.time()
        except ServerError as error:
            raise ServerError(f"{error}\n{log_tail(log)}") from None
    every = flow_runs(url, found["id"])
    completed = sorted(
        (span(url, r) for r in every if r["state_type"] == "COMPLETED"), key=lambda s: s.start
    )
    others = sorted(r["state_type"] for r in every if r["state_type"] != "COMPLETED")
    if len(completed) < runs:
        states = [(r["name"], r["state_name"]) for r in every if r["state_type"] != "SCHEDULED"]
        raise RuntimeError(f"{len(completed)} of {runs} runs completed: {states}\n{log_tail(log)}")
    exit_after_end = exited - completed[runs - 1].end
    return started, epoch(found["created"]), completed[:runs], others, exit_after_end


def measure_runs(url: str, workspace: Path, runs: int, scratch: Path) -> list[dict[str, Any]]:
    """`runs` successive `flywheel run --cycles N`, each adding one cycle, timed as a user
    waits for it (process start to exit) and as the API recorded its flow run."""
    env = prefect_env(scratch / "run-home", url)
    timed = []
    for i in range(runs):
        seen = {r["id"] for r in flow_runs(url, None)}
        started = time.time()
        argv = [str(BIN / "flywheel"), "run", "--cycles", str(BASE_CYCLES + i + 1)]
        done = timed_run(argv, workspace, scratch / f"run-{i + 1}.log", env)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[1:])} failed ({done.returncode}):\n{done.tail()}")
        new = [r for r in flow_runs(url, None) if r["id"] not in seen]
        if len(new) != 1:
            raise RuntimeError(f"expected one new flow run, the API has {len(new)}")
        timed.append({"span": span(url, new[0]), "started": started, "process": done.seconds})
    return timed


def per_cycle(scheduled: list[Span], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The two sides cycle by cycle. A tick is `ready` at its scheduled time, or at the previous
    run's end when it fell due while that one still ran (queued: the interval is shorter than a
    cycle). The runner may take a run up to 10 s before it is due (prefetch); its subprocess
    then waits for the scheduled time, so pickup counts from `ready` and never below zero."""
    rows, previous_end = [], 0.0
    for i, (tick, run) in enumerate(zip(scheduled, runs, strict=True)):
        mine: Span = run["span"]
        ready = max(tick.scheduled, previous_end)
        taken = max(tick.pending if tick.pending is not None else tick.start, ready)
        previous_end = tick.end
        rows.append({
            "cycle": f"c{BASE_CYCLES + i + 1}",
            "scheduled_wall_s": tick.wall,
            "run_wall_s": mine.wall,
            "diff_s": tick.wall - mine.wall,
            "ratio": tick.wall / mine.wall,
            "scheduling_latency_s": tick.start - tick.scheduled,
            "queued_s": ready - tick.scheduled,
            "pickup_s": taken - ready,
            "subprocess_start_s": tick.start - taken,
            "dispatch_s": tick.start - ready,
            "run_outside_flow_s": run["process"] - mine.wall,
            "scheduled_tick_s": tick.end - ready,
            "run_process_s": run["process"],
            "tick_minus_process_s": tick.end - ready - run["process"],
            "run_process_to_flow_start_s": mine.start - run["started"],
        })  # fmt: skip
    return [{k: rounded(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in rows]


def outcome(workspace: Path) -> list[tuple[str, Any, Any, Any]]:
    """Per cycle: its id, champion model id, snapshot md5 and candidate model id (model ids
    are `<cycle>:<md5 of the file>`, so equal ids are byte-identical models)."""
    found = []
    for row in status_rows(workspace):
        train = workspace / "cycles" / row["cycle"] / "candidate" / "train.json"
        candidate = json.loads(train.read_text()).get("model_id") if train.is_file() else None
        found.append((row["cycle"], row["champion"], row["snapshot"], candidate))
    return found


def equal_work(serve_side: Path, run_side: Path) -> dict[str, Any]:
    """Both copies ran the same cycles to the same models; the seeded runs did equal work."""
    serve_out, run_out = outcome(serve_side), outcome(run_side)
    if serve_out != run_out:
        raise RuntimeError(f"unequal work:\nserve {serve_out}\nrun   {run_out}")
    rows = {"serve": status_rows(serve_side), "run": status_rows(run_side)}
    if not all(r["complete"] for r in rows["serve"] + rows["run"]):
        raise RuntimeError(f"a cycle is incomplete: {rows}")
    return {
        "cycles": [c for c, _, _, _ in serve_out],
        "champions": [m for _, m, _, _ in serve_out],
        "snapshots": [d for _, _, d, _ in serve_out],
        "candidates": [m for _, _, _, m in serve_out],
        "promoted": [r["promoted"] for r in rows["serve"]],
        "metrics_equal": [r["metric"] for r in rows["serve"]] == [r["metric"] for r in rows["run"]],
    }


def mean(rows: list[dict[str, Any]], key: str) -> float:
    return round(statistics.fmean(r[key] for r in rows), 3)


def summary(rows: list[dict[str, Any]], startup: dict[str, Any]) -> dict[str, Any]:
    means = {k: mean(rows, k) for k in rows[0] if k != "cycle"}
    sched, run = sum(r["scheduled_wall_s"] for r in rows), sum(r["run_wall_s"] for r in rows)
    diffs = [r["diff_s"] for r in rows]
    return {
        "mean": means,
        "flow_wall_total_s": {"scheduled": round(sched, 2), "flywheel_run": round(run, 2)},
        "headline": {
            "flow_wall_diff_s_mean": means["diff_s"],
            "flow_wall_diff_s_range": [min(diffs), max(diffs)],
            "flow_wall_ratio_pooled": round(sched / run, 3),
            "scheduling_latency_s_mean": means["scheduling_latency_s"],
            "queued_s_mean": means["queued_s"],
            "dispatch_s_mean": means["dispatch_s"],
            "run_outside_flow_s_mean": means["run_outside_flow_s"],
            "tick_minus_process_s_mean": means["tick_minus_process_s"],
            "serve_start_to_deployment_s": startup["serve_start_to_deployment_s"],
        },
    }


def f2(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(result: dict[str, Any]) -> None:
    rows, means = result["per_cycle"], result["summary"]["mean"]
    walls = ["scheduled_wall_s", "run_wall_s", "diff_s", "ratio"]
    show(
        "unattended: flow run wall per cycle (Prefect API start_time -> end_time), seconds",
        ["cycle", "scheduled run", "flywheel run", "difference", "ratio"],
        [[r["cycle"], *(f2(r[k]) for k in walls)] for r in rows]
        + [["mean", *(f2(means[k]) for k in walls)]],
    )
    around = [
        "scheduling_latency_s", "queued_s", "pickup_s", "subprocess_start_s", "dispatch_s",
        "run_outside_flow_s", "scheduled_tick_s", "run_process_s", "tick_minus_process_s",
    ]  # fmt: skip
    show(
        "unattended: around the flow, per cycle, seconds. serve: latency = queued (due while the "
        "previous run ran) + pickup (-> Pending) + subprocess start (-> Running); dispatch = "
        "pickup + start; tick = ready -> end. run: outside flow = imports, preflight, exit",
        ["cycle", "sched latency", "queued", "pickup", "subproc start", "dispatch",
         "run outside flow", "serve tick", "run process", "tick - process"],
        [[r["cycle"], *(f2(r[k]) for k in around)] for r in rows]
        + [["mean", *(f2(means[k]) for k in around)]],
    )  # fmt: skip
    show(
        "unattended: once",
        ["what", "seconds"],
        [[k, f2(v)] for k, v in result["startup"].items()]
        + [[k, f2(v)] for k, v in result["setup"].items() if isinstance(v, float)],
    )
    meta = result["meta"]
    show(
        f"unattended: machine ({meta['cpus']} cpus); equal work: cycles "
        f"{', '.join(result['equal_work']['cycles'])}, same champion, snapshot and candidate "
        f"model ids; metrics equal: {result['equal_work']['metrics_equal']}",
        ["when", "uptime"],
        [["before", meta["uptime_before"]], ["after", meta["uptime_after"]]],
    )


def measure(runs: int, interval: float, scratch: Path) -> dict[str, Any]:
    clock = time.perf_counter()
    with prefect_server(scratch / "server") as url:
        setup: dict[str, Any] = {"prefect server start": round(time.perf_counter() - clock, 2)}
        setup.update(base_workspace(url, scratch))
        imports = imports_alone(scratch)  # just before serve starts: the same machine state
        started, created, scheduled, others, exit_after_end = measure_serve(
            url, scratch / "serve" / "repo", runs, interval, scratch
        )
        timed = measure_runs(url, scratch / "run" / "repo", runs, scratch)
    work = equal_work(scratch / "serve" / "repo", scratch / "run" / "repo")
    startup = {
        "serve_start_to_deployment_s": round(created - started, 2),
        "imports_alone_s (python -c 'import flows.flywheel')": round(imports, 2),
        "preflight_and_registration_s (the rest)": round(created - started - imports, 2),
        "serve_start_to_first_scheduled_run_start_s": round(scheduled[0].start - started, 2),
        "last flow subprocess: flow end -> exit (<= 0.2 s late)": round(exit_after_end, 2),
    }
    rows = per_cycle(scheduled, timed)
    return {
        "setup": setup,
        "startup": startup,
        "per_cycle": rows,
        "summary": summary(rows, startup),
        "scheduled_runs": [asdict(s) for s in scheduled],
        "other_scheduled_runs_states": others,
        "equal_work": work,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="scheduled runs K (default 3)")
    parser.add_argument("--interval", type=float, default=INTERVAL, help="serve --interval")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    setup_environment()
    before, load_before, clock = uptime(), os.getloadavg(), time.perf_counter()
    scratch = scratch_dir("unattended")
    try:
        result = measure(args.runs, args.interval, scratch)
    except BaseException:
        print(f"failed; its logs stay in {scratch}", file=sys.stderr)
        raise
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    import prefect

    result["meta"] = {
        "benchmark": "unattended",
        "command": f"flywheel serve --interval {args.interval:g} --add-cycles 1",
        "compared_with": "successive `flywheel run --cycles N`, one cycle each",
        "runs": args.runs,
        "base": {"cycles": BASE_CYCLES, "overrides": TINY},
        "prefect": prefect.__version__,
        "runner_poll_frequency_s": os.environ.get("PREFECT_RUNNER_POLL_FREQUENCY", "10 (default)"),
        "scratch": str(scratch) if args.keep else None,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "benchmark_seconds": round(time.perf_counter() - clock, 1),
        "uptime_before": before,
        "uptime_after": uptime(),
        "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
        "loadavg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    result["headline"] = result["summary"]["headline"]
    report(result)
    print(json.dumps(result["headline"], indent=2))
    print(f"-> {write_result('unattended', result)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

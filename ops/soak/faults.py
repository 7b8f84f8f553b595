"""The fault schedule: each fault is an action, a recovery check and a deadline, run one at a
time (the next starts `gap_s` after the previous recovered), so a recovery time belongs to one
fault and a request's failure can be laid at one fault's door.

A fault's *window* runs from its action to its recovery (or its deadline). A request whose
lifetime overlaps a window is "in" it; only the kills may fail requests, and only those on the
killed process (in flight at the kill, or routed to it in the moment before Serve noticed).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psutil

from ops.soak.load import LoadConfig, probe
from ops.soak.outcomes import Ledger
from ops.soak.stack import Stack

KILLS = ("llm_replica_kill", "ingress_kill")  # the faults allowed to fail requests
KILL_GRACE_S = 5.0  # requests started this long after a kill may still have been sent to it
DEADLINES_S = {  # recovery deadlines (2 shared CPU cores: an engine starts in ~1 min), in the
    # order they run: Redis first, so its keys have refilled (one record TTL) before the last
    # half of the run, where slopes are fitted; then the kills, whose replacements settle there
    "redis_restart_keep": 30.0,
    "redis_restart_wipe": 30.0,
    "llm_replica_kill": 240.0,
    "ingress_kill": 120.0,
    "exporter_kill": 15.0,
    "controller_pause": 30.0,
}
ORDER = tuple(DEADLINES_S)
CONTROLLER_PAUSE_S = 10.0  # the controller (stats broadcasts, health checks) stopped this long


@dataclass
class Fault:
    name: str
    start: float = 0.0  # time.monotonic()
    end: float | None = None  # recovered (or gave up)
    recovered_s: float | None = None
    deadline_s: float = 0.0
    error: str | None = None
    facts: dict = field(default_factory=dict)

    def covers(self, t0: float, t1: float) -> bool:
        end = self.end if self.end is not None else time.monotonic()
        return self.start <= t1 and t0 <= end


@dataclass
class Env:
    stack: Stack
    ledger: Ledger
    load: LoadConfig


async def poll(
    check: Callable[[], bool], deadline_s: float, start: float, every_s: float = 0.5
) -> float:
    """Seconds from `start` until `check()` held (run off the event loop); TimeoutError after."""
    while time.monotonic() - start < deadline_s:
        try:
            if await asyncio.to_thread(check):
                return time.monotonic() - start
        except Exception:  # noqa: BLE001, S110 - not recovered yet
            pass
        await asyncio.sleep(every_s)
    raise TimeoutError(f"not recovered within {deadline_s:g} s")


def fresh_stats(stack: Stack) -> dict[str, dict]:
    """replica name -> its last published stats, for replicas that published in the last 2 s."""
    out = {}
    for path in stack.load_dir.glob("*.replica.json"):
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if time.time() - float(raw.get("ts", 0)) < 2:
            out[raw["replica"]] = raw
    return out


async def served_by(env: Env, fault: Fault, attr: str, new: Callable[[str], bool]) -> float:
    """Seconds from the fault until a request (the load's or a probe) got 200 from a process
    `new` accepts: the replacement is not just up but serving."""

    async def check() -> bool:
        for r in list(env.ledger.records.values()):
            name = getattr(r, attr)
            if r.cls == "ok" and r.start > fault.start and name and new(name):
                return True
        await probe(env.stack.url, env.ledger, env.load)
        return False

    while time.monotonic() - fault.start < fault.deadline_s:
        if await check():
            return time.monotonic() - fault.start
        await asyncio.sleep(1.0)
    raise TimeoutError(f"no replacement served within {fault.deadline_s:g} s")


async def busiest_replica(env: Env, wait_s: float = 20.0) -> tuple[str, dict]:
    """The replica with the most calls in flight, waiting up to `wait_s` for one with 2 or
    more: a kill that hits an idle replica would test nothing about its requests."""
    t0 = time.monotonic()
    while True:
        stats = fresh_stats(env.stack)
        if stats:
            victim, raw = max(stats.items(), key=lambda kv: kv[1].get("inflight", 0))
            if raw.get("inflight", 0) >= 2 or time.monotonic() - t0 > wait_s:
                return victim, raw
        if time.monotonic() - t0 > 3 * wait_s:
            raise TimeoutError("no replica published fresh stats")
        await asyncio.sleep(0.2)


async def llm_replica_kill(env: Env, fault: Fault) -> float:
    stats = fresh_stats(env.stack)
    victim, raw = await busiest_replica(env)
    before = set(stats)
    engines = psutil.Process(raw["pid"]).children(recursive=True)
    fault.facts.update(victim=victim, pid=raw["pid"], engine_pids=[p.pid for p in engines])
    fault.facts["inflight_at_kill"] = raw.get("inflight", 0)
    fault.start = time.monotonic()
    os.kill(raw["pid"], signal.SIGKILL)
    healthy = await poll(
        lambda: len(set(fresh_stats(env.stack)) - before) >= 1, fault.deadline_s, fault.start
    )
    fault.facts["healthy_s"] = round(healthy, 1)
    served = await served_by(env, fault, "replica", lambda n: n not in before)
    fault.facts["engines_exited"] = not any(p.is_running() for p in engines)
    return served


async def ingress_kill(env: Env, fault: Fault) -> float:
    pids = env.stack.pids("ingress")
    seen = {r.ingress for r in env.ledger.records.values() if r.ingress}
    fault.facts.update(pid=pids[0], ingresses_before=len(pids))
    fault.start = time.monotonic()
    os.kill(pids[0], signal.SIGKILL)
    back = lambda: len(set(env.stack.pids("ingress")) - {pids[0]}) >= len(pids)  # noqa: E731
    fault.facts["process_back_s"] = round(await poll(back, fault.deadline_s, fault.start), 1)
    served = await served_by(env, fault, "ingress", lambda n: n not in seen)
    await asyncio.sleep(5.0)  # then the killed one is the name no answer carries any more
    after = {r.ingress for r in env.ledger.records.values() if r.start > fault.start + served}
    fault.facts["victim"] = sorted(seen - after)
    return served


async def redis_restart(env: Env, fault: Fault, keep: bool) -> float:
    redis = env.stack.redis
    assert redis is not None
    keys_before = int(redis.client().dbsize())
    fault.start = time.monotonic()
    await asyncio.to_thread(redis.restart, keep)
    keys_at_start = int(redis.client().dbsize())
    fault.facts.update(keys_before=keys_before, keys_after_restart=keys_at_start)
    # recovered: the app writes again (keys appear beyond what the restart loaded)
    return await poll(
        lambda: int(redis.client().dbsize()) > keys_at_start, fault.deadline_s, fault.start
    )


async def exporter_kill(env: Env, fault: Fault) -> float:
    exporter = env.stack.exporter
    assert exporter is not None
    fault.start = time.monotonic()
    await asyncio.to_thread(exporter.stop)  # SIGKILL
    await asyncio.sleep(1.0)  # the supervisor's restart delay
    exporter.start()
    return await poll(exporter.serving, fault.deadline_s, fault.start)


async def controller_pause(env: Env, fault: Fault) -> float:
    """SIGSTOP Serve's controller: no stats broadcasts, health checks or replica updates; the
    routers go on with what they last heard. Recovered once it answers `serve.status()`."""
    from ray import serve

    (pid,) = env.stack.pids("controller")
    fault.start = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(CONTROLLER_PAUSE_S)
    finally:
        os.kill(pid, signal.SIGCONT)
    running = lambda: serve.status().applications["trail"].status == "RUNNING"  # noqa: E731
    return await poll(running, fault.deadline_s, fault.start)


ACTIONS: dict[str, Callable[[Env, Fault], Awaitable[float]]] = {
    "controller_pause": controller_pause,
    "exporter_kill": exporter_kill,
    "redis_restart_keep": lambda env, f: redis_restart(env, f, True),
    "redis_restart_wipe": lambda env, f: redis_restart(env, f, False),
    "ingress_kill": ingress_kill,
    "llm_replica_kill": llm_replica_kill,
}


async def run_one(env: Env, name: str) -> Fault:
    fault = Fault(name, start=time.monotonic(), deadline_s=DEADLINES_S[name])
    try:
        fault.recovered_s = round(await ACTIONS[name](env, fault), 2)
    except Exception as err:  # noqa: BLE001 - a fault that did not recover is a finding
        fault.error = f"{type(err).__name__}: {err}"
    fault.end = time.monotonic()
    return fault


async def schedule(
    env: Env, names: list[str], first_at_s: float, gap_s: float, until_s: float, done: list[Fault]
) -> None:
    """Run `names` in order: the first at `first_at_s` into the load, each next `gap_s` after
    the previous recovered; a fault that would start after `until_s` is skipped (reported)."""
    t0 = time.monotonic()
    await asyncio.sleep(first_at_s)
    for name in names:
        if time.monotonic() - t0 > until_s:
            done.append(Fault(name, end=0.0, error="skipped: no time left in the run"))
            continue
        fault = await run_one(env, name)
        done.append(fault)
        print(f"soak: {name} recovered in {fault.recovered_s} s {fault.error or ''}", flush=True)
        await asyncio.sleep(gap_s)

"""GPU slots: which GPU indices a job may use, reserved atomically across worker processes.

``CUDA_VISIBLE_DEVICES`` alone is not isolation (a job can unset it and open every
``/dev/nvidiaN``). A GPU worker therefore reserves indices in Redis, and the sandbox exposes
only those devices' nodes (plus the driver's control nodes); the other GPUs do not exist in
the job's /dev. Inside, the job's CUDA numbering starts at 0 over the devices it can open.

Redis layout per host (``{prefix}:{host}`` is a hash tag so both keys live in one slot):

    {prefix}:{host}:owners   HASH   device index -> job id
    {prefix}:{host}:leases   ZSET   job id -> lease expiry (ms, Redis server clock)

Every operation is one Lua script, so it is atomic with respect to every other worker: two
workers can never both see a device as free. A reservation is a lease: ``refresh()`` (a
heartbeat, ``lease()`` runs one) pushes its expiry; a worker that died stops refreshing and
its devices come free after ``ttl`` seconds, reclaimed by the next ``reserve``. Expiry uses
Redis' own clock (``TIME``), so worker clocks do not matter.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools")
_NODE = re.compile(r"^nvidia(\d+)$")


class NoGpuAvailable(RuntimeError):
    """Fewer free devices than requested: not the job's fault. The supervisor puts the job
    back in its queue to wait (see ``workers.tasks``), it does not fail it."""


def _is_device_node(path: Path) -> bool:
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


def discover_gpus(dev_root: Path | str = "/dev") -> list[int]:
    """Indices of the ``nvidiaN`` character devices under ``dev_root`` (tests point it at a
    directory of fake nodes)."""
    out = []
    with contextlib.suppress(OSError):
        for name in os.listdir(dev_root):
            m = _NODE.match(name)
            if m and _is_device_node(Path(dev_root) / name):
                out.append(int(m.group(1)))
    return sorted(out)


def gpu_node(dev_root: Path | str, index: int) -> Path | None:
    p = Path(dev_root) / f"nvidia{index}"
    return p if _is_device_node(p) else None


def control_nodes(dev_root: Path | str) -> list[Path]:
    """The driver's shared nodes a CUDA process needs besides its GPUs' own, when present."""
    return [Path(dev_root) / n for n in CONTROL_NODES if _is_device_node(Path(dev_root) / n)]


_PURGE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function purge(owners, leases, now)
  local stale = redis.call('ZRANGEBYSCORE', leases, '-inf', now)
  if #stale == 0 then return end
  local dead = {}
  for _, j in ipairs(stale) do dead[j] = true end
  local all = redis.call('HGETALL', owners)
  for i = 1, #all, 2 do
    if dead[all[i + 1]] then redis.call('HDEL', owners, all[i]) end
  end
  redis.call('ZREM', leases, unpack(stale))
end
local function held_by(owners, job)
  local held = {}
  local all = redis.call('HGETALL', owners)
  for i = 1, #all, 2 do
    if all[i + 1] == job then table.insert(held, tonumber(all[i])) end
  end
  table.sort(held)
  return held
end
"""

# KEYS: owners, leases. ARGV: job, n, ttl_ms, device...
# Returns {1, idx...} reserved; {2, idx...} this job already held these; {0, free_count}.
_RESERVE = (
    _PURGE
    + """
local job, n, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
purge(KEYS[1], KEYS[2], now)
local held = held_by(KEYS[1], job)
if #held > 0 then
  redis.call('ZADD', KEYS[2], now + ttl, job)
  table.insert(held, 1, 2)
  return held
end
local free = {}
for i = 4, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then table.insert(free, ARGV[i]) end
end
if #free < n then return {0, #free} end
local out = {1}
for i = 1, n do
  redis.call('HSET', KEYS[1], free[i], job)
  table.insert(out, tonumber(free[i]))
end
redis.call('ZADD', KEYS[2], now + ttl, job)
return out
"""
)

# KEYS: owners, leases. ARGV: job. Returns the released indices.
_RELEASE = (
    _PURGE
    + """
local held = held_by(KEYS[1], ARGV[1])
for _, idx in ipairs(held) do redis.call('HDEL', KEYS[1], tostring(idx)) end
redis.call('ZREM', KEYS[2], ARGV[1])
return held
"""
)

# KEYS: owners, leases. ARGV: job, ttl_ms. Returns 1 if the lease was alive and is extended,
# 0 if it was lost (expired and reclaimed, or released).
_REFRESH = (
    _PURGE
    + """
local now = now_ms()
purge(KEYS[1], KEYS[2], now)
if redis.call('ZSCORE', KEYS[2], ARGV[1]) == false then return 0 end
if #held_by(KEYS[1], ARGV[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""
)


class GpuSlots:
    """GPU reservations of one host, shared by every worker process on it.

    ``devices`` is the list of indices this worker may hand out (default: discovered under
    ``dev_root``). ``client`` may be an existing ``redis.Redis``; otherwise one is made from
    ``redis_url``.
    """

    def __init__(
        self,
        redis_url: str,
        host_id: str,
        devices: Sequence[int] | None = None,
        *,
        key_prefix: str = "moehub:gpu",
        dev_root: Path | str = "/dev",
        client: Any = None,
    ) -> None:
        if client is None:
            import redis  # a project dependency; imported lazily so the sandbox does not need it

            client = redis.Redis.from_url(redis_url)
        self.redis = client
        self.host_id = host_id
        self.devices = sorted(
            int(d) for d in (discover_gpus(dev_root) if devices is None else devices)
        )
        base = f"{key_prefix}:{{{host_id}}}"
        self.owners_key = f"{base}:owners"
        self.leases_key = f"{base}:leases"
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)
        self._refresh = client.register_script(_REFRESH)

    def reserve(self, n: int, job_id: str, ttl: float = 60.0) -> list[int]:
        """Reserve ``n`` free devices for ``job_id`` (lowest indices first) for ``ttl`` s.

        Idempotent for a job that already holds devices (returns those: a retried task does
        not take a second set). Raises NoGpuAvailable when fewer than ``n`` are free.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        if n == 0:
            return []
        if n > len(self.devices):
            raise NoGpuAvailable(f"{n} GPUs requested, this worker has {len(self.devices)}")
        r = self._reserve(
            keys=[self.owners_key, self.leases_key],
            args=[job_id, n, int(ttl * 1000), *self.devices],
        )
        code, rest = int(r[0]), [int(x) for x in r[1:]]
        if code == 0:
            raise NoGpuAvailable(f"{n} GPUs requested, {rest[0]} free on {self.host_id}")
        return rest

    def release(self, job_id: str) -> list[int]:
        """Free every device ``job_id`` holds (idempotent). Returns them."""
        r = self._release(keys=[self.owners_key, self.leases_key], args=[job_id])
        return [int(x) for x in r]

    def refresh(self, job_id: str, ttl: float = 60.0) -> bool:
        """Extend the lease. False means it was lost: the job must stop using the GPUs."""
        r = self._refresh(keys=[self.owners_key, self.leases_key], args=[job_id, int(ttl * 1000)])
        return bool(int(r))

    def holders(self) -> dict[int, str]:
        """Current owners (device index -> job id), expired leases included until purged."""
        raw = self.redis.hgetall(self.owners_key)
        return {int(k): (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()}

    @contextlib.contextmanager
    def lease(
        self,
        n: int,
        job_id: str,
        ttl: float = 60.0,
        *,
        heartbeat: bool = True,
        on_lost: Callable[[], None] | None = None,
    ) -> Iterator[list[int]]:
        """Reserve, keep the lease alive from a background thread (a refresh every ``ttl/3``
        s), and release on every way out of the ``with`` block (return, exception,
        cancellation).

        A refresh that fails (a Redis hiccup) is retried at the next beat; while Redis is
        unreachable for longer than ``ttl`` the devices may be handed to another job, so a
        refresh that finds the lease gone calls ``on_lost`` once (the caller must stop using
        the GPUs: cancel the job) and the heartbeat ends."""
        devices = self.reserve(n, job_id, ttl)
        stop = threading.Event()
        thread = None
        if heartbeat and n > 0:

            def beat() -> None:
                while not stop.wait(ttl / 3):
                    try:
                        alive = self.refresh(job_id, ttl)
                    except Exception:  # Redis hiccup: retry next beat
                        continue
                    if not alive and not stop.is_set():
                        if on_lost is not None:
                            on_lost()
                        return

            thread = threading.Thread(target=beat, daemon=True, name=f"gpu-lease-{job_id}")
            thread.start()
        try:
            yield devices
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=5)
            if n > 0:
                self.release(job_id)

"""Shared fast state in Redis: limits, circuits, cache, routing data, fan-out, the replica registry.

Each check-and-change is one Lua script, so it is atomic across replicas and costs one round
trip. Times come from the replicas' wall clocks (NTP-synchronised hosts; a 60 s window does not
mind milliseconds of skew). Keys carry the configured prefix and expire when idle.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aggregator.state.interfaces import (
    Admission,
    BreakerSettings,
    BreakerStatus,
    CircuitState,
    Refusal,
    ReplicaInfo,
    RoutingStats,
    StateUnavailable,
)

Clock = Callable[[], float]

# The sliding one-minute windows both limiter scripts check: a zset of requests (member per call,
# scored by time) and a hash of tokens per whole second. Each returns the seconds to wait as a
# string when the limit (-1: none) is reached, else nil; old entries are dropped on the way.
_WINDOWS = """
local function requests_retry(key, now, rpm)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - 60)
  if rpm >= 0 and redis.call('ZCARD', key) >= rpm then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return tostring(60 - (now - tonumber(oldest[2])))
  end
  return nil
end
local function tokens_retry(key, now, tpm)
  if tpm < 0 then return nil end
  local total = 0; local oldest = nil
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local second = tonumber(all[i])
    if second <= now - 60 then
      redis.call('HDEL', key, all[i])
    else
      total = total + tonumber(all[i + 1])
      if oldest == nil or second < oldest then oldest = second end
    end
  end
  if total >= tpm then return tostring(60 - (now - oldest)) end
  return nil
end
"""

_ACQUIRE = (
    _WINDOWS
    + """
local now = tonumber(ARGV[1]); local rpm = tonumber(ARGV[2]); local tpm = tonumber(ARGV[3])
local retry = requests_retry(KEYS[1], now, rpm)
if retry then return {'rpm', retry} end
retry = tokens_retry(KEYS[2], now, tpm)
if retry then return {'tpm', retry} end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], 61000)
return false
"""
)

# KEYS: circuit hash, failures zset. ARGV: now, cooldown, claim ("1" takes the half-open probe).
_ALLOW = """
local opened = redis.call('HGET', KEYS[1], 'opened_at')
if not opened then return {'closed', '0', '', redis.call('EXISTS', KEYS[2])} end
local err = redis.call('HGET', KEYS[1], 'last_error') or ''
local now = tonumber(ARGV[1]); local cooldown = tonumber(ARGV[2])
local left = cooldown - (now - tonumber(opened))
if left > 0 then return {'open', tostring(left), err} end
if ARGV[3] ~= '1' then return {'half-open', '0', err} end
local probe = redis.call('HGET', KEYS[1], 'probe')
-- A probe older than a cooldown belonged to a replica that died mid-call: take it over.
if probe and now - tonumber(probe) < cooldown then return {'open', '0', err} end
redis.call('HSET', KEYS[1], 'probe', ARGV[1])
return {'closed', '0', err}
"""

# KEYS: circuit hash, failures zset. ARGV: now, reason, threshold, window, cooldown, member, ttl ms.
_FAILURE = """
local now = tonumber(ARGV[1]); local cooldown = tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'last_error', ARGV[2])
local opened = redis.call('HGET', KEYS[1], 'opened_at')
if opened then
  redis.call('HSET', KEYS[1], 'opened_at', ARGV[1]); redis.call('HDEL', KEYS[1], 'probe')
else
  redis.call('ZADD', KEYS[2], now, ARGV[6])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. tostring(now - tonumber(ARGV[4])))
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
    redis.call('HSET', KEYS[1], 'opened_at', ARGV[1]); redis.call('DEL', KEYS[2])
    opened = ARGV[1]
  else
    redis.call('PEXPIRE', KEYS[2], ARGV[7])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[7])
if opened then return {'open', tostring(cooldown), ARGV[2]} end
return {'closed', '0', ARGV[2]}
"""

# The limiter's and the breaker's keys of one key. KEYS: requests, tokens, circuit, failures.
# ARGV: now, rpm (-1: none), tpm (-1: none), member, tokens to count first, cooldown.
_GATE = (
    _WINDOWS
    + """
local now = tonumber(ARGV[1]); local rpm = tonumber(ARGV[2]); local tpm = tonumber(ARGV[3])
local tokens = tonumber(ARGV[5]); local cooldown = tonumber(ARGV[6])
local function circuit(claim)
  local opened = redis.call('HGET', KEYS[3], 'opened_at')
  if not opened then return {'closed', '0', '', redis.call('EXISTS', KEYS[4])} end
  local err = redis.call('HGET', KEYS[3], 'last_error') or ''
  local left = cooldown - (now - tonumber(opened))
  if left > 0 then return {'open', tostring(left), err, 0} end
  if not claim then return {'half-open', '0', err, 0} end
  local probe = redis.call('HGET', KEYS[3], 'probe')
  if probe and now - tonumber(probe) < cooldown then return {'open', '0', err, 0} end
  redis.call('HSET', KEYS[3], 'probe', ARGV[1])
  return {'closed', '0', err, 0}
end
local function with(limit, retry, c) return {limit, retry, c[1], c[2], c[3], c[4]} end
if tokens > 0 then
  redis.call('HINCRBY', KEYS[2], tostring(math.floor(now)), tokens)
  redis.call('PEXPIRE', KEYS[2], 61000)
end
local retry = requests_retry(KEYS[1], now, rpm)
if retry then return with('rpm', retry, circuit(false)) end
retry = tokens_retry(KEYS[2], now, tpm)
if retry then return with('tpm', retry, circuit(false)) end
local c = circuit(true)
if c[1] == 'closed' and (rpm >= 0 or tpm >= 0) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], 61000)
end
return with('', '0', c)
"""
)

_EWMA = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
local value = tonumber(ARGV[2])
if old then value = tonumber(old) + tonumber(ARGV[3]) * (value - tonumber(old)) end
redis.call('HSET', KEYS[1], ARGV[1], tostring(value))
redis.call('PEXPIRE', KEYS[1], 86400000)
return tostring(value)
"""


def connect(url: str) -> aioredis.Redis:
    """A client that notices a dead server within a second (no long retry loops on the hot path)."""
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


@contextmanager
def guard() -> Iterator[None]:
    """Translate the client's connection failures into `StateUnavailable("redis", ...)`."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise StateUnavailable("redis", str(exc) or type(exc).__name__) from None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _member(now: float) -> str:
    return f"{now:.6f}:{os.urandom(4).hex()}"


class _RedisPart:
    def __init__(self, client: aioredis.Redis, prefix: str, clock: Clock = time.time) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock


class RedisRateLimiter(_RedisPart):
    def __init__(self, client: aioredis.Redis, prefix: str, clock: Clock = time.time) -> None:
        super().__init__(client, prefix, clock)
        self._acquire = client.register_script(_ACQUIRE)

    def _keys(self, key: str) -> list[str]:
        return [f"{self.prefix}rl:{key}:req", f"{self.prefix}rl:{key}:tok"]

    async def acquire(self, key: str, *, rpm: int | None, tpm: int | None) -> Refusal | None:
        now = self.clock()
        args: list[str | float | int] = [now, -1 if rpm is None else rpm, -1 if tpm is None else tpm, _member(now)]
        with guard():
            result = await self._acquire(keys=self._keys(key), args=args)
        if not result:
            return None
        limit = _text(result[0])
        cap = rpm if limit == "rpm" else tpm
        return Refusal("rpm" if limit == "rpm" else "tpm", int(cap or 0), max(float(_text(result[1])), 0.0))

    async def add_request(self, key: str) -> None:
        now = self.clock()
        requests = self._keys(key)[0]
        with guard():
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zadd(requests, {_member(now): now})
                pipe.pexpire(requests, 61000)
                await pipe.execute()

    async def add_tokens(self, key: str, tokens: int) -> None:
        tokens_key = self._keys(key)[1]
        with guard():
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hincrby(tokens_key, str(math.floor(self.clock())), tokens)
                pipe.pexpire(tokens_key, 61000)
                await pipe.execute()


def _status(result: Sequence[Any]) -> BreakerStatus:
    state: CircuitState = "open"
    name = _text(result[0])
    if name in ("closed", "half-open"):
        state = "closed" if name == "closed" else "half-open"
    error = _text(result[2]) or None
    failures = len(result) > 3 and int(result[3]) > 0
    return BreakerStatus(state, max(float(_text(result[1])), 0.0), error, failures)


class RedisBreakerStore(_RedisPart):
    def __init__(self, client: aioredis.Redis, prefix: str, clock: Clock = time.time) -> None:
        super().__init__(client, prefix, clock)
        self._allow = client.register_script(_ALLOW)
        self._failure = client.register_script(_FAILURE)

    def _key(self, key: str) -> str:
        return f"{self.prefix}cb:{key}"

    def _keys(self, key: str) -> list[str]:
        return [self._key(key), self._key(key) + ":f"]

    async def allow(self, key: str, settings: BreakerSettings) -> BreakerStatus:
        with guard():
            result = await self._allow(keys=self._keys(key), args=[self.clock(), settings.cooldown, "1"])
        return _status(result)

    async def status(self, key: str, settings: BreakerSettings) -> BreakerStatus:
        with guard():
            result = await self._allow(keys=self._keys(key), args=[self.clock(), settings.cooldown, "0"])
        return _status(result)

    async def record_success(self, key: str) -> None:
        with guard():
            await self.client.delete(*self._keys(key))

    async def record_failure(self, key: str, reason: str, settings: BreakerSettings) -> BreakerStatus:
        now = self.clock()
        ttl_ms = int((settings.window + settings.cooldown + 60) * 1000)
        args: list[str | float | int] = [
            now,
            reason[:500],
            settings.failure_threshold,
            settings.window,
            settings.cooldown,
            _member(now),
            ttl_ms,
        ]
        with guard():
            result = await self._failure(keys=self._keys(key), args=args)
        return _status(result)

    async def release_probe(self, key: str) -> None:
        with guard():
            await self.client.hdel(self._key(key), "probe")


class RedisGate(_RedisPart):
    """`GateStore`: one script over the keys `RedisRateLimiter` and `RedisBreakerStore` use."""

    def __init__(self, client: aioredis.Redis, prefix: str, clock: Clock = time.time) -> None:
        super().__init__(client, prefix, clock)
        self._gate = client.register_script(_GATE)

    async def admit(
        self, key: str, *, rpm: int | None, tpm: int | None, tokens: int, breaker: BreakerSettings
    ) -> Admission:
        now = self.clock()
        p = self.prefix
        keys = [f"{p}rl:{key}:req", f"{p}rl:{key}:tok", f"{p}cb:{key}", f"{p}cb:{key}:f"]
        args: list[str | float | int] = [
            now,
            -1 if rpm is None else rpm,
            -1 if tpm is None else tpm,
            _member(now),
            tokens,
            breaker.cooldown,
        ]
        with guard():
            result = await self._gate(keys=keys, args=args)
        circuit = _status(result[2:])
        limit = _text(result[0])
        if not limit:
            return Admission(None, circuit)
        cap = int((rpm if limit == "rpm" else tpm) or 0)
        refusal = Refusal("rpm" if limit == "rpm" else "tpm", cap, max(float(_text(result[1])), 0.0))
        return Admission(refusal, circuit)


class RedisResponseCache(_RedisPart):
    async def get(self, key: str) -> bytes | None:
        with guard():
            value = await self.client.get(f"{self.prefix}cache:{key}")
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, *, ttl: float, max_entries: int | None = None) -> None:
        with guard():
            await self.client.set(f"{self.prefix}cache:{key}", value, px=max(int(ttl * 1000), 1))


class RedisRoutingStore(_RedisPart):
    """In-flight counts per replica (a field each, summed on read) and EWMA latencies per key."""

    def __init__(self, client: aioredis.Redis, prefix: str, replica_id: str) -> None:
        super().__init__(client, prefix)
        self.field = f"inflight:{replica_id}"
        self._ewma = client.register_script(_EWMA)

    def _key(self, key: str) -> str:
        return f"{self.prefix}route:{key}"

    async def begin(self, key: str) -> None:
        with guard():
            await self.client.hincrby(self._key(key), self.field, 1)

    async def end(self, key: str) -> None:
        with guard():
            await self.client.hincrby(self._key(key), self.field, -1)

    async def observe(self, key: str, metric: Literal["latency", "ttft"], seconds: float, smoothing: float) -> None:
        with guard():
            await self._ewma(keys=[self._key(key)], args=[metric, seconds, smoothing])

    async def snapshot(self, keys: Sequence[str]) -> dict[str, RoutingStats]:
        with guard():
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(self._key(key))
                results = await pipe.execute()
        out: dict[str, RoutingStats] = {}
        for key, raw in zip(keys, results, strict=True):
            fields = {_text(k): _text(v) for k, v in raw.items()}
            in_flight = sum(int(v) for k, v in fields.items() if k.startswith("inflight:"))
            latency = float(fields["latency"]) if "latency" in fields else None
            ttft = float(fields["ttft"]) if "ttft" in fields else None
            out[key] = RoutingStats(max(in_flight, 0), latency, ttft)
        return out

    async def forget_replica(self, keys: Sequence[str]) -> None:
        """Drop this replica's in-flight fields (at shutdown, after draining)."""
        with guard():
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hdel(self._key(key), self.field)
                await pipe.execute()


class RedisPubSub(_RedisPart):
    async def publish(self, channel: str, message: Mapping[str, Any]) -> None:
        with guard():
            await self.client.publish(f"{self.prefix}ch:{channel}", orjson.dumps(dict(message)))

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            with guard():
                await pubsub.subscribe(f"{self.prefix}ch:{channel}")
        except BaseException:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise

        async def messages() -> AsyncIterator[dict[str, Any]]:
            with guard():
                async for raw in pubsub.listen():
                    if raw.get("type") == "message":
                        decoded = orjson.loads(raw["data"])
                        if isinstance(decoded, dict):
                            yield decoded

        try:
            yield messages()
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]


class RedisSessionDirectory(_RedisPart):
    def _key(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    async def claim(self, session_id: str, replica_id: str, *, ttl: float) -> None:
        with guard():
            await self.client.set(self._key(session_id), replica_id, px=int(ttl * 1000))

    async def owner(self, session_id: str) -> str | None:
        with guard():
            raw = await self.client.get(self._key(session_id))
        return None if raw is None else _text(raw)

    async def release(self, session_id: str) -> None:
        with guard():
            await self.client.delete(self._key(session_id))

    async def shared_secret(self, name: str) -> bytes:
        key = f"{self.prefix}secret:{name}"
        with guard():
            # The first replica's random value wins; every later one reads it (no expiry: a changed
            # secret would invalidate every requestState in flight).
            await self.client.set(key, os.urandom(32), nx=True)
            raw = await self.client.get(key)
        assert isinstance(raw, bytes)
        return raw


class RedisReplicaRegistry(_RedisPart):
    def _index(self) -> str:
        return f"{self.prefix}replicas"

    async def heartbeat(self, info: ReplicaInfo, *, ttl: float) -> None:
        now = self.clock()
        data = orjson.dumps(
            {
                "id": info.id,
                "version": info.version,
                "load": info.load,
                "started_at": info.started_at,
                "seen": now,
                "url": info.url,
            }
        )
        with guard():
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(f"{self.prefix}replica:{info.id}", data, px=int(ttl * 1000))
                pipe.zadd(self._index(), {info.id: now + ttl})
                pipe.zremrangebyscore(self._index(), "-inf", now)
                await pipe.execute()

    async def fleet(self) -> list[ReplicaInfo]:
        with guard():
            ids = await self.client.zrangebyscore(self._index(), self.clock(), "+inf")
            if not ids:
                return []
            raws = await self.client.mget([f"{self.prefix}replica:{_text(i)}" for i in ids])
        fleet = []
        for raw in raws:
            if raw:
                d = orjson.loads(raw)
                url = d.get("url", "")
                fleet.append(ReplicaInfo(d["id"], d["version"], d["load"], d["started_at"], d["seen"], url))
        return sorted(fleet, key=lambda r: r.id)

    async def leave(self, replica_id: str) -> None:
        with guard():
            await self.client.delete(f"{self.prefix}replica:{replica_id}")
            await self.client.zrem(self._index(), replica_id)

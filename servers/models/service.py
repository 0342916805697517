"""`ModelsService`: the models server's logic, independent of MCP.

A call resolves its alias, checks the caller's budget, looks in the cache, then walks the
router's targets (skipping open circuits, full rpm/tpm caps and too-small context windows),
retrying retryable failures on the same deployment and failing over to the next. Streams
never fail over once a chunk has been emitted. Every call is recorded in the usage store.

Given a shared `State` (docs/scale-out.md), limits, circuits, routing data and the cache go to
its Redis stores and usage, spend and budgets to its PostgreSQL ledger; without one (or with an
embedded one) everything stays in this process and its SQLite file, exactly as before.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import orjson

from aggregator.state import State, StateUnavailable
from aggregator.state.memory import MemoryRateLimiter
from servers.kit import ToolError
from servers.models.adapters import Adapter, create_adapter
from servers.models.breaker import CircuitBreaker
from servers.models.cache import ResponseCache, cache_key, cacheable_chat
from servers.models.callers import CallerGate, CallerLimits, LimitsOf
from servers.models.config import AliasConfig, DeploymentConfig, ModelsConfig
from servers.models.failover import CallLog, Failover, Operation, Sleep
from servers.models.health import HealthMonitor
from servers.models.normalise import StreamNormaliser, normalise_message, parser_for
from servers.models.observer import ModelsObserver
from servers.models.router import DeploymentState, Router, Target
from servers.models.streaming import Emit, StreamPipeline
from servers.models.usage import UsageRecord, UsageStore

NO_MODELS_HINT = (
    "no models are configured: add `backends` and `aliases` to the models server's config "
    "(servers.models.config in toolmux.yaml); see docs/models.md"
)
# Arguments that steer toolmux itself and never reach a backend.
_CONTROL_ARGS = frozenset({"model", "stream", "stream_options", "cache", "extra"})


class ModelsService:
    def __init__(
        self,
        config: ModelsConfig,
        *,
        data_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = anyio.sleep,
        rng: random.Random | None = None,
        state: State | None = None,
        key_limits: LimitsOf | None = None,
        observer: ModelsObserver | None = None,
    ) -> None:
        self.config = config
        self.observer = observer
        self.sleep = sleep
        self.adapters: dict[str, Adapter] = {
            name: create_adapter(name, backend) for name, backend in config.backends.items()
        }
        self.states: dict[str, DeploymentState] = {
            dep_id: DeploymentState(dep_id, CircuitBreaker(config.circuit_breaker, clock))
            for dep_id in config.deployment_ids()
        }
        self.router = Router(config, self.states, rng=rng, clock=clock)
        self.clock = clock
        self.cache = ResponseCache(clock)
        usage_path: Path | None = None
        if config.usage.enabled:
            usage_path = (
                Path(config.usage.path)
                if config.usage.path
                else (data_dir or Path(".data")) / "models" / "usage.sqlite3"
            )
        self.usage = UsageStore(
            usage_path,
            log_prompts=config.usage.log_prompts,
            budgets=config.budgets,
            flush_interval=config.usage.flush_interval,
        )
        self.health = HealthMonitor(config, self.adapters, self.states)
        self.failover = Failover(config, self.router, self.states, clock=clock, sleep=sleep)
        self.callers = CallerGate(key_limits, self.usage, MemoryRateLimiter())
        if state is not None:
            self._share(state)

    def _share(self, state: State) -> None:
        """Swap the storage behind the breakers, limits, routing data, cache and usage for shared stores."""
        if state.shared_fast:
            routed = {
                dep.id
                for alias in self.config.aliases.values()
                if self.router.strategy_of(alias) in ("least-busy", "latency")
                for dep in alias.deployments
            }
            for dep_id, dep_state in self.states.items():
                dep_state.breaker.share(state.breakers, dep_state.shared_key)
                dep_state.share(state.gate, state.limiter, state.routing if dep_id in routed else None)
            self.cache.share(state.cache)
            self.callers.limiter = state.limiter
            self.failover.shared_routing = bool(routed)
        if state.shared_durable:
            self.usage.share(state.ledger, state.replica_id)

    async def aclose(self) -> None:
        await self.usage.aclose()
        for adapter in self.adapters.values():
            await adapter.aclose()

    # --- lookups --------------------------------------------------------------------------------
    def resolve(self, name: Any) -> str:
        if name in self.config.aliases:
            return str(name)
        if not self.config.aliases:
            raise ToolError(NO_MODELS_HINT, code="not_found", field="model")
        available = ", ".join(sorted(self.config.aliases))
        raise ToolError(f"unknown model {name!r}; available models: {available}", code="not_found", field="model")

    async def _check_budget(self, key: str) -> None:
        try:
            status = await self.usage.budget(key)
        except StateUnavailable as exc:
            # Fail closed: a budget that cannot be read is not a budget with room.
            raise ToolError(
                f"the budget of key {key!r} cannot be checked: {exc}", code="unavailable", retryable=True
            ) from None
        if status is not None and status["exhausted"]:
            raise ToolError(
                f"the budget of key {key!r} is spent: {status['spent']:.4f} of {status['limit']:.4f} USD "
                f"this {status['period']}",
                code="payment_required",
                data={"budget": status},
            )

    def _passthrough(self, alias: AliasConfig) -> bool:
        return self.config.passthrough if alias.passthrough is None else alias.passthrough

    def _request(self, args: dict[str, Any], alias: AliasConfig) -> dict[str, Any]:
        request = {k: v for k, v in args.items() if k not in _CONTROL_ARGS and v is not None}
        extra = args.get("extra")
        if extra and self._passthrough(alias):
            request.update({k: v for k, v in extra.items() if k not in _CONTROL_ARGS})
        return request

    def _parse_enabled(self, dep: DeploymentConfig) -> bool:
        return self.config.tool_call_parsing.enabled if dep.parse_tool_calls is None else dep.parse_tool_calls

    # --- chat -----------------------------------------------------------------------------------
    async def chat(
        self,
        args: dict[str, Any],
        *,
        caller: str | None = None,
        request_id: str | None = None,
        emit: Emit | None = None,
    ) -> dict[str, Any]:
        key = caller or "anonymous"
        alias_name = self.resolve(args.get("model"))
        alias = self.config.aliases[alias_name]
        limits = await self.callers.admit(key, alias_name)
        await self._check_budget(key)
        request = self._request(args, alias)
        stream = bool(args.get("stream"))
        log = CallLog()
        record = UsageRecord(key=key, model=alias_name, kind="chat", status="ok", stream=stream, request_id=request_id)
        if self.usage.log_prompts:
            record.prompt = orjson.dumps(request.get("messages")).decode()
        streaming = False
        use_cache = not stream and alias.cache.enabled and args.get("cache") != "no-store"
        ckey = cache_key("chat", alias_name, request) if use_cache else ""
        try:
            cached = await self.cache.fetch(ckey) if use_cache else None
            if cached is not None:
                cached["id"] = "chatcmpl-" + uuid.uuid4().hex[:24]
                cached["toolmux"].update(
                    cache_hit=True,
                    attempts=0,
                    failover_path=[],
                    cost=0.0,
                    latency_ms=0.0,
                    upstream_ms=0.0,
                    request_id=request_id,
                )
                record.cache_hit = True
                record.deployment = cached["toolmux"].get("deployment")
                self._finish_record(record, cached, log, cost=0.0)
                return cached
            chat_id = "chatcmpl-" + uuid.uuid4().hex[:24]
            op = self._stream_op(request, alias_name, chat_id, emit, log) if stream else self._chat_op(request)
            if stream and self.observer is not None:
                self.observer.stream_opened(alias_name)
                streaming = True
            response, target = await self.failover.run(alias_name, request, stream=stream, kind="chat", op=op, log=log)
            response["model"] = alias_name
            response.setdefault("id", chat_id)
            cost = await self._account(target, response.get("usage") or {}, log)
            response["toolmux"] = self._meta(target, log, cost, request_id)
            record.deployment = target.deployment.id
            self._finish_record(record, response, log, cost=cost)
            if use_cache and cacheable_chat(response):
                await self.cache.store(ckey, response, ttl=alias.cache.ttl, max_entries=alias.cache.max_entries)
            return response
        except ToolError as exc:
            record.status, record.error_code = "error", exc.code
            raise
        except BaseException:
            record.status, record.error_code = "error", "cancelled"
            raise
        finally:
            record.attempts = log.attempts
            record.failover_path = log.path
            record.latency_ms = round((time.perf_counter() - log.started) * 1000, 3)
            record.ttft_ms = round(log.ttft * 1000, 3) if log.ttft is not None else None
            if streaming and self.observer is not None:
                self.observer.stream_closed(alias_name)
            with anyio.CancelScope(shield=True):
                await self._recorded(record, limits)

    def _chat_op(self, request: dict[str, Any]) -> Operation:
        async def op(target: Target, state: DeploymentState, log: CallLog) -> dict[str, Any]:
            dep = target.deployment
            began = time.perf_counter()
            response = await self.adapters[dep.backend].chat(dep.model, request)
            await state.record_latency("latency", time.perf_counter() - began, self.config.routing.latency_smoothing)
            parser = parser_for(self.config.tool_call_parsing, request, self._parse_enabled(dep))
            if parser is not None:
                for choice in response["choices"]:
                    if isinstance(choice.get("message"), dict) and normalise_message(parser, choice["message"]):
                        choice["finish_reason"] = "tool_calls"
            return response

        return op

    def _stream_op(
        self, request: dict[str, Any], alias_name: str, chat_id: str, emit: Emit | None, log: CallLog
    ) -> Operation:
        async def send(chunk: dict[str, Any]) -> None:
            if not log.emitted:
                log.emitted = True
                log.ttft = time.perf_counter() - log.started
            if emit is not None:
                await emit(chunk)

        async def op(target: Target, state: DeploymentState, _log: CallLog) -> dict[str, Any]:
            dep = target.deployment
            parser = parser_for(self.config.tool_call_parsing, request, self._parse_enabled(dep))
            pipeline = StreamPipeline(
                chunk_id=chat_id,
                model=alias_name,
                created=int(time.time()),
                emit=send,
                normaliser=StreamNormaliser(parser) if parser is not None else None,
            )
            began = time.perf_counter()
            first = True
            async for chunk in self.adapters[dep.backend].stream_chat(dep.model, request):
                if first:
                    first = False
                    await state.record_latency(
                        "ttft", time.perf_counter() - began, self.config.routing.latency_smoothing
                    )
                await pipeline.feed(chunk)
            await pipeline.finish()
            response = pipeline.response()
            if pipeline.usage:
                response["usage"] = pipeline.usage
            return response

        return op

    # --- embeddings -----------------------------------------------------------------------------
    async def embed(
        self, args: dict[str, Any], *, caller: str | None = None, request_id: str | None = None
    ) -> dict[str, Any]:
        key = caller or "anonymous"
        alias_name = self.resolve(args.get("model"))
        alias = self.config.aliases[alias_name]
        limits = await self.callers.admit(key, alias_name)
        await self._check_budget(key)
        raw = args.get("input")
        inputs = [raw] if isinstance(raw, str) else list(raw or [])
        if not inputs:
            raise ToolError("input must not be empty", field="input")
        request = {k: args[k] for k in ("dimensions", "user") if args.get(k) is not None}
        log = CallLog()
        record = UsageRecord(key=key, model=alias_name, kind="embed", status="ok", request_id=request_id)
        use_cache = alias.cache.enabled and args.get("cache") != "no-store"
        ckey = cache_key("embed", alias_name, {**request, "input": inputs}) if use_cache else ""

        async def op(target: Target, state: DeploymentState, _log: CallLog) -> dict[str, Any]:
            dep = target.deployment
            began = time.perf_counter()
            result = await self.adapters[dep.backend].embed(dep.model, inputs, request)
            await state.record_latency("latency", time.perf_counter() - began, self.config.routing.latency_smoothing)
            return result

        try:
            cached = await self.cache.fetch(ckey) if use_cache else None
            if cached is not None:
                cached["toolmux"].update(
                    cache_hit=True,
                    attempts=0,
                    failover_path=[],
                    cost=0.0,
                    latency_ms=0.0,
                    upstream_ms=0.0,
                    request_id=request_id,
                )
                record.cache_hit = True
                record.deployment = cached["toolmux"].get("deployment")
                return cached
            result, target = await self.failover.run(
                alias_name, {"input": inputs}, stream=False, kind="embed", op=op, log=log
            )
            usage = result.get("usage") or {}
            usage = {
                "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                "total_tokens": int(usage.get("total_tokens") or usage.get("prompt_tokens") or 0),
            }
            response = {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": int(item.get("index", i)), "embedding": item.get("embedding", [])}
                    for i, item in enumerate(result.get("data") or [])
                ],
                "model": alias_name,
                "usage": usage,
            }
            cost = await self._account(target, usage, log)
            response["toolmux"] = self._meta(target, log, cost, request_id)
            record.deployment = target.deployment.id
            self._finish_record(record, response, log, cost=cost)
            if use_cache:
                await self.cache.store(ckey, response, ttl=alias.cache.ttl, max_entries=alias.cache.max_entries)
            return response
        except ToolError as exc:
            record.status, record.error_code = "error", exc.code
            raise
        except BaseException:
            record.status, record.error_code = "error", "cancelled"
            raise
        finally:
            record.attempts = log.attempts
            record.failover_path = log.path
            record.latency_ms = round((time.perf_counter() - log.started) * 1000, 3)
            with anyio.CancelScope(shield=True):
                await self._recorded(record, limits)

    # --- accounting -----------------------------------------------------------------------------
    async def _recorded(self, record: UsageRecord, limits: CallerLimits | None) -> None:
        """A finished call: its usage row, the tokens its key spent, and what the observer hears."""
        await self.usage.record(record)
        if limits is not None:
            await self.callers.spent(record.key, limits, record.prompt_tokens + record.completion_tokens)
        if self.observer is not None:
            self.observer.call_finished(record)

    async def _account(self, target: Target, usage: dict[str, Any], log: CallLog) -> float:
        dep = target.deployment
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        await self.states[dep.id].count_tokens(self.clock(), prompt + completion)
        return round(dep.prices.cost(prompt, completion, cached), 10)

    def _meta(self, target: Target, log: CallLog, cost: float, request_id: str | None) -> dict[str, Any]:
        dep = target.deployment
        return {
            "alias": target.alias,
            "deployment": dep.id,
            "backend": dep.backend,
            "model": dep.model,
            "attempts": log.attempts,
            "failover_path": list(log.path),
            "skipped": list(log.skipped),
            "cost": cost,
            "cache_hit": False,
            "latency_ms": round((time.perf_counter() - log.started) * 1000, 3),
            "upstream_ms": round(log.upstream_seconds * 1000, 3),
            "ttft_ms": round(log.ttft * 1000, 3) if log.ttft is not None else None,
            "request_id": request_id,
        }

    def _finish_record(self, record: UsageRecord, response: dict[str, Any], log: CallLog, *, cost: float) -> None:
        usage = response.get("usage") or {}
        record.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        record.completion_tokens = int(usage.get("completion_tokens") or 0)
        record.cached_tokens = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        record.cost = cost
        if self.usage.log_prompts and response.get("choices"):
            record.response = orjson.dumps(response["choices"][0].get("message")).decode()

    # --- listing and reports --------------------------------------------------------------------
    def list_models(self, *, include_deployments: bool = False) -> dict[str, Any]:
        data = []
        for name, alias in self.config.aliases.items():
            entry: dict[str, Any] = {"id": name, "object": "model", "created": 0, "owned_by": "toolmux"}
            if alias.description:
                entry["description"] = alias.description
            windows = [d.context_window for d in alias.deployments if d.context_window]
            if windows:
                entry["context_window"] = max(windows)
            if alias.embedding:
                entry["embedding"] = True
            if include_deployments:
                entry["deployments"] = [
                    {
                        "id": d.id,
                        "backend": d.backend,
                        "model": d.model,
                        "circuit": self.states[d.id].breaker.state,
                        "healthy": self.states[d.id].healthy,
                    }
                    for d in alias.deployments
                ]
            data.append(entry)
            if not self.config.list_aliases_only:
                data.extend(
                    {"id": f"{name}/{d.id}", "object": "model", "created": 0, "owned_by": d.backend, "parent": name}
                    for d in alias.deployments
                )
        result: dict[str, Any] = {"object": "list", "data": data}
        if not self.config.aliases:
            result["hint"] = NO_MODELS_HINT
        return result

    async def usage_report(self, args: dict[str, Any], *, caller: str | None = None) -> dict[str, Any]:
        key = args.get("key")
        if caller not in (None, "master") and key not in (None, caller):
            raise ToolError("a key may only read its own usage", code="forbidden", field="key")
        if caller not in (None, "master"):
            key = caller
        try:
            report = await self.usage.query(
                group_by=args.get("group_by") or ["model"],
                since=args.get("since"),
                until=args.get("until"),
                key=key,
                model=args.get("model"),
            )
        except ValueError as exc:
            raise ToolError(f"invalid date: {exc}", field="since" if args.get("since") else "until") from None
        except StateUnavailable as exc:
            raise ToolError(f"usage cannot be read: {exc}", code="unavailable", retryable=True) from None
        try:
            budgets = [b for k in sorted(self.usage.budgets) if key in (None, k) and (b := await self.usage.budget(k))]
        except StateUnavailable as exc:
            raise ToolError(f"usage cannot be read: {exc}", code="unavailable", retryable=True) from None
        return {**report, "budgets": budgets}

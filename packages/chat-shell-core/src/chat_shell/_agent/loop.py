"""The agent loop: history + input → model → tools → model … until an answer or a limit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import ChatShellError, ModelError, ToolError, UserError
from .._events import EventType, Usage
from .._messages import Message, ToolCall, validate_session_id
from .._models.backend import (
    FinishPart,
    ModelBackend,
    ModelRequest,
    ReasoningDelta,
    TextDelta,
    ToolCallPart,
    UsagePart,
)
from .._models.router import ModelSpec
from .._runs.run import AgentRun, RunState
from .._storage.contract import HistoryStorage
from .._storage.titles import title_untitled
from .._tools import ApprovalCallback, Tool, current_owner, parse_arguments
from .context import (
    ContextMode,
    Fitted,
    RequestContext,
    budget_for,
    summary_message,
    summary_request,
)

__all__ = ["ChatAgent", "ModelChoice", "RunPlan"]

logger = logging.getLogger("chat_shell")

_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0)
# A provider's Retry-After is honoured up to this; a longer wait is not waited for (the next
# model is tried, or the error, with its retry_after, goes to the caller).
_MAX_RETRY_AFTER = 60.0
# A retry is attempted only if, after its wait, at least this much of the run's time is left.
_MIN_ATTEMPT_SECONDS = 1.0

# Finish reasons that mean the answer did not end by itself (why, in the user's words).
_CUT_OFF = {
    "length": "the answer was cut off: the model reached its output token limit (max_tokens)",
    "max_tokens": "the answer was cut off: the model reached its output token limit (max_tokens)",
    "content_filter": "the answer was stopped by the provider's content filter",
}


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """A model to try: its spec and the backend that calls it."""

    spec: ModelSpec
    backend: ModelBackend


@dataclass(slots=True)
class RunPlan:
    """Everything one run needs, resolved and validated before it starts."""

    session_id: str
    new_messages: list[Message]
    models: list[ModelChoice]
    tools: dict[str, Tool] = field(default_factory=dict)
    context: list[Message] = field(default_factory=list)
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    max_iterations: int = 10
    tool_timeout: float = 30.0
    run_timeout: float | None = 600.0
    token_budget: int | None = None
    retries: int = 2
    store: bool = True
    new_session: bool = False  # the id was just made up: there is no history to read
    owner: str | None = None
    approve: ApprovalCallback | None = None
    # No callback: ask over the event stream (``approval_required``) and wait this long for
    # an answer through the run store (the server); ``None``: refuse such calls.
    approval_timeout: float | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. fallback models left out
    context_mode: ContextMode = "drop"  # what is done with turns that do not fit the window


@dataclass(slots=True)
class _Step:
    """What one model call produced so far (kept for storing a partial answer)."""

    model: str
    started: float = field(default_factory=time.perf_counter)
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: list[ToolCallPart] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    first_token: float | None = None
    finish_reason: str | None = None

    def message(self, status: str) -> Message:
        calls = [
            ToolCall(id=c.id, name=c.name, arguments=parse_arguments(c.arguments)[0])
            for c in self.tool_calls
        ]
        metadata: dict[str, Any] = {
            "model": self.model,
            "status": status,
            "latency_ms": round((time.perf_counter() - self.started) * 1000, 1),
        }
        if self.usage:
            metadata["usage"] = dict(self.usage)
        if self.first_token is not None:
            metadata["ttft_ms"] = round((self.first_token - self.started) * 1000, 1)
        if self.reasoning:
            metadata["reasoning"] = "".join(self.reasoning)
        if self.finish_reason in _CUT_OFF:
            metadata["finish_reason"] = self.finish_reason
        return Message(
            role="assistant",
            content="".join(self.text) or None,
            tool_calls=calls or None,
            metadata=metadata,
        )


_OUTPUT_PARTS = (TextDelta, ReasoningDelta, ToolCallPart)
# Model calls one summary may take (each reads what fits the window).
_SUMMARY_CALLS = 4


_APPROVAL_POLL_SECONDS = 0.05  # how often a waiting call looks for its answer


def _retry_wait(exc: ModelError, attempt: int, retries: int) -> float | None:
    """Seconds before the next try of the same model, or ``None``: no retry."""
    if not exc.retryable or attempt >= retries:
        return None
    if exc.retry_after is not None:
        return exc.retry_after if exc.retry_after <= _MAX_RETRY_AFTER else None
    return _BACKOFF_SECONDS[min(attempt, len(_BACKOFF_SECONDS) - 1)]


def _log_failure(run: AgentRun, spec: ModelSpec, exc: ModelError, when: str, then: str) -> None:
    """One line per failed model call, for operators (the message never holds a key)."""
    status = f", HTTP {exc.status_code}" if exc.status_code is not None else ""
    logger.warning(
        "run %s: model %s failed %s (%s%s%s): %s; %s",
        run.id,
        spec.name,
        when,
        exc.code,
        status,
        ", retryable" if exc.retryable else "",
        exc.message,
        then,
    )


def _add_usage(total: Usage, usage: dict[str, int]) -> None:
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        if key in usage:
            total[key] = total.get(key, 0) + usage[key]


class ChatAgent:
    """Runs turns against a history store. One agent serves many sessions and runs at once."""

    def __init__(self, storage: HistoryStorage) -> None:
        self.storage = storage

    def prepare(self, plan: RunPlan, *, run_id: str | None = None) -> AgentRun:
        """A run of ``plan``, validated, not started (``execute`` runs it)."""
        validate_session_id(plan.session_id)
        if not plan.models:
            raise UserError("no model to run")
        run = AgentRun(plan.session_id, run_id)
        run.warnings = list(plan.warnings)
        return run

    def start(self, plan: RunPlan, *, run_id: str | None = None) -> AgentRun:
        """Start a run in its own task and return at once; follow it with ``run.follow()``.

        The run is in no run store: interfaces start runs through a ``RunManager``.
        """
        run = self.prepare(plan, run_id=run_id)
        run.task = asyncio.get_running_loop().create_task(self.execute(run, plan))
        return run

    async def execute(self, run: AgentRun, plan: RunPlan) -> None:
        """Run ``plan`` in the current task to its end (however it ends), as ``run``."""
        current_owner.set(plan.owner)  # the run's own task: its tools inherit whose run it is
        await self._execute(run, plan)

    async def _store(self, plan: RunPlan, messages: Sequence[Message]) -> None:
        if plan.store and messages:
            await self.storage.append_messages(plan.session_id, messages, owner=plan.owner)

    async def _store_opening(self, plan: RunPlan, first: bool) -> None:
        """Store the turn's own messages; when they are the session's first, title it after
        them (unless it has a title): whichever mode started the session, it gets one."""
        await self._store(plan, plan.new_messages)
        if plan.store and first:
            try:
                await title_untitled(self.storage, plan.session_id, plan.new_messages)
            except ChatShellError as exc:  # the turn goes on; only its title is missing
                logger.warning("could not title session %s: %s", plan.session_id, exc.message)

    def _complete(self, run: AgentRun, state: RunState, reason: str | None = None) -> None:
        data: dict[str, Any] = {
            "status": state,
            "content": run.content,
            "usage": dict(run.usage),
            "model": run.model,
        }
        if reason:
            data["reason"] = reason
            run.reason = reason
        if run.finish_reason:
            data["finish_reason"] = run.finish_reason
        if run.messages_sent is not None:
            data["messages_sent"] = run.messages_sent
            data["messages_dropped"] = run.messages_dropped
            if run.messages_summarized:
                data["messages_summarized"] = run.messages_summarized
        run.emit(EventType.COMPLETE, data)
        run.finish(state)

    def _error(
        self, run: AgentRun, code: str, message: str, retryable: bool, **details: Any
    ) -> None:
        run.error = {"code": code, "message": message, "retryable": retryable}
        run.error.update({key: value for key, value in details.items() if value is not None})
        run.emit(EventType.ERROR, dict(run.error))

    async def _execute(self, run: AgentRun, plan: RunPlan) -> None:
        run.state = "running"
        run.started_at = time.time()
        step: _Step | None = None
        pending_tools: list[ToolCallPart] = []
        results: list[Message | None] = []
        user_stored: asyncio.Future[None] | None = None
        loop = asyncio.get_running_loop()
        deadline = None if plan.run_timeout is None else loop.time() + plan.run_timeout
        try:
            async with asyncio.timeout_at(deadline):
                history = (
                    [] if plan.new_session else await self.storage.get_history(plan.session_id)
                )
                # Written while the model is already being asked: it shortens the time to the
                # first token; it is awaited before anything else of the turn is stored.
                user_stored = asyncio.ensure_future(self._store_opening(plan, not history))
                conversation = RequestContext(
                    history,
                    plan.new_messages,
                    system_prompt=plan.system_prompt,
                    extra=plan.context,
                    mode=plan.context_mode,
                )
                for _ in range(plan.max_iterations):
                    if plan.context_mode == "summarize":
                        await self._summarize(run, plan, conversation, user_stored)
                    step = _Step(model=plan.models[0].spec.name)
                    run.finish_reason = None  # the last answer's, once it has ended
                    await self._model_step(run, plan, conversation, step, deadline)
                    run.finish_reason = step.finish_reason
                    cut_off = _CUT_OFF.get(step.finish_reason or "")
                    if cut_off:
                        # Calls in an answer that was cut off may be cut too: none is run.
                        step.tool_calls = []
                    assistant = step.message("incomplete" if cut_off else "completed")
                    pending_tools = step.tool_calls
                    results = [None] * len(pending_tools)
                    step = None
                    await asyncio.shield(user_stored)
                    await self._store(plan, [assistant])
                    run.step_parts = []
                    run.open_tool_calls = [{"id": c.id, "name": c.name} for c in pending_tools]
                    conversation.append([assistant])
                    if cut_off:
                        self._complete(run, "incomplete", cut_off)
                        return
                    if not pending_tools:
                        self._complete(run, "completed")
                        return
                    await self._run_tools(run, plan, pending_tools, results)
                    tool_messages = [m for m in results if m is not None]
                    pending_tools = []
                    await self._store(plan, tool_messages)
                    run.open_tool_calls = []
                    conversation.append(tool_messages)
                    budget = plan.token_budget
                    if budget is not None and run.usage.get("total_tokens", 0) >= budget:
                        self._complete(run, "incomplete", f"token budget of {budget} reached")
                        return
                self._complete(
                    run, "incomplete", f"stopped after {plan.max_iterations} model calls"
                )
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            if not run.lost:  # else the process that ended it stored the partial answer
                await self._store_partial(
                    plan, user_stored, step, pending_tools, results, "cancelled"
                )
            self._complete(run, "cancelled")
        except TimeoutError:
            await self._store_partial(plan, user_stored, step, pending_tools, results, "incomplete")
            self._error(run, "run_timeout", f"the run took longer than {plan.run_timeout} s", False)
            self._complete(run, "incomplete", "run timeout")
        except ModelError as exc:
            model = step.model if step is not None else run.model
            await self._store_partial(plan, user_stored, step, pending_tools, results, "incomplete")
            self._error(
                run,
                exc.code,
                exc.message,
                exc.retryable,
                model=model,
                provider_status=exc.status_code,
                retry_after=exc.retry_after,
            )
            self._complete(run, "failed")
        except ChatShellError as exc:
            await self._store_partial(plan, user_stored, step, pending_tools, results, "incomplete")
            self._error(run, exc.code, exc.message, exc.retryable)
            self._complete(run, "failed")
        except Exception as exc:
            logger.exception("run %s failed", run.id)
            await self._store_partial(plan, user_stored, step, pending_tools, results, "incomplete")
            self._error(run, "internal_error", f"internal error ({type(exc).__name__})", False)
            self._complete(run, "failed")

    async def _store_partial(
        self,
        plan: RunPlan,
        user_stored: asyncio.Future[None] | None,
        step: _Step | None,
        pending_tools: list[ToolCallPart],
        results: list[Message | None],
        status: str,
    ) -> None:
        """Keep what was said before the run stopped, marked with how it stopped.

        Tool calls that never got a result get one saying so, which keeps the history valid
        for the next model call.
        """
        if user_stored is not None:
            try:
                await asyncio.shield(user_stored)
            except ChatShellError:
                logger.warning("could not store the user message of session %s", plan.session_id)
                return
        messages: list[Message] = []
        if step is not None and (step.text or step.reasoning):
            step.tool_calls = []  # calls that were still streaming are not complete
            messages.append(step.message(status))
        for index, call in enumerate(pending_tools):
            result = results[index] if index < len(results) else None
            messages.append(
                result
                or Message(
                    role="tool",
                    content=f"error: the tool call was {status} before it finished",
                    tool_call_id=call.id,
                    name=call.name,
                    metadata={"is_error": True, "status": status},
                )
            )
        try:
            await asyncio.shield(self._store(plan, messages))
        except ChatShellError:
            logger.warning("could not store the partial answer of session %s", plan.session_id)

    @staticmethod
    def _fit(
        plan: RunPlan,
        spec: ModelSpec,
        conversation: RequestContext,
        tools: list[dict[str, Any]] | None,
        fill: float = 1.0,
    ) -> Fitted:
        """The messages of a request to ``spec``, within its context window."""
        max_tokens = plan.max_tokens if plan.max_tokens is not None else spec.max_tokens
        budget = budget_for(spec.name, spec.context_window, max_tokens)
        return conversation.fit(budget, tools, fill=fill)

    async def _summarize(
        self,
        run: AgentRun,
        plan: RunPlan,
        conversation: RequestContext,
        user_stored: asyncio.Future[None] | None,
    ) -> None:
        """Replace the oldest turns that do not fit by a summary the model writes, stored
        (marked ``context_summary``) so later turns reuse it. A failure leaves them dropped."""
        tools = [tool.schema() for tool in plan.tools.values()] or None
        choice = plan.models[0]
        spec = choice.spec
        if not self._fit(plan, spec, conversation, tools).old_turns:
            return  # everything fits
        # Half the window: the turns after the summary fit without another one.
        fitted = self._fit(plan, spec, conversation, tools, fill=0.5)
        budget = budget_for(spec.name, spec.context_window, None)
        previous = conversation.previous_summary()
        turns = fitted.old_turns
        done = 0
        usage: dict[str, int] = {}
        started = time.perf_counter()
        # The oldest turns may be longer than the model can read at once: a summary of what
        # fits, then of that summary and what comes next, and so on (a few calls at most).
        for _ in range(_SUMMARY_CALLS):
            if done >= len(turns):
                break
            messages, limit, used = summary_request(previous, turns[done:], budget)
            request = self._request(plan, spec, messages, None, limit)
            request.temperature = None
            text: list[str] = []
            try:
                async for part in choice.backend.stream(request):
                    if type(part) is TextDelta:
                        text.append(part.text)
                    elif type(part) is UsagePart:
                        _add_usage(usage, part.usage)  # type: ignore[arg-type]
            except ModelError as exc:
                _log_failure(run, spec, exc, "writing a summary", "the oldest turns are left out")
                break
            if not "".join(text).strip():
                break
            previous = "".join(text).strip()
            done += used
        _add_usage(run.usage, usage)
        if not done or previous is None:
            return
        metadata: dict[str, Any] = {
            "model": spec.name,
            "status": "completed",
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        if usage:
            metadata["usage"] = dict(usage)
        message = summary_message(previous, conversation.summary_covers(turns[:done]), metadata)
        logger.info("run %s: %d messages summarized", run.id, done)
        if user_stored is not None:
            await asyncio.shield(user_stored)
        await self._store(plan, [message])
        conversation.append([message])

    @staticmethod
    def _request(
        plan: RunPlan,
        spec: ModelSpec,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        max_tokens: int | None,
    ) -> ModelRequest:
        return ModelRequest(
            model=spec.provider_model,
            messages=messages,
            tools=tools,
            temperature=plan.temperature if plan.temperature is not None else spec.temperature,
            max_tokens=max_tokens,
            api_base=spec.api_base,
            api_key=spec.api_key,
            timeout=spec.timeout,
            connect_timeout=spec.connect_timeout,
            first_byte_timeout=spec.first_byte_timeout,
            read_timeout=spec.read_timeout,
            ca_bundle=spec.ca_bundle,
        )

    async def _model_step(
        self,
        run: AgentRun,
        plan: RunPlan,
        conversation: RequestContext,
        step: _Step,
        deadline: float | None,
    ) -> None:
        """Stream one model call into ``step`` and the run's events.

        Retries (same model, after the provider's ``Retry-After`` or with backoff) and
        fallbacks (the next model) happen only before the first part arrives; after it, a
        failure propagates. A retry whose wait would leave less than a second of the run's time
        is not attempted.
        """
        tools = [tool.schema() for tool in plan.tools.values()] or None
        last_error: ModelError | None = None
        loop = asyncio.get_running_loop()
        for position, choice in enumerate(plan.models):
            spec = choice.spec
            fitted = self._fit(plan, spec, conversation, tools)
            max_tokens = plan.max_tokens if plan.max_tokens is not None else spec.max_tokens
            request = self._request(plan, spec, fitted.messages, tools, max_tokens)
            for attempt in range(plan.retries + 1):
                step.model = spec.name
                step.started = time.perf_counter()
                try:
                    await self._stream_into(run, choice.backend, request, step)
                except ModelError as exc:
                    if step.first_token is not None:
                        _log_failure(run, spec, exc, "mid-answer", "the partial answer is kept")
                        raise
                    last_error = exc
                    wait = _retry_wait(exc, attempt, plan.retries)
                    late = (
                        deadline is not None
                        and loop.time() + (wait or 0) > deadline - _MIN_ATTEMPT_SECONDS
                    )
                    if late:
                        wait = None
                    later = plan.models[position + 1 :]
                    if wait is not None:
                        then = f"retrying in {wait:g} s"
                    else:
                        then = f"trying fallback {later[0].spec.name}" if later else "giving up"
                    _log_failure(run, spec, exc, "before answering", then)
                    if wait is None:
                        break
                    await asyncio.sleep(wait)
                    continue
                run.model = spec.name
                run.messages_sent = len(fitted.messages)
                run.messages_dropped = fitted.dropped
                run.messages_summarized = fitted.summarized
                return
        assert last_error is not None
        raise last_error

    async def _stream_into(
        self, run: AgentRun, backend: ModelBackend, request: ModelRequest, step: _Step
    ) -> None:
        emit = run.emit
        content_parts = run.content_parts
        text = run.step_parts = step.text
        async for part in backend.stream(request):
            if step.first_token is None and type(part) in _OUTPUT_PARTS:
                step.first_token = time.perf_counter()
                run.model = step.model
            if type(part) is TextDelta:
                text.append(part.text)
                content_parts.append(part.text)
                emit(EventType.CONTENT, {"delta": part.text})
            elif type(part) is ReasoningDelta:
                step.reasoning.append(part.text)
                emit(EventType.THINKING, {"delta": part.text})
            elif type(part) is ToolCallPart:
                step.tool_calls.append(part)
            elif type(part) is UsagePart:
                step.usage = part.usage
                _add_usage(run.usage, part.usage)
            elif type(part) is FinishPart:
                step.finish_reason = part.reason
        if not (text or step.tool_calls or step.finish_reason in _CUT_OFF):
            # An empty answer (llama.cpp on a context overflow, a proxy saying "stop") is
            # not a success: nothing would be stored but an empty message.
            raise ModelError(
                f"{step.model}: the model returned no output", code="no_output", retryable=False
            )

    async def _run_tools(
        self,
        run: AgentRun,
        plan: RunPlan,
        calls: list[ToolCallPart],
        results: list[Message | None],
    ) -> None:
        """Run the calls concurrently, filling ``results`` (in the calls' order) as they finish.

        Cancelling the run cancels every call still running.
        """
        first = len(run.tool_calls)
        parsed = [parse_arguments(call.arguments) for call in calls]
        for call, (arguments, _) in zip(calls, parsed, strict=True):
            data = {"id": call.id, "name": call.name, "arguments": arguments}
            run.tool_calls.append(dict(data))
            run.emit(EventType.TOOL_CALL, data)
        tasks = {
            asyncio.ensure_future(self._call_tool(run, plan, call, *parsed[index])): index
            for index, call in enumerate(calls)
        }
        try:
            pending = set(tasks)
            while pending:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    index = tasks[task]
                    message = results[index] = task.result()
                    key = "error" if message.metadata["is_error"] else "result"
                    run.tool_calls[first + index][key] = message.content
                    run.emit(
                        EventType.TOOL_RESULT,
                        {
                            "id": calls[index].id,
                            "name": calls[index].name,
                            key: message.content,
                            "duration_ms": message.metadata["duration_ms"],
                        },
                    )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _call_tool(
        self,
        run: AgentRun,
        plan: RunPlan,
        call: ToolCallPart,
        arguments: dict[str, Any],
        problem: str | None,
    ) -> Message:
        started = time.perf_counter()
        try:
            content = await self._tool_output(run, plan, call, arguments, problem)
            is_error = False
        except ToolError as exc:
            content, is_error = f"error: {exc.message}", True
        except Exception as exc:
            content, is_error = f"error: {type(exc).__name__}: {exc}"[:2000], True
        return Message(
            role="tool",
            content=content,
            tool_call_id=call.id,
            name=call.name,
            metadata={
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "is_error": is_error,
            },
        )

    async def _tool_output(
        self,
        run: AgentRun,
        plan: RunPlan,
        call: ToolCallPart,
        arguments: dict[str, Any],
        problem: str | None,
    ) -> str:
        tool = plan.tools.get(call.name)
        if tool is None:
            available = ", ".join(sorted(plan.tools)) or "none"
            raise ToolError(f"unknown tool {call.name!r}; available tools: {available}")
        if problem:
            raise ToolError(f"{call.name}: {problem}")
        if tool.requires_approval:
            await self._approval(run, plan, call, arguments)
        limit = tool.timeout or plan.tool_timeout
        try:
            async with asyncio.timeout(limit):
                return await tool.run(arguments)
        except TimeoutError:
            raise ToolError(f"{call.name} timed out after {limit:g} s") from None

    async def _approval(
        self, run: AgentRun, plan: RunPlan, call: ToolCallPart, arguments: dict[str, Any]
    ) -> None:
        """Ask whether the call may run; ``ToolError`` ("… was not approved") if not.

        Every way of asking emits ``approval_required`` first: the callback's (library,
        terminal) with ``expires_at`` ``None``; the event stream's (server) with the time the
        wait ends, then polls the run store for the answer until then.
        """
        data: dict[str, Any] = {"id": call.id, "name": call.name, "arguments": arguments}
        if plan.approve is not None:
            run.emit(EventType.APPROVAL_REQUIRED, {**data, "expires_at": None})
            if not await plan.approve(call.name, arguments):
                raise ToolError(f"{call.name} was not approved: the user declined to run it")
            return
        timeout = plan.approval_timeout
        answer_of = run.approval_answer
        if timeout is None or answer_of is None:
            raise ToolError(
                f"{call.name} was not approved: it needs approval and no one is there to approve it"
            )
        expires_at = time.time() + timeout
        run.emit(EventType.APPROVAL_REQUIRED, {**data, "expires_at": expires_at})
        while True:
            answer = await answer_of(call.id)
            if answer is not None:
                break
            left = expires_at - time.time()
            if left <= 0:
                raise ToolError(f"{call.name} was not approved: no answer within {timeout:g} s")
            await asyncio.sleep(min(_APPROVAL_POLL_SECONDS, left))
        if not answer:
            raise ToolError(f"{call.name} was not approved: the user declined to run it")

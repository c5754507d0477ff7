"""An App at run time in a worker process: startup hooks, the state handlers see, shutdown.

    app = App([billing], lifespan=resources)          # an async context manager factory
    app = App([billing], state=Resources(), on_startup=[open_pool], on_shutdown=[close_pool])

Every worker of the process enters it (``run_worker``); the first one in
runs the startup, the last one out the shutdown, so several consumers in one
process (or a ``TestPipeline``) share one pool. With
``PIPELINE_OUTBOX_RELAY=true`` the process also runs the outbox relay. Handlers read the state
through ``Context.state`` and publish follow-ups through one publisher per
process, connected on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigurationError
from pipeline.publish.publisher import Publisher

if TYPE_CHECKING:
    from pipeline.app import App
    from pipeline.inbox import Inbox
    from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)

INBOX_PRUNE_EVERY_S = 3600.0

Hook = Callable[[Any], Awaitable[None] | None]
LifespanFactory = Callable[["App"], AbstractAsyncContextManager[Any]]


class State:
    """The default App state: set what handlers need as attributes in ``on_startup``."""

    def __repr__(self) -> str:
        return f"State({', '.join(sorted(vars(self)))})"


class AppRuntime:
    """Runs an App's hooks once per process and holds what handlers share."""

    def __init__(
        self,
        lifespan: LifespanFactory | None = None,
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
        state: Any = None,
    ) -> None:
        if lifespan is not None and (on_startup or on_shutdown):
            raise ConfigurationError(
                "give an App either lifespan=... or on_startup/on_shutdown hooks, not both "
                "(a lifespan does both: code before its yield starts, after it stops)"
            )
        for hook in (*on_startup, *on_shutdown):
            if not callable(hook):
                raise ConfigurationError(f"App hook {hook!r} is not callable")
        self._factory = lifespan
        self._on_startup = tuple(on_startup)
        self._on_shutdown = tuple(on_shutdown)
        self._initial_state = state
        self.state: Any = None
        self._users = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._publisher: Publisher | None = None
        self._settings: PipelineSettings | None = None

    @property
    def is_running(self) -> bool:
        return self._users > 0

    @contextlib.asynccontextmanager
    async def running(self, app: App, settings: PipelineSettings) -> AsyncIterator[Any]:
        """Start on the first entry, stop on the last exit; yields the state.

        Raises whatever a startup hook or the lifespan raises (the worker
        refuses to start), and ``ConfigurationError`` when a handler asks for
        a ``Context[T]`` whose ``T`` the state is not.
        """
        lock = self._lock_for_this_loop()
        async with lock:
            if self._users == 0:
                await self._start(app, settings)
            self._users += 1
        try:
            yield self.state
        finally:
            async with lock:
                self._users -= 1
                if self._users == 0:
                    await self._stop()

    async def publisher(self) -> Publisher:
        """The process's publisher for handlers' follow-up events, connected on first use.

        Raises ``ConfigurationError`` when the App is not running, and what
        ``Publisher.connect`` raises (``BrokerUnreachableError``).
        """
        if self._settings is None or self._lock is None or not self._users:
            raise ConfigurationError("the App is not running: no publisher for follow-ups")
        if self._publisher is None:
            async with self._lock:
                if self._publisher is None:
                    settings = self._settings
                    self._publisher = await Publisher.connect(
                        settings, f"{settings.service_name}.follow-ups")
        return self._publisher

    def _lock_for_this_loop(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._users:
                # An earlier event loop ended without stopping us (a test that
                # was torn down mid-way): what it held went with it.
                log.warning("App lifespan left running by an event loop that ended; "
                            "starting it again")
            self._loop, self._lock, self._users = loop, asyncio.Lock(), 0
            self._publisher = self._stack = None
        assert self._lock is not None
        return self._lock

    async def _start(self, app: App, settings: PipelineSettings) -> None:
        self._settings = settings
        stack = contextlib.AsyncExitStack()
        try:
            if self._factory is not None:
                yielded = await stack.enter_async_context(self._factory(app))
                self.state = yielded if yielded is not None else State()
            else:
                self.state = self._initial_state if self._initial_state is not None else State()
                for hook in self._on_startup:
                    await _call(hook, self.state)
                stack.push_async_callback(_run_all, self._on_shutdown, self.state)
            check_state(app.consumers.values(), self.state)
            if settings.outbox_relay:
                await stack.enter_async_context(_outbox_relay(settings))
            inboxes = list({id(c.inbox): c.inbox for c in app.consumers.values()
                            if c.inbox is not None}.values())
            if inboxes:
                pruning = asyncio.create_task(
                    _prune_inboxes(inboxes, self.state, settings), name="inbox-prune")
                stack.push_async_callback(_cancel, pruning)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        log.debug("App started (state %r)", self.state)

    async def _stop(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            with contextlib.suppress(Exception):
                await publisher.close()
        stack, self._stack = self._stack, None
        if stack is not None:
            try:
                await stack.aclose()
            except Exception:
                log.exception("App shutdown failed; the process stops anyway")


def _outbox_relay(settings: PipelineSettings) -> AbstractAsyncContextManager[Any]:
    """``PIPELINE_OUTBOX_RELAY=true``: this worker process relays the outbox too."""
    from pipeline.outbox.relay import OutboxRelay  # needs the outbox extra

    return OutboxRelay(settings)


async def _prune_inboxes(inboxes: Sequence[Inbox], state: Any,
                         settings: PipelineSettings) -> None:
    """Forget handled ids older than ``PIPELINE_INBOX_RETENTION``: at start, then hourly."""
    while True:
        for inbox in inboxes:
            try:
                pruned = await inbox.prune(state, settings.inbox_retention_age)
            except Exception as exc:  # the database is away: the next round tries again
                log.warning("pruning the inbox failed (%s: %s); trying again in an hour",
                            type(exc).__name__, exc)
            else:
                if pruned:
                    log.info("pruned %d inbox rows older than %s", pruned,
                             settings.inbox_retention)
        await asyncio.sleep(INBOX_PRUNE_EVERY_S)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _call(hook: Hook, state: Any) -> None:
    result = hook(state) if _takes_an_argument(hook) else hook()  # type: ignore[call-arg]
    if inspect.isawaitable(result):
        await result


async def _run_all(hooks: Iterable[Hook], state: Any) -> None:
    for hook in hooks:
        try:
            await _call(hook, state)
        except Exception:
            log.exception("on_shutdown hook %s failed; running the others",
                          getattr(hook, "__qualname__", hook))


def _takes_an_argument(hook: Hook) -> bool:
    try:
        return len(inspect.signature(hook).parameters) > 0
    except (TypeError, ValueError):
        return True


def check_state(consumers: Iterable[Any], state: Any) -> None:
    """Refuse to start when a handler's ``Context[T]`` does not match the App's state."""
    for consumer in consumers:
        for route in consumer.routes.values():
            expected = route.injection.state_type
            if isinstance(expected, type) and not isinstance(state, expected):
                raise ConfigurationError(
                    f"handler {route.handler_name} asks for Context[{expected.__name__}] but "
                    f"the App's state is a {type(state).__name__}: give the App state=... "
                    "or a lifespan that yields one"
                )

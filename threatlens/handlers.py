"""Django's ASGI handler, with request threads that outlive their requests.

Threads. Under ASGI, Django gives every request a thread of its own (a fresh
`ThreadSensitiveContext`), so the middleware, the view and the ORM share one thread. A
fresh thread also means a fresh database connection, since connections belong to their
thread: on SQLite every request opened one (with its PRAGMAs) and left it behind, 1-3 ms
of a 9 ms `POST /api/realtime/publish/`. Here the handler keeps the threads of finished
requests (`REQUEST_THREADS_KEPT` of them) and hands each new request an idle one, the way
a threaded WSGI server does: still one thread per request at a time, as many as there are
concurrent requests, but connections persist (CONN_MAX_AGE, CONN_HEALTH_CHECKS and
`close_old_connections` at the end of each request work as under WSGI). A thread beyond
the number kept closes its connections and ends.

The middleware. Django's ASGI handler builds an async middleware chain; every middleware
here is synchronous, so it adapts each one, and each `process_request`, `process_view`,
`process_response` and the view became a hop of its own from the event loop to the
request's thread and back (a dozen per request, most of the CPU of a small API call).
Here the chain is built synchronous, as under WSGI, and runs whole in the request's
thread: one hop for the middleware and the view. An async view or middleware, if one is
added, is adapted by Django as under WSGI.

Events the request publishes reach the hubs once its response is made
(`realtime.transport.sends_held_until_done`): a fan-out on the event loop then does not
compete for the interpreter lock with the rest of the request.
"""

import contextlib
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.db import connections

from realtime.transport import sends_held_until_done


class RequestThread(ThreadPoolExecutor):
    """A single-thread executor that knows whether work it was given is still running."""

    def __init__(self):
        super().__init__(max_workers=1, thread_name_prefix="request")
        self._unfinished = set()

    @property
    def busy(self):
        return bool(self._unfinished)

    def submit(self, fn, /, *args, **kwargs):
        future = super().submit(fn, *args, **kwargs)
        self._unfinished.add(future)
        # Runs before the awaiting coroutine hears of the result (callbacks run in the
        # order they were added, and the event loop adds its own after this).
        future.add_done_callback(self._unfinished.discard)
        return future


class RequestThreads:
    """Single-thread executors for requests, the idle ones kept for the next requests.

    Used from the event loop only (no lock needed). The most recently used thread is
    handed out first, so under a light load the same few threads serve and the others
    stay idle."""

    def __init__(self, kept):
        self.kept = kept
        self._idle = []

    @contextlib.asynccontextmanager
    async def thread(self):
        executor = self._idle.pop() if self._idle else RequestThread()
        try:
            async with ThreadSensitiveContext(executor=executor):
                yield
        finally:
            # A request given up on (its client went away) may leave its view running
            # in the thread: a thread still busy is not handed to the next request.
            if len(self._idle) < self.kept and not executor.busy:
                self._idle.append(executor)
            else:
                self._retire(executor)

    def close(self, wait=False):
        """Retire the idle threads (those of requests in progress stay theirs)."""
        while self._idle:
            self._retire(self._idle.pop(), wait)

    @staticmethod
    def _retire(executor, wait=False):
        # The thread's connections go with it, not at some later garbage collection.
        executor.submit(connections.close_all)
        executor.shutdown(wait=wait)


class ThreadKeepingASGIHandler(ASGIHandler):
    """Django's ASGI handler, each request in a kept thread of its own, its middleware and
    view run there in one go."""

    def __init__(self):
        self.request_threads = RequestThreads(settings.REQUEST_THREADS_KEPT)
        super().__init__()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)  # Django's own refusal
        async with self.request_threads.thread():
            await self.handle(scope, receive, send)

    def load_middleware(self, is_async=False):
        # The synchronous chain whatever Django asks for (see the module's docstring).
        super().load_middleware(is_async=False)

    async def get_response_async(self, request):
        async with sends_held_until_done():
            # BaseHandler.get_response: the synchronous chain, in the request's thread
            # (thread_sensitive: the thread ThreadSensitiveContext gave this request).
            return await sync_to_async(self.get_response, thread_sensitive=True)(request)


def get_asgi_application():
    """`django.core.asgi.get_asgi_application`, with request threads kept."""
    import django

    django.setup(set_prefix=False)
    return ThreadKeepingASGIHandler()

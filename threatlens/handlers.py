"""Django's ASGI handler, running the middleware and the view in one hop to a thread.

Every view here is synchronous (DRF, the admin, the UI's pages). Under ASGI, Django builds
an asynchronous middleware chain, and each `MiddlewareMixin` middleware runs its
`process_request` and `process_response` through its own `sync_to_async`: about fifteen
round trips between the event loop and the request's thread for one API call, before the
view's own. This handler builds Django's synchronous chain instead (the one WSGI runs) and
calls it through a single `sync_to_async`, in the same thread-sensitive context Django
would use, so the middleware, the view and the ORM still share one thread per request.

Events the request publishes reach the hubs once its synchronous part is done
(`realtime.transport.sends_held_until_done`): a fan-out on the event loop then does not
compete for the interpreter lock with the rest of the request.

An asynchronous view still works (Django's synchronous path runs it with
`async_to_sync`), it just gains nothing. In the benchmark this takes the server's CPU per
`POST /api/realtime/publish/` from about 10 to 7 ms, which is what bounds a burst of REST
publishes (bench/RESULTS.md).
"""

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler

from realtime.transport import sends_held_until_done


class OneHopASGIHandler(ASGIHandler):
    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)
        chain = sync_to_async(self._middleware_chain, thread_sensitive=True)

        async def middleware_chain(request):
            async with sends_held_until_done():
                return await chain(request)

        self._middleware_chain = middleware_chain


def get_asgi_application():
    """`django.core.asgi.get_asgi_application`, with the one-hop handler."""
    import django

    django.setup(set_prefix=False)
    return OneHopASGIHandler()

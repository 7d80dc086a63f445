"""The REST scoring server of ``seaice serve``: MLflow's own scoring app (what ``mlflow models serve``
runs) with its error replies cut to the one sentence that says what is wrong.

MLflow answers a bad request with HTTP 400 and a message that quotes the whole request array: a
request of the wrong channel count got "Failed to predict data '[[[[0. 0. 0. ... 0. 0. 0.] ...' ...
Failed to enforce schema of data '[[[[0. ...' with schema '...'. Error: Shape of input (1, 24, 64, 64)
does not match expected shape (-1, 29, -1, -1)." (about 2 KB of numbers, twice, around the cause).
:class:`OneLineErrors` keeps the cause, the text after MLflow's last ``Error:``, on one line, and
drops the server-side stack trace. Successful replies pass through untouched.

``seaice serve`` starts uvicorn on :func:`scoring_app` with the environment MLflow's own command sets
(:func:`mlflow.pyfunc.scoring_server.get_cmd`: the downloaded model's folder, the request timeout).
"""

from __future__ import annotations

import json

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

#: Longest error message kept (characters).
MESSAGE_LIMIT = 500


def one_line(message: str) -> str:
    """The cause of one of MLflow's error messages (after its last ``Error:``), on one line."""
    cause = message.rsplit("Error: ", 1)[-1]
    return " ".join(cause.split())[:MESSAGE_LIMIT]


def one_line_reply(body: bytes) -> bytes:
    """An error reply of MLflow's scoring server (JSON ``error_code``, ``message``, maybe
    ``stack_trace``) with its message cut to one line and no stack trace; other bodies as one line."""
    try:
        reply = json.loads(body)
        reply = reply if isinstance(reply, dict) else {"message": str(reply)}
    except ValueError:
        reply = {"message": body.decode(errors="replace")}
    kept = {key: reply[key] for key in ("error_code", "error_class") if key in reply}
    return json.dumps({**kept, "message": one_line(str(reply.get("message", "")))}).encode()


class OneLineErrors(BaseHTTPMiddleware):
    """Error replies (status >= 400) in one line (:func:`one_line_reply`)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        if response.status_code < 400:
            return response
        body = b"".join([chunk async for chunk in response.body_iterator])
        return Response(one_line_reply(body), status_code=response.status_code, media_type="application/json")


def scoring_app():
    """MLflow's scoring app for the model its environment names, with :class:`OneLineErrors`
    (a uvicorn ``--factory``)."""
    from mlflow.pyfunc.scoring_server.app import app  # loads the model the environment names

    app.add_middleware(OneLineErrors)
    return app

"""Step 2: what is asked. The front door parses its own body into Features; this step holds
what every front door's request must satisfy: a model that exists here, and the bounds."""

from __future__ import annotations

from collections.abc import Mapping

from router.core.model import Features
from router.errors import InvalidRequest, NotFound
from router.runtime import Runtime
from router.server.pipeline.door import FrontDoor
from router.types import JSONObject


def inspect(
    door: FrontDoor, body: JSONObject, headers: Mapping[str, str], runtime: Runtime
) -> tuple[Features, str | None]:
    """(features, the backend the client pinned or None for a routed alias)."""
    pinned = pinned_backend(door.model(body), runtime)
    features = door.parse(body, headers, runtime.tokens)
    limit = runtime.config.server.max_messages
    if features.message_count > limit:
        raise InvalidRequest(
            f"The request has {features.message_count} messages; the limit is {limit}.",
            param="messages",
            code="too_many_messages",
        )
    return features, pinned


def pinned_backend(model: object, runtime: Runtime) -> str | None:
    """The backend a client pinned, or None for a routed alias; 400 or 404 for anything else."""
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "`model` is required: use one of " + _models_hint(runtime) + ".",
            param="model",
            code="missing_model",
        )
    if model in runtime.config.backends:
        return model
    if model in runtime.aliases:
        return None
    raise NotFound(
        f"The model {model!r} does not exist here. Use one of "
        f"{_models_hint(runtime)} (GET /v1/models lists them).",
        param="model",
    )


def _models_hint(runtime: Runtime) -> str:
    return ", ".join(repr(name) for name in runtime.config.model_names())

"""The one place litellm is imported, lazily, with its cost map pinned to the local copy.

Importing litellm costs seconds and, by default, fetches its model cost map over the network;
neither belongs on start-up of a router that may never call a non-OpenAI provider.
"""

from __future__ import annotations

import os
from functools import cache
from types import ModuleType


@cache
def load_litellm() -> ModuleType:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    return litellm

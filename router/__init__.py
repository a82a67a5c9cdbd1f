"""Cost-aware OpenAI-compatible model router.

The public surface is the `router` command and the HTTP API; modules below are internal.
"""

__version__ = "0.1.0"

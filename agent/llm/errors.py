"""Model and provider failures, as one small hierarchy the agent and the CLI understand."""

from __future__ import annotations

import re


class ModelError(Exception):
    """A model call failed. `retryable` errors are retried with backoff before they reach the run."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ModelConnectionError(ModelError):
    retryable = True


class ModelTimeoutError(ModelConnectionError):
    pass


class RateLimitError(ModelError):
    retryable = True


class ServerError(ModelError):
    retryable = True


class StreamError(ModelError):
    """The stream broke off, or carried an error event after HTTP 200."""

    retryable = True


class AuthError(ModelError):
    pass


class BadRequestError(ModelError):
    pass


class ContextOverflowError(BadRequestError):
    """The request did not fit the model's context window. Triggers compaction, never a retry."""


# One pattern per provider family's wording (research/providers.md, F7).
_OVERFLOW_PATTERNS = [
    r"maximum context length",  # OpenAI, vLLM
    r"context[_ ]length[_ ]exceeded",  # OpenRouter, OpenAI code
    r"exceeded model token limit",  # Moonshot
    r"exceeds the (available )?context size",  # llama.cpp
    r"range of input length should be",  # DashScope
    r"prompt is too long",
    r"input (is )?too long",
    r"too many (input )?tokens",
    r"context window",
    r"reduce the length of the messages",
    r"max_tokens must be at least 1",  # vLLM when the prompt already fills the window
]
_OVERFLOW_RE = re.compile("|".join(_OVERFLOW_PATTERNS), re.IGNORECASE)


def is_context_overflow(message: str) -> bool:
    return bool(_OVERFLOW_RE.search(message or ""))

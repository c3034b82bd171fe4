"""Structured logs: one JSON object per line, with the request id, secrets redacted."""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import re
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# Anything shaped like a credential. Order matters: the specific forms come first so
# the generic "key=value" rule does not leave half a token behind. Upstreams echo keys
# half-masked ("sk-proj-abc1*****wxyz"), so "*" counts as part of a key.
SECRET_PATTERNS = [
    # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-), DeepSeek and most OpenAI-compatible APIs.
    re.compile(r"\bsk-[A-Za-z0-9_\-*]{6,}"),
    # Stripe-style live/test keys, Groq, Hugging Face, xAI, Replicate, GitHub, Slack.
    re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9*]{8,}"),
    re.compile(r"\b(?:gsk|hf|xai|r8|ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_*]{8,}"),
    re.compile(r"\bxai-[A-Za-z0-9*]{8,}"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-*]{8,}"),
    # Google API keys and AWS access key ids.
    re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    # JSON Web Tokens (three base64url parts, the first two JSON objects).
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-*]{8,}"),
    re.compile(r"gAAAAA[A-Za-z0-9_\-=]{20,}"),  # Fernet tokens (encrypted provider keys)
    re.compile(
        r"(?i)((?:api[_-]?key|x-api-key|password|secret|token)[\"']?\s*[:=]\s*[\"']?)"
        r"[^\s\"',}]{6,}"
    ),
]
REDACTED = "[REDACTED]"
# No pattern above matches fewer characters ("sk-" and six more).
_SHORTEST_MATCH = 9
# Text that every pattern above needs somewhere, lower-cased: without it none of them can
# match. It is searched for in the lower-cased text and every alternative is a plain
# literal, so that the regular expression engine skips the positions where none of them
# can start; with a case-insensitive part or a leading class it tried every alternative at
# nearly every position, about 100 ns per character, on every field of every access line.
_CANDIDATE = re.compile(
    r"sk-|sk_|rk_|pk_|hf_|xai|r8_|ghp_|gho_|ghs_|ghu_|github_pat_|xox|aiza|akia|asia|eyj"
    r"|gaaaaa|bearer|api_key|api-key|apikey|password|secret|token"
)
# A field whose name says it holds a secret is redacted whatever its value looks like.
_SECRET_NAME = re.compile(r"(?i)api[_-]?key|password|secret|token")


def redact(text: str, *, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` without secrets: the given ones (the credential in use, whatever its
    shape) and anything shaped like a credential. The one redaction function: logs,
    errors shown to clients and text stored for the admin all go through it."""
    if not text:
        return text
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    if len(text) < _SHORTEST_MATCH or not _CANDIDATE.search(text.lower()):
        return text  # nothing any pattern could match: most log fields, in one search
    for pattern in SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def redact_value(value, *, secrets: tuple[str, ...] | list[str] = ()):
    """``redact`` applied to every string inside a JSON-like value (an upstream's body)."""
    if isinstance(value, str):
        return redact(value, secrets=secrets)
    if isinstance(value, dict):
        return {key: redact_value(item, secrets=secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_value(item, secrets=secrets) for item in value]
    return value


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class RedactSecretsFilter(logging.Filter):
    """Rewrites every record so no handler ever sees a secret, whatever its format."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the record
            message = str(record.msg)
        record.msg = redact(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            # The text is already rendered and redacted; the formatter must not redo it.
            record.exc_info = None
        return True


# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged.
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


@functools.lru_cache(maxsize=1024)
def _names_a_secret(field: str) -> bool:
    return bool(_SECRET_NAME.search(field))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # The time, the level and the logger's name are the formatter's and the code's own
        # text, which holds no secret: they are not searched (unless a field replaced one).
        own = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
        }
        payload = {
            **own,
            "request_id": getattr(record, "request_id", request_id_var.get()),
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exception"] = record.exc_text
        # Each text is redacted on its own: one pass over the whole line cost a long record
        # (the access line) a millisecond, mostly on numbers that cannot hold a secret.
        # Anything else (a list, an object) is redacted in its JSON form, with its names.
        whole_line = False
        for key, value in payload.items():
            if value is own.get(key):
                continue
            if isinstance(value, str):
                payload[key] = REDACTED if _names_a_secret(key) else redact(value)
            elif not (value is None or isinstance(value, bool | int | float)):
                whole_line = True
        line = json.dumps(payload, default=str)
        return redact(line) if whole_line else line

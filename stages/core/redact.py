"""No secret is written: text a server sent back is scrubbed of keys before it reaches a file or log.

Servers echo credentials in their errors (OpenAI: `Incorrect API key provided: sk-…`; proxies:
`Bearer …`). Every message from a server that is stored (error columns, manifests, caches) or
printed goes through `redact`, which removes the keys the run was given and anything shaped like a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[redacted]"
KEY_SHAPED = re.compile(
    r"(?P<auth>(?i:bearer|basic)\s+)[^\s'\",;]+"  # an Authorization header's credential
    r"|\b(?:sk|pk|rk|sess)-[A-Za-z0-9_\-*.]{6,}"  # OpenAI-style keys (also masked ones: sk-proj-****abcd)
    r"|\b(?:hf|gh[pousr]|xox[abp]|AIza)_?[A-Za-z0-9_\-]{16,}"  # Hugging Face, GitHub, Slack, Google tokens
    r"|(?P<named>(?i:api[_-]?key|access[_-]?token|secret|password)[\"']?\s*[:=]\s*[\"']?)[^\s'\",;}]+")
MIN_SECRET = 4
"""Configured keys shorter than this are not searched for (they would mask ordinary words)."""


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every configured secret and every key-shaped string replaced by a mask."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET:
            text = text.replace(secret, MASK)
    return KEY_SHAPED.sub(lambda m: (m.group("auth") or m.group("named") or "") + MASK, text)

"""Kong's ``env`` vault: ``{vault://env/<name>}`` references in ``referenceable`` fields.

Kong resolves references when it reads a config back (``process_auto_fields(…, "select")``
with ``resolve_references``, kong/db/schema/init.lua): each reference becomes the secret, or
``""`` when it cannot be resolved (logged, never an error). Only the ``env`` vault
(kong/vaults/env/init.lua) is reproduced: the resource name, prefixed by the ``prefix``
query argument, upper-cased with ``-`` → ``_``, names an environment variable of the gateway
process; a ``#2`` version reads ``<NAME>_PREVIOUS``; a last path segment after the resource
is a key into the variable's JSON object (kong/pdk/vault.lua ``parse_reference``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("kong_harness.vault")


def is_reference(value: object) -> bool:
    """``kong.vault.is_reference``: a string ``{vault://…}``."""
    return isinstance(value, str) and value.startswith("{vault://") and value.endswith("}")


def _env_secret(reference: str, environ: Mapping[str, str]) -> str | None:
    url = urlsplit(reference[1:-1])
    if url.hostname != "env":
        log.warning(
            "unable to resolve reference %s (vault %r is not available in the "
            "harness; only env is)",
            reference,
            url.hostname,
        )
        return None
    parts = [unquote(part) for part in url.path.split("/")[1:]]
    if not parts or not parts[0]:
        return None
    key = parts.pop() if len(parts) > 1 and parts[-1] else None
    resource = "/".join(part for part in parts if part)
    prefix = parse_qs(url.query).get("prefix", [""])[0]
    name = (prefix + resource).upper().replace("-", "_")
    if url.fragment == "2":
        name += "_PREVIOUS"
    value = environ.get(name)
    if value is None or key is None:
        return value
    try:
        document = json.loads(value)
    except ValueError:
        return None
    found = document.get(key) if isinstance(document, dict) else None
    return found if isinstance(found, str) else None


def resolve_reference(reference: str, environ: Mapping[str, str] | None = None) -> str:
    """The referenced secret, or ``""`` (logged) when it cannot be resolved, as Kong does."""
    secret = _env_secret(reference, os.environ if environ is None else environ)
    if secret is None:
        log.warning("unable to resolve reference %s", reference)
        return ""
    return secret

"""JSON from outside (request bodies, tool-call arguments), parsed with limits.

    value = loads(body)        # JSONInputError (one line, no subject: "not UTF-8", ...) if refused

- nesting deeper than ``MAX_DEPTH`` levels is refused (JSONTooDeep): the standard library's
  json, Jinja's ``tojson`` and chat templates recurse, and ~1,000 levels ended in a
  RecursionError;
- NaN, Infinity and numbers too big for a double are refused: they are not JSON;
- lone surrogates (``"\\ud800"``) are accepted, since the counting contract counts them (orjson
  refuses them; the standard library, which takes them, parses those texts).
"""

from __future__ import annotations

import json
from typing import Any

#: the deepest nesting of arrays and objects accepted
MAX_DEPTH = 100


class JSONInputError(ValueError):
    """JSON refused; str() is one line without a subject ("not UTF-8", "not valid JSON: ...")."""


class JSONTooDeep(JSONInputError):
    pass


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def loads(data: bytes | str) -> Any:
    """Parse JSON text (bytes must be UTF-8); JSONInputError if refused."""
    import orjson

    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            text = data.decode("utf-8") if isinstance(data, bytes) else data
            value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
        except UnicodeDecodeError:
            raise JSONInputError("not UTF-8") from None
        except RecursionError:
            raise JSONTooDeep(f"nested more than {MAX_DEPTH} levels deep") from None
        except ValueError as exc:
            raise JSONInputError(f"not valid JSON: {str(exc).splitlines()[0][:200]}") from None
    if too_deep(value):
        raise JSONTooDeep(f"nested more than {MAX_DEPTH} levels deep")
    return value


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when arrays and objects in parsed JSON nest more than ``limit`` levels (walked level
    by level without recursion; a container holding only scalars is passed over at C speed)."""
    level = [value] if type(value) in (list, dict) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        inner = []
        for container in level:
            items = container.values() if type(container) is dict else container
            kinds = set(map(type, items))
            if list in kinds or dict in kinds:
                inner += [v for v in items if type(v) in (list, dict)]
        level = inner
    return False

"""Lua scripts whose keys and arguments have names.

A `Script` declares the names of its KEYS and ARGV; its body reads them as Lua locals of those names (a
preamble binds `KEYS[i]` and `ARGV[i]` to them), and callers pass them by name, so neither side counts
positions. `extra=True` lets a caller pass a variable tail of arguments after the named ones: the body reads
them as `unpack(ARGV, EXTRA)`; `extra_keys=True` likewise a tail of keys (`more_keys=`), from `KEYS[EXTRA_KEYS]`.

A script runs by its SHA1 (EVALSHA): its source (kilobytes) is not sent with every call. Called on its own it
falls back to EVAL when Redis does not know it (after a restart, a failover to a replica, SCRIPT FLUSH): the
NOSCRIPT reply means it did not run. A pipeline calling scripts (`pipeline`) loads them at its head (SCRIPT
LOAD, once per pipeline), so none of its calls meets NOSCRIPT: re-running a pipeline part of which ran would
count a job's attempt twice.

The preamble also holds `FINAL`, a Lua set of the final job statuses built from `records.FINAL`, so the
scripts test "already ended" (`if FINAL[status] then`) from the same constant as the Python code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.client import Pipeline
from redis.exceptions import NoScriptError

_SHEBANG = "#!lua"


def lua_set(name: str, members: Iterable[str]) -> str:
    """A Lua table used as a set: `local NAME = {A = true, ...}` (`NAME[x]` is nil for any other x)."""
    entries = ", ".join(f"[{json.dumps(str(member))}] = true" for member in sorted(members))
    return f"local {name} = {{{entries}}}"


@dataclass(frozen=True)
class Script:
    keys: Sequence[str]
    args: Sequence[str]
    body: str
    extra: bool = False
    extra_keys: bool = False
    preamble: Sequence[str] = ()  # further Lua lines to run first (constants the body reads)
    source: str = field(init=False)
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        shebang, body = "", self.body.lstrip("\n")
        if body.startswith(_SHEBANG):  # Redis reads script flags only on the first line
            shebang, body = body.split("\n", 1)
            shebang += "\n"
        lines = [*self.preamble]
        lines += [f"local {name} = KEYS[{i}]" for i, name in enumerate(self.keys, 1)]
        lines += [f"local {name} = ARGV[{i}]" for i, name in enumerate(self.args, 1)]
        if self.extra:
            lines.append(f"local EXTRA = {len(self.args) + 1}")
        if self.extra_keys:
            lines.append(f"local EXTRA_KEYS = {len(self.keys) + 1}")
        object.__setattr__(self, "source", shebang + "\n".join(lines) + "\n" + body)
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    def __call__(self, client: redis.Redis | Pipeline, *extra: Any, more_keys: Sequence[str] = (),
                 **named: Any) -> Any:
        """Run the script (or queue it on a pipeline) with its keys and arguments given by name."""
        missing = (set(self.keys) | set(self.args)) - set(named)
        unknown = set(named) - set(self.keys) - set(self.args)
        if missing or unknown or (extra and not self.extra) or (more_keys and not self.extra_keys):
            raise TypeError(f"script called with missing {sorted(missing)}, unknown {sorted(unknown)} or "
                            f"{len(extra) + len(more_keys)} unexpected extra arguments or keys")
        keys = [*(named[k] for k in self.keys), *more_keys]
        arguments = [len(keys), *keys, *(named[a] for a in self.args), *extra]
        if isinstance(client, Pipeline):
            return client.evalsha(self.sha, *arguments)
        try:
            return client.evalsha(self.sha, *arguments)
        except NoScriptError:
            return client.eval(self.source, *arguments)  # Redis keeps it: the next EVALSHA finds it


def pipeline(r: redis.Redis, scripts: Sequence[Script], fill: Callable[[Pipeline], None]) -> list[Any]:
    """Run, in one round trip, the calls `fill` queues on a pipeline, `scripts` (those it calls) loaded first;
    the replies of its calls."""
    with r.pipeline(transaction=False) as pipe:
        for script in scripts:
            pipe.script_load(script.source)
        fill(pipe)
        return pipe.execute()[len(scripts):]


__all__ = ["Script", "lua_set", "pipeline"]

"""The .env file: parse, validate, merge with defaults, write.

Invariants:
- A value the user set is never overwritten; missing keys are appended with
  their default (or a freshly generated secret), comments and order are kept.
- The file is written atomically with mode 0600; on any validation error
  nothing is written.
- The file is read exactly as compose v1.29 and v2 read it, and a line the two
  read differently (or would interpolate: ``$``) is refused naming line and key;
  tests/integration/test_envfile_vs_compose.py runs both binaries over a corpus.
- Every line written (``assignment``) reads back as its value in both.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from stackctl.config.settings import (
    BY_KEY,
    FOUNDRY_PORT_KEY,
    IMAGE_KEYS,
    MANAGED_KEYS,
    PORT_KEYS,
    SECRET_KEYS,
    SECTION_TITLES,
    SETTINGS,
)
from stackctl.console import cmd
from stackctl.errors import UsageError

_KEY_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")


@dataclass(frozen=True)
class EnvLine:
    """One line of the file: a comment/blank (key None) or an assignment."""

    raw: str
    key: str | None = None
    value: str | None = None


def parse(text: str, source: str = ".env") -> list[EnvLine]:
    """Parse .env text as compose reads it; raise UsageError naming every refused line at once.

    Accepted lines mean the same to compose v1.29 and v2 (inline ` #` comments,
    single and double quotes, ``export``, spaces around ``=``, CRLF, a BOM);
    a line the two read differently, or one compose would interpolate, is refused.
    """
    lines: list[EnvLine] = []
    problems: list[str] = []
    seen: set[str] = set()
    for n, raw in enumerate(_physical_lines(text), start=1):
        try:
            parsed = _parse_line(raw)
        except _Refused as r:
            problems.append(f"line {n}: {r}")
            continue
        if parsed is None:
            lines.append(EnvLine(raw))
            continue
        key, value = parsed
        if key in seen:
            problems.append(f"line {n}: {key} is set twice; keep one")
            continue
        seen.add(key)
        lines.append(EnvLine(raw, key, value))
    if problems:
        raise UsageError(f"{source}: " + "; ".join(problems) + " — fix or delete those lines and retry")
    return lines


def read(path: Path) -> list[EnvLine]:
    """Parse the file at ``path`` from its bytes (a lone CR must not become a line break)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: byte {e.start} is not UTF-8 — save the file as UTF-8 and retry") from None
    return parse(text, str(path))


def quote(key: str, value: str) -> str:
    r"""The VALUE text that both composes read back as exactly ``value``.

    Bare when nothing in it is special, else double-quoted with ``\\ \" \n \r \t``
    escaped. Raises ValueError for what no spelling carries through both:
    ``$`` (interpolated), other control characters, and a value that needs
    quotes but ends in a backslash (compose v1 reads ``\\"`` as an escaped quote).
    """
    bad = _odd_char(value.replace("\n", "").replace("\r", "").replace("\t", ""))
    if "$" in value or bad:
        raise ValueError(f"{key}: a value with {bad or '$'} cannot be written to .env")
    if _BARE_RE.fullmatch(value):
        return value
    if value.endswith("\\"):
        raise ValueError(f"{key}: a value that needs quotes cannot end in a backslash")
    body = "".join(_QUOTE.get(ch, ch) for ch in value)
    return f'"{body}"'


def assignment(key: str, value: str) -> EnvLine:
    """A ``KEY=VALUE`` line both composes read as ``value`` (see quote)."""
    return EnvLine(f"{key}={quote(key, value)}", key, value)


class _Refused(Exception):
    """One line compose v1 and v2 do not both read as we would; str() is the message."""


# What compose v1 (python-dotenv 0.21) and v2 (compose-go) decode the same way
# inside double quotes; every other escape differs between them (\' \$ \0 ...).
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}
_QUOTE = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BARE_RE = re.compile(r"[^\s#'\"$]*")
_ASSIGN_RE = re.compile(r"[ \t]*(?:export[ \t]+)?([^=]*?)[ \t]*=[ \t]*(.*)")
_TAIL_RE = re.compile(r"[ \t]*(?:#.*)?")
_FIX_DOLLAR = "compose would substitute a variable there — write the value without '$'"


def _physical_lines(text: str) -> list[str]:
    """Lines as both composes split them: a leading BOM dropped, LF or CRLF ends.

    Not str.splitlines(): it also breaks at \\v, \\f, U+2028 ..., which compose does not.
    """
    text = text.removeprefix("\ufeff")
    parts = text.split("\n")
    if parts and parts[-1] == "":
        parts.pop()
    return [p.removesuffix("\r") for p in parts]


def _odd_char(s: str) -> str:
    """The first control character or non-space/tab whitespace in ``s`` as U+XXXX, or ''."""
    for ch in s:
        if ch not in " \t" and (ch.isspace() or unicodedata.category(ch) in ("Cc", "Zl", "Zp")):
            return f"U+{ord(ch):04X}"
    return ""


def _parse_line(raw: str) -> tuple[str, str] | None:
    """(key, value) of one line, None for a blank or comment line; raise _Refused."""
    stripped = raw.strip(" \t")
    if not stripped or stripped.startswith("#"):
        return None
    m = _ASSIGN_RE.fullmatch(raw)
    if not m or not _KEY_RE.match(m.group(1)):
        raise _Refused(f"expected KEY=VALUE, got {_clip(stripped)!r}")
    key, rest = m.groups()
    bad = _odd_char(raw)
    if bad:
        what = "a carriage return (compose v1 reads it as a line break, v2 does not)" if bad == "U+000D" \
            else f"the character {bad}"
        raise _Refused(f"{key} contains {what} — remove it")
    if rest[:1] == "'":
        value, tail = _single_quoted(key, rest)
    elif rest[:1] == '"':
        value, tail = _double_quoted(key, rest)
    else:
        value, tail = _unquoted(key, rest), ""
    if not _TAIL_RE.fullmatch(tail):
        raise _Refused(f"{key} has text after its closing quote (compose v1 drops the line, v2 reads it "
                       "as another key) — put a comment after ' #' or move the text inside the quotes")
    if "$" in value:
        raise _Refused(f"{key} contains '$': {_FIX_DOLLAR}")
    return key, value


def _unquoted(key: str, rest: str) -> str:
    v1 = re.sub(r"\s+#.*", "", rest).rstrip()  # python-dotenv: any whitespace then '#'
    v2 = rest.split(" #", 1)[0].rstrip()  # compose-go: exactly ' #'
    if v1 != v2:
        raise _Refused(f"{key}: a tab before '#' starts a comment for compose v1 but not v2 — "
                       "use a space before an inline comment, or quote the value")
    return v1


def _single_quoted(key: str, rest: str) -> tuple[str, str]:
    end = rest.find("'", 1)
    if end < 0:
        raise _Refused(f"{key}: the single quote is not closed on this line — close it (values are one line)")
    body = rest[1:end]
    if "\\" in body:
        raise _Refused(f"{key}: a backslash inside single quotes reads differently in compose v1 and v2 "
                       "— use double quotes with \\\\ for a backslash")
    return body, rest[end + 1:]


def _double_quoted(key: str, rest: str) -> tuple[str, str]:
    out: list[str] = []
    i = 1
    while i < len(rest):
        ch = rest[i]
        if ch == "\\" and i + 1 < len(rest):
            esc = rest[i + 1]
            if esc not in _ESCAPES:
                raise _Refused(f"{key}: the escape \\{esc} is not supported (compose v1 and v2 read most "
                               "escapes differently) — use only \\n \\r \\t \\\" \\\\ inside double quotes")
            out.append(_ESCAPES[esc])
            i += 2
            continue
        if ch == '"':
            if rest[i - 1] == "\\":  # an escaped backslash: v1 still sees \"
                raise _Refused(f"{key}: a backslash just before the closing quote — compose v1 reads it as "
                               "an escaped quote; move it or write the value unquoted")
            return "".join(out), rest[i + 1:]
        out.append(ch)
        i += 1
    raise _Refused(f"{key}: the double quote is not closed on this line — close it (values are one line)")


def values(lines: list[EnvLine]) -> dict[str, str]:
    return {ln.key: ln.value for ln in lines if ln.key is not None and ln.value is not None}


def validate(env: dict[str, str], source: str = ".env") -> None:
    """Check the values of known keys; raise one UsageError listing all problems."""
    problems: list[str] = []
    ports: dict[str, int] = {}
    for key in dict.fromkeys((*PORT_KEYS, FOUNDRY_PORT_KEY)):
        v = env.get(key, "")
        if not v.isdigit() or not 1 <= int(v) <= 65535:
            problems.append(f"{key}={v!r} is not a port (1-65535)")
        else:
            ports[key] = int(v)
    clash: dict[int, str] = {}
    for key, port in ports.items():
        if port in clash:
            problems.append(f"{key} and {clash[port]} both use port {port}")
        clash[port] = key
    bind = env.get("STACK_BIND_ADDRESS", "")
    try:
        ipaddress.ip_address(bind)
    except ValueError:
        problems.append(f"STACK_BIND_ADDRESS={bind!r} is not an IP address (127.0.0.1 or 0.0.0.0)")
    endpoint = env.get("FOUNDRY_LOCAL_ENDPOINT", "")
    if endpoint and not re.match(r"^https?://[^/\s]+(/\S*)?$", endpoint):
        problems.append(f"FOUNDRY_LOCAL_ENDPOINT={endpoint!r} is not an http(s) URL")
    for key in (*IMAGE_KEYS, "COMPOSE_PROJECT_NAME"):
        if not env.get(key):
            problems.append(f"{key} is empty")
    name = env.get("COMPOSE_PROJECT_NAME", "")
    if name and not re.match(r"^[a-z0-9][a-z0-9_-]*$", name):
        problems.append(f"COMPOSE_PROJECT_NAME={name!r}: use lowercase letters, digits, '-' and '_'")
    for key in ("WEBUI_ADMIN_PASSWORD", "WEBUI_SECRET_KEY", "GRAFANA_ADMIN_PASSWORD"):
        if key in env and len(env[key]) < 12:
            problems.append(f"{key} is shorter than 12 characters; delete the line to generate one")
    email = env.get("WEBUI_ADMIN_EMAIL", "")
    if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
        problems.append(f"WEBUI_ADMIN_EMAIL={email!r} is not an email address")
    if problems:
        raise UsageError(f"{source}: " + "; ".join(problems))


def merge(lines: list[EnvLine]) -> tuple[list[EnvLine], list[str]]:
    """Return the lines with every missing known key appended, and the keys added."""
    out: list[EnvLine] = []
    added: list[str] = []
    for ln in lines:  # an empty secret (e.g. copied from .env.example) is not a value
        if ln.key in SECRET_KEYS and not ln.value:
            value = BY_KEY[ln.key].initial_value()
            ln = assignment(ln.key, value)
            added.append(ln.key)
        out.append(ln)
    have = values(out)
    section = None
    for s in SETTINGS:
        if s.key in have:
            continue
        if s.section != section:
            section = s.section
            if out and out[-1].raw.strip():
                out.append(EnvLine(""))
            out.append(EnvLine(f"# {SECTION_TITLES[section]}"))
        value = s.initial_value()
        out.append(assignment(s.key, value))
        added.append(s.key)
    return out, added


def render(lines: list[EnvLine]) -> str:
    """The file text; raises ValueError if a line's text does not read back as its value.

    Build changed lines with ``assignment`` (it quotes what needs quoting).
    """
    text = "".join(ln.raw + "\n" for ln in lines)
    if values(parse(text)) != values(lines):
        raise ValueError("an EnvLine's raw text does not read back as its value; build it with assignment()")
    return text


def render_example() -> str:
    """The committed .env.example: every key, its help, and its default."""
    out = [
        "# Foundry Local Chat Stack — configuration.",
        "# `./stack up` (Windows: `.\\stack up`) creates .env from these defaults (mode 0600) and never overwrites",
        "# a value you set. Secrets left empty here are generated on first run.",
    ]
    section = None
    for s in SETTINGS:
        if s.section != section:
            section = s.section
            out += ["", f"# == {SECTION_TITLES[section]} =="]
        out.append(f"# {s.help}")
        out.append(assignment(s.key, "" if s.secret or s.managed else s.default).raw)
    return "\n".join(out) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically (no half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".env.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure(path: Path) -> tuple[dict[str, str], list[str]]:
    """Create or complete the .env at ``path``; return (values, keys added).

    Idempotent: a complete, valid file is left byte-for-byte as it was (its
    mode is still tightened to 0600).
    """
    lines = read(path) if path.exists() else []
    merged, added = merge(lines)
    env = values(merged)
    validate(env, str(path))
    if added or not path.exists():
        write_atomic(path, render(merged))
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return env, added


def set_managed(path: Path, updates: dict[str, str]) -> bool:
    """Rewrite managed keys (see settings.MANAGED_KEYS) in place; True if anything changed.

    Only managed keys may be passed: user-owned values are never rewritten.
    """
    bad = set(updates) - MANAGED_KEYS
    if bad:
        raise ValueError(f"not managed keys: {sorted(bad)}")
    merged, _ = merge(read(path))
    out: list[EnvLine] = []
    changed = False
    for ln in merged:
        if ln.key in updates and ln.value != updates[ln.key]:
            ln = assignment(ln.key, updates[ln.key])
            changed = True
        out.append(ln)
    if changed:
        write_atomic(path, render(out))
    return changed


def load(path: Path) -> dict[str, str]:
    """Read an existing .env; keys it lacks take their defaults in memory.

    Raises UsageError when the file is missing, malformed, invalid, or lacks a
    generated secret (all of which `invoke up` repairs).
    """
    if not path.exists():
        raise UsageError(f"{path} does not exist — run `{cmd('up')}` (it creates it) and retry")
    env = values(read(path))
    missing = sorted(k for k in SECRET_KEYS if not env.get(k))
    if missing:
        raise UsageError(f"{path}: {', '.join(missing)} not set — run `{cmd('up')}` to generate them")
    full = {s.key: s.default for s in SETTINGS if not s.secret} | env
    validate(full, str(path))
    return full


def _clip(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"

"""Which Open WebUI an image holds, and whether data from another one may go into it.

How the version is determined (the image tag is not trusted: mirrors and local
stand-ins use their own tags): a throwaway container of the image runs PROBE, which
reads the installed package version (``importlib.metadata``; PyPI installs) or
``/app/package.json`` (the official image), and lists the alembic revision ids the
image's migrations know. A backup records the version of the image that wrote the
data; restore refuses it when it is newer than the current image's version, and
again (after staging) when webui.db's alembic revision is one the image does not know.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

PROBE = r"""
import importlib.metadata as md, importlib.util, json, pathlib, re
version = None
try:
    version = md.version("open-webui")
except Exception:
    for p in ("/app/package.json", "package.json", "../package.json"):
        try:
            version = json.load(open(p))["version"]
            break
        except Exception:
            pass
revisions = []
spec = importlib.util.find_spec("open_webui")
for loc in (spec.submodule_search_locations or []) if spec else []:
    for f in (pathlib.Path(loc) / "migrations" / "versions").glob("*.py"):
        m = re.search(r"^revision(?:\s*:\s*str)?\s*=\s*['\"]([0-9A-Za-z_]+)['\"]",
                      f.read_text(errors="replace"), re.M)
        if m:
            revisions.append(m.group(1))
print(json.dumps({"version": version, "revisions": sorted(set(revisions))}))
"""


@dataclass(frozen=True)
class ImageVersion:
    image: str
    version: str | None
    revisions: frozenset[str]


def parse_probe(image: str, output: str) -> ImageVersion:
    """ImageVersion from PROBE's output (its last JSON line). Pure."""
    for line in reversed(output.strip().splitlines()):
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if isinstance(d, dict):
            return ImageVersion(image, d.get("version") or None, frozenset(d.get("revisions") or ()))
    return ImageVersion(image, None, frozenset())


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """'v0.12.4' → (0, 12, 4); '0.6.5-rc1' → (0, 6, 5); junk → None. Pure."""
    m = re.match(r"^v?(\d+(?:\.\d+)*)", (text or "").strip())
    return tuple(int(x) for x in m.group(1).split(".")) if m else None


def is_newer(archive_version: str, image_version: str) -> bool:
    """True when data written by ``archive_version`` is too new for ``image_version``. Pure.

    Missing components count as 0 (0.12 == 0.12.0). Unparseable → ValueError.
    """
    a, b = parse_version(archive_version), parse_version(image_version)
    if a is None or b is None:
        bad = archive_version if a is None else image_version
        raise ValueError(f"cannot compare Open WebUI version {bad!r}")
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)) > b + (0,) * (width - len(b))

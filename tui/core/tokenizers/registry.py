"""Every tokenizer available offline: bundled, discovered on the machine, or added by the user.

Sources, in order (an id is taken by the first that has it):
1. ``bundled``  - the xz-compressed files in ``data/`` listed in ``data/manifest.json``;
2. ``builtin``  - the ``estimate`` heuristic;
3. ``user``     - the user store (``tokdeck tokenizers add``) and folders on ``TOKDECK_TOKENIZER_PATH``;
4. ``hf-cache`` - Hugging Face hub cache snapshots with a tokenizer file, id ``ORG/NAME``;
5. ``tiktoken-cache`` - tiktoken's download cache, id ``<encoding>@tiktoken-cache``.

Discovery only lists folders and reads small heads; nothing is loaded until ``get()``. Each
tokenizer loads once per Registry (thread-safe), its sha256 verified where one is known. A
broken entry gives a TokenizerError for that id only; the others keep working.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import lzma
import os
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

from ..errors import TokenizerError
from ..paths import user_tokenizer_store
from .base import EstimateTokenizer, Tokenizer, TokenizerInfo, first_line
from .loaders import FORMATS, build, find_tokenizer_file, read_tokenizer_file

DATA_DIR = Path(__file__).resolve().parent / "data"
LICENSE_DIR = DATA_DIR / "licenses"
STORE_META = "tokdeck.json"

# tiktoken names cached downloads by the sha1 of their URL.
TIKTOKEN_CACHE_NAMES = {
    "0ea1e91bbb3a60f729a8dc8f777fd2fc07cd8df4": "r50k_base",
    "ec7223a39ce59f226a68acc30dc1af2788490e15": "p50k_base",
    "9b5ad71b2ce5302211f9c61530b329a4922fc6a4": "cl100k_base",
    "fb374d419588a4632f3f557e76b4b70aebbca790": "o200k_base",
}

ESTIMATE_INFO = TokenizerInfo(
    id="estimate",
    name="Estimate (CJK/1.5 + other/4)",
    format="estimate",
    source="builtin",
    models=("any",),
    license=None,
    vocab_size=0,
    note="a character heuristic, not a tokenizer: always an estimate",
    approximate=True,
)


@lru_cache(maxsize=1)
def _manifest() -> dict[str, dict]:
    with open(DATA_DIR / "manifest.json", "rb") as fh:
        data = json.load(fh)
    return {entry["id"]: entry for entry in data["tokenizers"]}


def _info_from_manifest(entry: Mapping) -> TokenizerInfo:
    return TokenizerInfo(
        id=entry["id"],
        name=entry["name"],
        format=entry["format"],
        source="bundled",
        models=tuple(entry.get("models", ())),
        license=entry.get("license"),
        license_file=entry.get("license_file"),
        path=str(DATA_DIR / entry["file"]),
        sha256=entry.get("sha256"),
        vocab_size=entry.get("vocab_size"),
        package=entry.get("package"),
        package_version=entry.get("package_version"),
        registry=entry.get("registry"),
        path_in_package=entry.get("path_in_package"),
        note=entry.get("note"),
        approximate=bool(entry.get("approximate")),
    )


def _special_tokens(entry: Mapping) -> dict[str, int]:
    specials = dict(entry.get("special_tokens") or {})
    reserved = entry.get("reserved_special_range")
    if reserved:
        specials.update({f"<|reserved_{i}|>": i for i in range(reserved[0], reserved[1])})
    return specials


def bundled_ids() -> list[str]:
    return list(_manifest())


def hf_hub_cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def tiktoken_cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if env.get(var):
            return Path(env[var]).expanduser()
    return Path(tempfile.gettempdir()) / "data-gym-cache"


#: the environment variables a Registry reads (where the user store and the caches are)
REGISTRY_ENV = ("TOKDECK_TOKENIZER_PATH", "XDG_DATA_HOME", "HF_HUB_CACHE", "HF_HOME", "TIKTOKEN_CACHE_DIR",
                "DATA_GYM_CACHE_DIR")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Registry:
    """The tokenizers this process can use. Use ``default_registry()`` to share one per process."""

    def __init__(self, *, aliases: Mapping[str, str] | None = None, extra_paths: Iterable[str] = (),
                 env: Mapping[str, str] | None = None, discover: bool = True):
        self._env = dict(os.environ if env is None else env)
        self.aliases = dict(aliases or {})
        self._given_paths = [str(p) for p in extra_paths]
        path_var = self._env.get("TOKDECK_TOKENIZER_PATH", "")
        self._extra_paths = [Path(p).expanduser() for p in [*extra_paths, *path_var.split(os.pathsep)] if p]
        self._discover_enabled = discover
        self._infos: dict[str, TokenizerInfo] = {e["id"]: _info_from_manifest(e) for e in _manifest().values()}
        self._infos[ESTIMATE_INFO.id] = ESTIMATE_INFO
        self._discovered = False
        self._problems: list[str] = []
        self._loaded: dict[str, Tokenizer] = {}
        self._failed: dict[str, str] = {}
        self._lock = threading.Lock()
        self._id_locks: dict[str, threading.Lock] = {}

    def settings(self) -> dict:
        """What ``from_settings`` needs to build the same registry in another process (plain
        data; of the environment only the variables that say where tokenizers are)."""
        env = {k: v for k, v in self._env.items() if k in REGISTRY_ENV}
        return {"aliases": dict(self.aliases), "extra_paths": list(self._given_paths), "env": env,
                "discover": self._discover_enabled}

    @classmethod
    def from_settings(cls, settings: Mapping) -> "Registry":
        return cls(aliases=settings["aliases"], extra_paths=settings["extra_paths"], env=settings["env"],
                   discover=settings["discover"])

    # ----------------------------------------------------------------- listing
    def infos(self, include_discovered: bool = True) -> list[TokenizerInfo]:
        if include_discovered:
            self._ensure_discovered()
        return [i for i in self._infos.values() if include_discovered or i.source in ("bundled", "builtin")]

    def ids(self, include_discovered: bool = True) -> list[str]:
        return [i.id for i in self.infos(include_discovered)]

    @property
    def problems(self) -> list[str]:
        """One-line reasons why some discovered entries were skipped."""
        self._ensure_discovered()
        return list(self._problems)

    def info(self, tokenizer_id: str) -> TokenizerInfo:
        if tokenizer_id not in self._infos:
            self._ensure_discovered()
        try:
            return self._infos[tokenizer_id]
        except KeyError:
            hint = difflib.get_close_matches(tokenizer_id, list(self._infos), n=1)
            more = f"; did you mean {hint[0]!r}?" if hint else ""
            raise TokenizerError(
                f"unknown tokenizer {tokenizer_id!r} (see `tokdeck tokenizers list`){more}"
            ) from None

    # ----------------------------------------------------------------- loading
    def get(self, tokenizer_id: str) -> Tokenizer:
        """The loaded tokenizer; loads it on first use. Raises TokenizerError (one line)."""
        loaded = self._loaded.get(tokenizer_id)
        if loaded is not None:
            return loaded
        info = self.info(tokenizer_id)
        with self._lock:
            id_lock = self._id_locks.setdefault(tokenizer_id, threading.Lock())
        with id_lock:
            if tokenizer_id in self._loaded:
                return self._loaded[tokenizer_id]
            if tokenizer_id in self._failed:
                raise TokenizerError(self._failed[tokenizer_id])
            try:
                tok = self._load(info)
            except TokenizerError as exc:
                self._failed[tokenizer_id] = str(exc)
                raise
            except (OSError, MemoryError, lzma.LZMAError) as exc:
                msg = f"{tokenizer_id}: cannot read {info.path}: {first_line(exc)}"
                self._failed[tokenizer_id] = msg
                raise TokenizerError(msg) from None
            self._loaded[tokenizer_id] = tok
            return tok

    def is_loaded(self, tokenizer_id: str) -> bool:
        return tokenizer_id in self._loaded

    def failure(self, tokenizer_id: str) -> str | None:
        """Why this tokenizer could not be loaded, if loading it was tried and failed (or discovery
        already knew it was broken)."""
        info = self._infos.get(tokenizer_id)
        return self._failed.get(tokenizer_id) or (info.error if info else None)

    def _load(self, info: TokenizerInfo) -> Tokenizer:
        if info.error:
            raise TokenizerError(f"{info.id}: {info.error}")
        if info.format == "estimate":
            return EstimateTokenizer(info)
        assert info.path is not None
        path = Path(info.path)
        raw = read_tokenizer_file(path)
        data = lzma.decompress(raw) if path.suffix == ".xz" else raw
        if info.sha256 and hashlib.sha256(data).hexdigest() != info.sha256:
            raise TokenizerError(
                f"{info.id}: sha256 mismatch for {path.name} (expected {info.sha256[:12]}…): "
                "the file is corrupt or was changed"
            )
        entry = self._manifest_entry_for(info)
        return build(
            info,
            data,
            pattern=info.extra.get("pattern") or (entry or {}).get("pattern"),
            special_tokens=_special_tokens(entry) if entry else info.extra.get("special_tokens"),
            default_specials=(entry or {}).get("special_tokens_default"),
            verified=bool(info.sha256),
        )

    def _manifest_entry_for(self, info: TokenizerInfo) -> dict | None:
        manifest = _manifest()
        if info.source == "bundled":
            return manifest[info.id]
        base = info.extra.get("base")  # a discovered copy of a known file
        return manifest.get(base) if base else None

    # ----------------------------------------------------------------- discovery
    def _ensure_discovered(self) -> None:
        if self._discovered or not self._discover_enabled:
            return
        with self._lock:
            if self._discovered:
                return
            found: list[TokenizerInfo] = []
            found += self._discover_user_store(user_tokenizer_store(self._env))
            for folder in self._extra_paths:
                found += self._discover_folder(folder)
            found += self._discover_hf_cache(hf_hub_cache_dir(self._env))
            found += self._discover_tiktoken_cache(tiktoken_cache_dir(self._env))
            for info in found:
                if info.id in self._infos:
                    self._problems.append(
                        f"{info.path}: id {info.id!r} is already taken by a {self._infos[info.id].source} tokenizer; skipped"
                    )
                    continue
                self._infos[info.id] = info
            self._discovered = True

    def _entries(self, folder: Path) -> list[Path]:
        """A folder's entries, sorted; none (and a problem noted) if it cannot be listed."""
        try:
            return sorted(folder.iterdir())
        except OSError as exc:
            self._problems.append(f"{folder}: cannot list this folder ({exc.strerror or exc}); skipped")
            return []

    def _discover_user_store(self, store: Path) -> list[TokenizerInfo]:
        if not store.is_dir():
            return []
        out = []
        for entry in self._entries(store):
            meta_path = entry / STORE_META
            if not meta_path.is_file():
                continue
            try:
                meta = _store_meta(json.loads(meta_path.read_text("utf-8")))
                out.append(TokenizerInfo(
                    id=meta["id"], name=meta["id"], format=meta["format"], source="user",
                    path=str(entry / meta["file"]), sha256=meta.get("sha256"),
                    note=f"added from {meta.get('added_from', '?')}",
                    extra={"pattern": meta.get("pattern"), "base": meta.get("base")},
                ))
            except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
                self._problems.append(f"{meta_path}: unreadable store entry ({first_line(exc)}); skipped")
        return out

    def _discover_folder(self, folder: Path) -> list[TokenizerInfo]:
        if not folder.is_dir():
            why = "is not a folder" if folder.exists() else "does not exist"
            self._problems.append(f"{folder}: TOKDECK_TOKENIZER_PATH folder {why}; skipped")
            return []
        out = self._discover_user_store(folder)
        taken = {Path(i.path).parent for i in out if i.path}
        for entry in self._entries(folder):
            if entry in taken or entry.name.startswith("."):
                continue
            tid = entry.name if entry.is_dir() else entry.name.split(".")[0]
            try:
                file, fmt = find_tokenizer_file(entry)
            except TokenizerError as exc:
                if entry.is_dir() or entry.suffix in (".json", ".tiktoken", ".model"):
                    out.append(TokenizerInfo(id=tid, name=tid, format="unknown", source="user",
                                             path=str(entry), error=str(exc)))
                continue
            out.append(self._file_info(tid, file, fmt, "user"))
        return out

    def _file_info(self, tid: str, file: Path, fmt: str, source: str, **kw) -> TokenizerInfo:
        extra: dict = {}
        note = None
        if fmt == "tiktoken":
            base = self._known_tiktoken_file(file)
            if base:
                extra["base"] = base
                note = f"same ranks as bundled {base}"
            else:
                extra["pattern"] = _manifest()["cl100k_base"]["pattern"]
                note = "pre-tokenizer pattern assumed: cl100k_base's"
        return TokenizerInfo(id=tid, name=kw.pop("name", tid), format=fmt, source=source, path=str(file),
                             note=note, extra=extra, **kw)

    @staticmethod
    def _known_tiktoken_file(file: Path) -> str | None:
        size = file.stat().st_size
        for entry in _manifest().values():
            if entry["format"] == "tiktoken" and entry.get("size") == size and not entry.get("reserved_special_range"):
                if _sha256_file(file) == entry["sha256"]:
                    return entry["id"]
        return None

    def _discover_hf_cache(self, hub: Path) -> list[TokenizerInfo]:
        if not hub.is_dir():
            return []
        out = []
        for repo in self._entries(hub):
            parts = repo.name.split("--")[1:]
            if not repo.name.startswith("models--") or not parts:
                continue
            tid = "/".join(parts)
            try:
                snapshot = self._hf_snapshot(repo)
            except (OSError, UnicodeDecodeError) as exc:
                self._problems.append(f"{repo}: unreadable cache entry ({first_line(exc)}); skipped")
                continue
            if snapshot is None:
                continue
            try:
                file, fmt = find_tokenizer_file(snapshot)
            except TokenizerError:
                continue  # a model snapshot without a tokenizer (e.g. weights only)
            out.append(self._file_info(tid, file, fmt, "hf-cache", models=(tid,)))
        return out

    @staticmethod
    def _hf_snapshot(repo: Path) -> Path | None:
        snapshots = repo / "snapshots"
        ref = repo / "refs" / "main"
        if ref.is_file():
            commit = ref.read_text("utf-8").strip()
            if commit and Path(commit).name == commit and (snapshots / commit).is_dir():
                return snapshots / commit
        if not snapshots.is_dir():
            return None
        candidates = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        return candidates[-1] if candidates else None

    def _discover_tiktoken_cache(self, cache: Path) -> list[TokenizerInfo]:
        if not cache.is_dir():
            return []
        out = []
        manifest = _manifest()
        for sha1, enc in TIKTOKEN_CACHE_NAMES.items():
            path = cache / sha1
            if path.is_file():
                entry = manifest[enc]
                out.append(TokenizerInfo(
                    id=f"{enc}@tiktoken-cache", name=f"OpenAI {enc} (tiktoken cache)", format="tiktoken",
                    source="tiktoken-cache", models=tuple(entry.get("models", ())), license=entry.get("license"),
                    path=str(path), sha256=entry["sha256"], vocab_size=entry.get("vocab_size"),
                    extra={"base": enc},
                ))
        return out


def _store_meta(meta: object) -> dict:
    """A store entry's tokdeck.json, its fields checked (ValueError names the first bad one)."""
    if not isinstance(meta, dict):
        raise ValueError("not a JSON object")
    for key in ("id", "format", "file"):
        if not isinstance(meta.get(key), str) or not meta[key]:
            raise ValueError(f"{key!r} must be a non-empty string")
    if meta["format"] not in FORMATS:
        raise ValueError(f"unknown format {meta['format']!r}")
    if Path(meta["file"]).name != meta["file"] or meta["file"] in (".", ".."):
        raise ValueError(f"'file' must name a file in the entry's folder, not {meta['file']!r}")
    for key in ("sha256", "pattern", "base", "added_from"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise ValueError(f"{key!r} must be a string")
    if meta.get("base") is not None and meta["base"] not in _manifest():
        raise ValueError(f"'base' names no bundled tokenizer: {meta['base']!r}")
    return meta


_DEFAULT: Registry | None = None
_DEFAULT_LOCK = threading.Lock()


def default_registry() -> Registry:
    """The process-wide registry (aliases and extra paths from the user config)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            from ..config import load_config

            cfg = load_config(missing_ok=True)
            _DEFAULT = Registry(aliases=cfg.tokenizers.aliases, extra_paths=cfg.tokenizers.paths)
        return _DEFAULT


def reset_default_registry() -> None:
    global _DEFAULT
    with _DEFAULT_LOCK:
        _DEFAULT = None

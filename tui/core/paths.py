"""Where tokdeck keeps its files (XDG base directories, overridable by environment)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping


def _xdg(var: str, default: str, env: Mapping[str, str] | None = None) -> Path:
    value = (os.environ if env is None else env).get(var)
    return Path(value) if value and os.path.isabs(value) else Path.home() / default


def config_path() -> Path:
    """The config file: $TOKDECK_CONFIG, else $XDG_CONFIG_HOME/tokdeck/config.toml."""
    override = os.environ.get("TOKDECK_CONFIG")
    if override:
        return Path(override).expanduser()
    return _xdg("XDG_CONFIG_HOME", ".config") / "tokdeck" / "config.toml"


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """$XDG_DATA_HOME/tokdeck: the user tokenizer store and saved results live here."""
    return _xdg("XDG_DATA_HOME", ".local/share", env) / "tokdeck"


def user_tokenizer_store(env: Mapping[str, str] | None = None) -> Path:
    return data_dir(env) / "tokenizers"


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """$XDG_CACHE_HOME/tokdeck: files tokdeck can make again (tokenizer files made ready to load)."""
    return _xdg("XDG_CACHE_HOME", ".cache", env) / "tokdeck"


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None, sync: bool = True) -> None:
    """Write via a temporary file and rename, so a crash never leaves a half-written file.
    ``sync=False``: no fsync, for a cache (after a crash the file may be missing or damaged: its
    reader validates it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(tmp, flags, 0o666 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def decode_text(data: bytes, where: str) -> str:
    """Strict UTF-8 with a leading BOM dropped (encoding metadata, not text); a one-line error."""
    from .errors import TokdeckError

    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TokdeckError(f"{where}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


#: the most ``read_file_bytes`` reads (a text to count, a bench dataset, a saved result): beyond it
#: a file is not what the reader expects, and a stream that never ends (``cat /dev/zero |``) stops
MAX_READ_BYTES = 2 << 30


def read_file_bytes(path: str | Path, error: type[Exception] | None = None, limit: int = MAX_READ_BYTES) -> bytes:
    """A whole file's bytes, or ``error`` (TokdeckError by default) with one line naming ``path``
    for a missing file, a folder, a device, an unreadable file or one over ``limit`` bytes.
    A pipe (``<(cmd)``, a FIFO) is read to its end, up to ``limit``."""
    import stat

    from .errors import TokdeckError
    from .units import human_bytes

    error = error or TokdeckError
    p = Path(path).expanduser()
    try:
        mode = p.stat().st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            kind = "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"
            raise error(f"{path}: is {kind}, not a file")
        with open(p, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{path}: larger than {human_bytes(limit)}, more than tokdeck reads whole")
    return data


def read_text_file(path: str | Path) -> str:
    """A text file as the counting commands and the Tokens pane read it: strict UTF-8, BOM
    dropped; TokdeckError with one line for a missing, unreadable or undecodable file."""
    return decode_text(read_file_bytes(path), str(path))

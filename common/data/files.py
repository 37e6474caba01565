"""Where datasets live, how their files are checked, and how a missing one is fetched.

The data directory is, in order: the `data_dir` argument (`--data_dir`), `$KPB_DATA_DIR`, or Keras'
standard cache `~/.keras/datasets`. Files are read in their publishers' formats. A file that is
present but does not match its checksum is reported and left alone (never silently re-downloaded
over); a missing file is downloaded from the canonical URL only when `download=True`, into a
temporary name that is renamed once its checksum is verified.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError

ENV_VAR = "KPB_DATA_DIR"


class DataError(UserError, RuntimeError):
    """Missing, corrupt or unexpected data; the message says which file and what to do."""


@dataclass(frozen=True)
class RemoteFile:
    name: str  # file name under the data directory (may include a sub-folder)
    url: str
    md5: str  # the publisher's checksum of the file as downloaded


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        path, where = Path(explicit).expanduser(), "--data_dir"
    elif os.environ.get(ENV_VAR):
        path, where = Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    else:
        path, where = Path.home() / ".keras" / "datasets", "the default data directory"
    if path.exists() and not path.is_dir():
        raise DataError(f"{where} is {path}, which is a file, not a directory: point it at the folder that holds "
                        f"the datasets")
    return path


def check_readable(path: Path) -> Path:
    """`path`, if this process may read it; a DataError that says so otherwise (not "corrupt")."""
    if not os.access(path, os.R_OK) or (path.is_dir() and not os.access(path, os.X_OK)):
        raise DataError(f"{path} cannot be read: permission denied. Give this user read access to it "
                        f"(chmod / chown), or point --data_dir at a copy it can read.")
    return path


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    return file_digest(path, "md5", chunk)


def file_digest(path: Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, md5: str, what: str) -> None:
    actual = md5sum(path)
    if actual != md5:
        raise DataError(
            f"{path} is corrupt or not the {what}: md5 {actual}, expected {md5}. "
            f"It was left as it is; delete or replace it and run again."
        )


def fetch(spec: RemoteFile, root: Path, download: bool, what: str) -> Path:
    """The path of `spec` under `root`, downloading it first if it is missing and allowed."""
    path = root / spec.name
    if path.exists():
        return check_readable(path)
    if not download:
        raise DataError(missing_message(spec, root, what))
    import keras  # deferred: only a download needs it

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    print(f"Downloading {what} from {spec.url} to {path}")
    try:
        # get_file shows a progress bar; the checksum is verified by us, below, so that a bad
        # download is reported instead of quietly retried.
        keras.utils.get_file(fname=partial.name, origin=spec.url, cache_dir=str(partial.parent),
                             cache_subdir=".")
    except Exception as e:  # URLError, HTTPError, timeouts: all mean "could not download"
        partial.unlink(missing_ok=True)
        raise DataError(f"could not download {spec.url} ({e}). " + missing_message(spec, root, what)) from e
    verify(partial, spec.md5, what)
    partial.rename(path)
    return path


def missing_message(spec: RemoteFile, root: Path, what: str) -> str:
    return (
        f"{what}: {root / spec.name} not found. Download {spec.url} (md5 {spec.md5}) and put it "
        f"there, or point --data_dir / ${ENV_VAR} at a directory that has it."
    )


def tree_sha256(folder: Path, files: list[Path]) -> str:
    """SHA-256 over the lines '<sha256 of file>  <path relative to folder's parent>' of `files` in sorted
    order (what `find TREE -type f | LC_ALL=C sort | xargs sha256sum | sha256sum` prints for the whole tree)."""
    lines = []
    for path in sorted(files, key=lambda p: p.relative_to(folder.parent).as_posix().encode()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(folder.parent).as_posix()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def corpus_folder(data_dir_: str | os.PathLike | None, name: str, how: str) -> Path:
    """The folder `name` in the data directory, or one line saying it is missing and `how` to get it."""
    folder = data_dir(data_dir_) / name
    if not folder.is_dir():
        raise DataError(f"{folder} not found: {how}, or point --data_dir at the folder that holds {name}/")
    return folder


def class_folder_files(folder: Path, classes, corpus: str, name: re.Pattern | None = None,
                       name_form: str = "", glob: str = "*") -> list[tuple[Path, re.Match | None]]:
    """The files `folder/<class>/<glob>` of a corpus laid out one folder per class, in sorted order, each with
    its file name matched against `name` (None where no name is imposed). A folder that is not one of
    `classes`, or a file name that does not match, is refused in one line naming the file."""
    found = []
    for path in sorted(folder.glob(f"*/{glob}")):
        if path.parent.name not in classes:
            raise DataError(f"{path}: unknown class folder {path.parent.name!r} ({corpus} has {', '.join(classes)})")
        match = None if name is None else name.match(path.name)
        if name is not None and match is None:
            raise DataError(f"{path}: not a {corpus} file name ({name_form})")
        found.append((path, match))
    return found

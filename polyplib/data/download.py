"""Download, verify (SHA-256 recorded at first download) and extract datasets into the registry layout (notes §4)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pooch

from polyplib.data.registry import data_root, get_spec, locate
from polyplib.errors import ConfigError, DataError

ENV_URL = "POLYPLIB_DOWNLOAD_URL"
REGISTRY_FILE = "registry.json"


@dataclass(frozen=True)
class Archive:
    """One published archive: direct URL or Google-Drive id, and the top folder it puts under the data root."""

    filename: str
    folder: str
    url: str | None = None
    gdrive_id: str | None = None


ARCHIVES = {
    "kvasir-seg": Archive("kvasir-seg.zip", "Kvasir-SEG", url="https://datasets.simula.no/downloads/kvasir-seg.zip"),
    "pranet-train": Archive("TrainDataset.zip", "TrainDataset", gdrive_id="1YiGHLw4iTvKdvbT6MgwO9zcCv8zJ_Bnb"),
    "pranet-test": Archive("TestDataset.zip", "TestDataset", gdrive_id="1Y2z7FD5p5y31vkZwQQomXFRB0HutHyao"),
}


def _registry(downloads: Path) -> dict:
    path = downloads / REGISTRY_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); fix or delete it (hashes are then recorded anew)") from exc


def _record(downloads: Path, archive: Archive, path: Path, source: str) -> None:
    registry = _registry(downloads)
    registry[archive.filename] = {"sha256": pooch.file_hash(str(path), alg="sha256"), "source": source,
                                  "bytes": path.stat().st_size,
                                  "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    tmp = downloads / f".{REGISTRY_FILE}.tmp"
    tmp.write_text(json.dumps(registry, indent=2, sort_keys=True))
    os.replace(tmp, downloads / REGISTRY_FILE)


def _verify(path: Path, entry: dict) -> None:
    actual = pooch.file_hash(str(path), alg="sha256")
    if actual != entry["sha256"]:
        raise DataError(f"{path} has SHA-256 {actual}, but {entry['sha256']} was recorded at its first download "
                        f"({entry.get('recorded')}, from {entry.get('source')}): the file is corrupted or was "
                        f"replaced. Delete it and run download again (or remove its entry from {REGISTRY_FILE} "
                        f"if the publisher changed the archive).")


def fetch(key: str, root: str | os.PathLike | None = None, base_url: str | None = None) -> Path:
    """The archive under <root>/downloads: verified against the recorded SHA-256, downloaded when absent."""
    archive = ARCHIVES[key]
    downloads = data_root(root) / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    path, entry = downloads / archive.filename, _registry(downloads).get(archive.filename)
    if path.is_file():
        if entry:
            _verify(path, entry)
        else:
            _record(downloads, archive, path, "found on disk")
        return path
    base_url = base_url or os.environ.get(ENV_URL)
    url = f"{base_url.rstrip('/')}/{archive.filename}" if base_url else archive.url
    if url:
        try:
            pooch.retrieve(url, known_hash=f"sha256:{entry['sha256']}" if entry else None, fname=archive.filename,
                           path=downloads, progressbar=True)
        except ValueError as exc:
            raise DataError(f"download of {url} failed verification: {exc}. The archive differs from the one "
                            f"recorded in {downloads / REGISTRY_FILE}; remove that entry only if the publisher "
                            f"changed it.") from exc
        except Exception as exc:
            raise DataError(f"cannot download {url} ({type(exc).__name__}: {exc}); check the connection, set "
                            f"${ENV_URL} to a mirror, or put the file at {path} by hand") from exc
    else:
        _gdrive(archive, path)
        if entry:
            _verify(path, entry)
    if not entry:  # pooch already checked a URL download against the recorded hash
        _record(downloads, archive, path, url or f"gdrive:{archive.gdrive_id}")
    return path


def _gdrive(archive: Archive, path: Path) -> None:
    import gdown

    partial = path.with_name(path.name + ".part")
    try:
        result = gdown.download(id=archive.gdrive_id, output=str(partial), quiet=False)
    except Exception as exc:
        result, error = None, f"{type(exc).__name__}: {exc}"
    else:
        error = "no file returned"
    if result is None or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise DataError(f"cannot download {archive.filename} from Google Drive id {archive.gdrive_id} ({error}); "
                        f"fetch https://drive.google.com/file/d/{archive.gdrive_id} by hand into {path}, or set "
                        f"${ENV_URL} to a mirror that serves {archive.filename}")
    os.replace(partial, path)


def extract(key: str, path: Path, root: str | os.PathLike | None = None) -> Path:
    """Unzip into a scratch folder and move the archive's top folder to <root>/<folder>, replacing an old copy."""
    archive, base = ARCHIVES[key], data_root(root)
    scratch = Path(tempfile.mkdtemp(prefix=".extract-", dir=base))
    try:
        try:
            with zipfile.ZipFile(path) as handle:
                handle.extractall(scratch)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DataError(f"cannot extract {path} ({exc}); the archive is truncated or not a zip: delete it and "
                            f"run download again") from exc
        top = _find_folder(scratch, archive.folder)
        if top is None:
            found = sorted(p.name for p in scratch.iterdir())
            raise DataError(f"{path} has no folder {archive.folder!r} (top level: {found}): not the expected archive")
        target = base / archive.folder
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(top), target)
        return target
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _find_folder(scratch: Path, name: str, depth: int = 3) -> Path | None:
    """The first folder called `name` (any case) at most `depth` levels down, ignoring __MACOSX."""
    level = [scratch]
    for _ in range(depth):
        level = sorted(p for folder in level for p in folder.iterdir() if p.is_dir() and p.name != "__MACOSX")
        for candidate in level:
            if candidate.name.lower() == name.lower():
                return candidate
    return None


def download(name: str, root: str | os.PathLike | None = None, *, base_url: str | None = None,
             force: bool = False) -> Path:
    """Fetch (pooch; gdown for Drive), verify and extract the archive holding `name`; returns the dataset folder."""
    spec = get_spec(name)
    if spec.archive is None:
        raise ConfigError(f"dataset {name!r} has no public archive; place it under the data root by hand")
    if not force:
        try:
            folder = locate(name, root)[0]
        except DataError:
            pass
        else:
            archive_path = data_root(root) / "downloads" / ARCHIVES[spec.archive].filename
            if archive_path.is_file():
                fetch(spec.archive, root, base_url)
            return folder
    extract(spec.archive, fetch(spec.archive, root, base_url), root)
    return locate(name, root)[0]

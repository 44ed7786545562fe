"""The DVC remote: which plugin its URL needs, whether it answers, and its failures as sentences.

DVC reaches cloud storage through plugins (``dvc-s3``, ``dvc-gs``, ``dvc-azure``, ...). A missing
one surfaces deep inside DVC as an ``ImportError`` ("s3 is supported, but requires 'dvc-s3'");
here it is one sentence naming the gitops extra that installs it (:func:`plugin_problem`), which
every verb that pushes checks before it commits anything. :func:`probe` asks a cloud remote once
whether its bucket exists and the credentials are accepted, so a wrong key or a missing bucket
is one sentence too (fsspec's convention, which s3fs, gcsfs and adlfs follow: ``PermissionError``
for refused credentials, ``FileNotFoundError`` for what does not exist). :func:`translated` gives
the same sentences for a push or pull that fails half-way.

Nothing here imports DVC at module level: :func:`plugin_problem` only asks whether the plugin's
module can be found.
"""

from __future__ import annotations

import configparser
import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gitops.errors import DvcError

# URL scheme -> (the module DVC imports for it, the gitops extra that installs it, or None: the
# DVC plugin's own package). DVC's own list is dvc_objects.fs.known_implementations.
PLUGINS: dict[str, tuple[str, str | None]] = {
    "s3": ("dvc_s3", "s3"),
    "gs": ("dvc_gs", "gs"),
    "azure": ("dvc_azure", "azure"),
    "ssh": ("dvc_ssh", None),
    "http": ("dvc_http", None),
    "https": ("dvc_http", None),
    "webdav": ("dvc_webdav", None),
    "webdavs": ("dvc_webdav", None),
    "hdfs": ("dvc_hdfs", None),
    "webhdfs": ("dvc_webhdfs", None),
    "oss": ("dvc_oss", None),
    "gdrive": ("dvc_gdrive", None),
}
# Where each cloud's credentials go; never in .dvc/config, which is committed.
CREDENTIALS = {
    "s3": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, or "
          "'dvc remote modify --local storage access_key_id ...' (.dvc/config.local, never committed)",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS in the environment, or "
          "'dvc remote modify --local storage credentialpath FILE' (.dvc/config.local, never committed)",
    "azure": "AZURE_STORAGE_CONNECTION_STRING in the environment, or "
             "'dvc remote modify --local storage connection_string ...' (.dvc/config.local, never committed)",
}
CLIENT_PACKAGES = ("botocore", "aiobotocore", "boto3", "s3fs", "google", "gcsfs", "azure", "adlfs")
# Remote options that are secrets: written to .dvc/config.local, never to the committed .dvc/config.
SECRET_OPTIONS = frozenset({"access_key_id", "secret_access_key", "session_token", "account_key", "sas_token",
                            "connection_string", "client_secret", "password", "gdrive_client_secret",
                            "key_file", "credentialpath"})


def scheme_of(url: str | None) -> str | None:
    """``s3`` for ``s3://bucket/path``; None for a local path (or a ``file://`` URL)."""
    if not url or "://" not in url:
        return None
    scheme = url.split("://", 1)[0].lower()
    return None if scheme in ("file", "local") else scheme


def install_hint(scheme: str) -> str:
    module, extra = PLUGINS[scheme]
    return f"pip install 'gitops-registry[{extra}]'" if extra else f"pip install {module.replace('_', '-')}"


def plugin_problem(url: str | None) -> str | None:
    """One sentence when DVC cannot use a remote at ``url`` here (its plugin is not installed, or
    DVC knows no such scheme); None when it can. Cheap: the plugin is looked up, not imported."""
    scheme = scheme_of(url)
    if scheme is None:
        return None
    if scheme not in PLUGINS:
        return (f"the DVC remote {url} has a scheme DVC does not support ('{scheme}://'; supported: "
                f"{', '.join(sorted(PLUGINS))}, or a local directory)")
    module = PLUGINS[scheme][0]
    if module in sys.modules and sys.modules[module] is not None:
        return None
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return None
    return f"the DVC remote {url} needs DVC's {scheme} plugin, which is not installed: {install_hint(scheme)}"


def refused(url: str, exc: BaseException) -> str:
    scheme = scheme_of(url) or ""
    hint = CREDENTIALS.get(scheme, "check the remote's credentials (.dvc/config.local or the environment)")
    return f"the DVC remote {url} refused the credentials ({_reason(exc)}); set them as {hint}"


def no_credentials(url: str) -> str:
    scheme = scheme_of(url) or ""
    hint = CREDENTIALS.get(scheme, "the remote's credentials in .dvc/config.local or the environment")
    return f"the DVC remote {url} found no credentials here; set them as {hint}"


def unreachable(url: str, exc: BaseException) -> str:
    return f"cannot reach the DVC remote {url}: {_reason(exc)}"


def missing_bucket(url: str, bucket: str) -> str:
    return (f"the DVC remote {url}: bucket '{bucket}' does not exist (create it, or correct the URL with "
            "'dvc remote modify storage url ...')")


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def probe(fs: Any, path: str, url: str) -> str | None:
    """Ask a cloud remote once whether it answers: None, or one sentence (refused credentials, a
    missing bucket, no connection). ``fs``/``path``: DVC's filesystem and path of the remote. A
    local remote is not probed (``dvc push`` creates its directory)."""
    if scheme_of(url) is None:
        return None
    bucket = path.strip("/").split("/", 1)[0]
    try:
        fs.ls(path.rstrip("/"), detail=False)  # one listing of the remote's top: 'files/' at most
        return None
    except PermissionError as exc:
        return _classified(url, exc)
    except FileNotFoundError:
        pass  # nothing pushed yet, or no bucket: ask about the bucket
    except Exception as exc:  # noqa: BLE001 - clients raise their own types (botocore, google.auth, azure)
        return _classified(url, exc)
    try:
        return None if fs.exists(bucket) else missing_bucket(url, bucket)
    except Exception as exc:  # noqa: BLE001 - as above
        return _classified(url, exc)


def _classified(url: str, exc: BaseException) -> str:
    text = f"{type(exc).__name__} {exc}".lower()
    if "nocredentials" in text or "unable to locate credentials" in text or "defaultcredentialserror" in text:
        return no_credentials(url)
    if isinstance(exc, PermissionError) or any(w in text for w in ("credential", "accessdenied", "forbidden",
                                                                   "signature", "invalidaccesskey", "403")):
        return refused(url, exc)
    return unreachable(url, exc)


@contextlib.contextmanager
def translated(url: str | None, action: str) -> Iterator[None]:
    """Failures of a push or pull from the remote at ``url`` as one sentence each (a DvcError)."""
    try:
        yield
    except ImportError as exc:
        problem = plugin_problem(url)
        raise DvcError(problem or f"DVC could not load what {action} needs: {_reason(exc)}") from None
    except PermissionError as exc:
        raise DvcError(_classified(url or "(none)", exc)) from None
    except FileNotFoundError as exc:
        if scheme_of(url) is not None and "bucket" in str(exc).lower():
            raise DvcError(f"{action}: {missing_bucket(url or '', _bucket(url))}") from None
        raise
    except OSError as exc:
        if scheme_of(url) is None:
            raise
        raise DvcError(f"{action}: {unreachable(url or '', exc)}") from None
    except Exception as exc:  # the cloud clients' own exceptions (botocore's NoCredentialsError)
        if scheme_of(url) is None or type(exc).__module__.split(".")[0] not in CLIENT_PACKAGES:
            raise
        raise DvcError(f"{action}: {_classified(url or '', exc)}") from None


def _bucket(url: str | None) -> str:
    return (url or "").split("://", 1)[-1].split("/", 1)[0]


def link_worktree(main_root: Path, tree: Path, cache_dir: Path) -> None:
    """Write ``tree/.dvc/config.local`` for a linked worktree of the repository at ``main_root``:
    the repository's own local settings (credentials), its DVC cache (shared, so nothing is stored
    twice) and its remotes' relative URLs made absolute (a relative URL is relative to the
    repository's ``.dvc``, not the worktree's)."""
    main = main_root / ".dvc"
    config = configparser.ConfigParser(interpolation=None, strict=False)
    config.read([main / "config.local"], encoding="utf-8")
    merged = configparser.ConfigParser(interpolation=None, strict=False)
    merged.read([main / "config", main / "config.local"], encoding="utf-8")
    for section in merged.sections():
        url = merged.get(section, "url", fallback=None)
        if section.startswith("'remote") and url and "://" not in url and not os.path.isabs(url):
            config.setdefault(section, {})
            config.set(section, "url", os.path.normpath(main / url))
    config.setdefault("cache", {})
    config.set("cache", "dir", str(cache_dir))
    target = tree / ".dvc" / "config.local"
    with open(target, "w", encoding="utf-8") as fh:
        config.write(fh)

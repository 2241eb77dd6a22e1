"""Where MLflow data goes: `--mlflow_uri` values turned into a tracking URI and artifact folder."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from control.errors import ConfigError

DB_FILE_NAME = "mlflow.db"
ARTIFACT_DIR_NAME = "mlartifacts"
# Schemes MLflow's client talks to directly (servers and SQLAlchemy databases).
_PASS_THROUGH_SCHEMES = {"http", "https", "databricks", "postgresql", "mysql", "mssql", "sqlite"}


@dataclass(frozen=True)
class TrackingTarget:
    """A tracking URI, and for local stores the folder new experiments keep their artifacts in."""

    tracking_uri: str
    artifact_location: str | None = None

    @property
    def is_local(self) -> bool:
        """True for a store on this machine's disk (no server involved)."""
        return self.tracking_uri.startswith("sqlite:")


def default_tracking_uri(results_dir: Path) -> str:
    """The local store `make train_mlflow` uses when MLFLOW_URI is unset: <results_dir>/mlflow.db."""
    return f"sqlite:///{Path(results_dir).resolve() / DB_FILE_NAME}"


def resolve_tracking_uri(uri: str) -> TrackingTarget:
    """Map an http(s) server, a `sqlite:///…` file or a local folder (`file:` or plain path) to a target.

    A folder becomes a SQLite store inside it (`<folder>/mlflow.db`, artifacts in
    `<folder>/mlartifacts`): MLflow 3 refuses its old file store unless
    MLFLOW_ALLOW_FILE_STORE is set, and SQLite is what `mlflow ui` reads by default.
    """
    uri = str(uri).strip()
    if not uri:
        raise ConfigError("--mlflow_uri is empty; give an http(s)://host:port server, sqlite:///path.db or a folder")
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    # 'C:\\runs' parses with scheme 'c': a one-letter scheme is a Windows drive.
    if scheme in ("", "file") or len(scheme) == 1:
        folder = Path(parsed.path if scheme == "file" else uri).expanduser().resolve()
        return TrackingTarget(f"sqlite:///{folder / DB_FILE_NAME}", str(folder / ARTIFACT_DIR_NAME))
    base_scheme = scheme.split("+", 1)[0]
    if base_scheme not in _PASS_THROUGH_SCHEMES:
        raise ConfigError(
            f"--mlflow_uri '{uri}' has scheme '{scheme}'; use http(s)://host:port, sqlite:///path.db or a folder"
        )
    if base_scheme == "sqlite":
        # sqlite:///rel.db is relative to the current folder, sqlite:////abs.db absolute;
        # made absolute here so a later change of folder cannot move the store.
        db_text = parsed.path[1:]
        if db_text in ("", ".", "/") or parsed.query:
            raise ConfigError(f"--mlflow_uri '{uri}' names no plain database file; e.g. sqlite:///results/mlflow.db")
        db_path = Path(db_text).expanduser().resolve()
        return TrackingTarget(f"sqlite:///{db_path}", str(db_path.parent / ARTIFACT_DIR_NAME))
    return TrackingTarget(uri)


def prepare_local_store(target: TrackingTarget) -> None:
    """Create the folder a local SQLite store lives in (SQLite does not create parent folders)."""
    if target.is_local:
        Path(urlparse(target.tracking_uri).path[1:]).parent.mkdir(parents=True, exist_ok=True)


def uri_without_credentials(uri: str) -> str:
    """`uri` with any user:password@ removed, safe to write into a run folder."""
    parsed = urlparse(uri)
    if parsed.username is None and parsed.password is None:
        return uri
    host = parsed.hostname or ""
    netloc = f"{host}:{parsed.port}" if parsed.port else host
    return urlunparse(parsed._replace(netloc=netloc))

"""Shared fixtures of the tests. Core test modules opt in with `pytestmark = pytest.mark.usefixtures("core_env")`."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def reference_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One $INFOGAN_CACHE_DIR for the session: the reference classifier is fitted once, never in ~/.cache."""
    return tmp_path_factory.mktemp("infogan-cache")


@pytest.fixture(scope="module")
def core_env(reference_cache_dir: Path):
    """One torch thread and a private reference-classifier cache while a core test module runs.

    The core tests train networks of a few thousand parameters: on a 2-core machine shared with
    other work, intra-op threads cost several times more than they give (measured: 300 ring8 steps
    take ~1.4 s on one thread, 7-13 s on two under load). Restored when the module ends.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INFOGAN_CACHE_DIR", str(reference_cache_dir))
        yield
    torch.set_num_threads(threads)


# --- sweep: one Ray instance for the session, tiny studies on disk ----------------------------

TINY_BASE = {
    "dataset": "ring8",
    "arch": "mlp",
    "cat_codes": [8],
    "cont_codes": 0,
    "noise_dim": 4,
    "batch_size": 32,
    "g_width": 0.25,
    "d_width": 0.25,
    "eval_samples": 200,
}


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for every test that needs it (starting Ray takes ~5 s on 2 cores)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def write_study(path: Path, **overrides) -> Path:
    """A tiny ring8 ablation (2 configurations x 2 seeds, 20 steps) as YAML, with overrides."""
    study = {
        "name": "tiny",
        "claim": "separate BN batches in D cover more modes than no BN",
        "kind": "ablation",
        "base": dict(TINY_BASE, d_batchnorm="none"),
        "factors": {"d_batchnorm": ["separate"]},
        "seeds": 2,
        "objectives": ["eval/modes"],
        "budget": {"steps": 20, "report_every": 10},
    }
    study.update(overrides)
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


@pytest.fixture
def tiny_study(tmp_path: Path) -> Path:
    return write_study(tmp_path / "tiny.yaml")


@pytest.fixture(scope="session")
def make_study():
    """write_study as a fixture: make_study(path, **overrides) -> path."""
    return write_study


# --- PostgreSQL: one real server for the session, in a temporary folder ---------------------------


@dataclass
class Postgres:
    """A PostgreSQL server of this test session: `url(name)` creates a fresh database and returns its URL."""

    port: int
    created: list[str] = field(default_factory=list)
    restart: Callable[[], None] = lambda: None  # stop the server (fast: connections cut) and start it again

    def url(self, name: str, *, password: str = "s3cret") -> str:
        """A new, empty database `name`: its URL in the form the README shows (postgresql://user:password@...).
        The server trusts loopback connections, so the password only has to be hidden from every message."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=sweep dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return f"postgresql://sweep:{password}@127.0.0.1:{self.port}/{name}"


def _postgres_bin() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, or where Debian's `postgresql` package puts them."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL server on a free loopback port, its cluster in a temporary folder, stopped and removed
    at the end of the session. initdb refuses to run as root (CI runs as root), so there the server runs as
    the `postgres` account that Debian's package creates."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip(reason="PostgreSQL is not installed (apt-get install -y postgresql: initdb and pg_ctl)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[postgres]')")
    as_user: dict = {}
    folder = Path(tempfile.mkdtemp(prefix="sweep-pg-"))  # not under pytest's tmp: that is private to root
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            pytest.skip(reason="running as root, and there is no `postgres` account to run PostgreSQL as")
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "HOME": str(folder)}

    def pg(*args: str) -> None:
        proc = subprocess.run(args, capture_output=True, text=True, cwd=folder, env=env, timeout=120, **as_user)
        assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout}\n{proc.stderr}"

    data = folder / "data"
    pg(str(bindir / "initdb"), "-D", str(data), "-U", "sweep", "--auth=trust", "-E", "UTF8", "--no-sync")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c fsync=off"
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start")

    def restart() -> None:
        pg(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(folder / "server.log"),
            "-m",
            "fast",
            "-w",
            "restart",
        )

    try:
        yield Postgres(port, restart=restart)
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)

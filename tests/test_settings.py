"""core.settings: every environment variable read, checked and documented in one place, and nowhere else."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import BadInputError, Reason
from core.settings import (
    DEFAULT_COST_PER_UNIT_HOUR,
    DEFAULT_MAX_CLIP_SECONDS,
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_PREFIX,
    DEFAULT_PROJECT,
    NAMES,
    VARIABLES,
    AuthMode,
    CloudConfig,
    Settings,
    TrainFrom,
    settings,
)

ROOT = Path(__file__).resolve().parents[1]
TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:machine-flags"
SECRET_HOOK = "https://hooks.slack.com/services/T0001/B0002/Zs3cr3tT0k3n"

FULL_ENV = {
    "DATA_DIR": "/srv/plant",
    "DATABASE_URL": "postgresql+psycopg://triage:pw@db.example.com/triage",
    "MAX_CLIP_SECONDS": "30.5",
    "MAX_SAMPLE_RATE": "48000",
    "DEMO_PLANT": "off",
    "MAX_UPLOAD_MB": "0.5",
    "MAX_DOWNLOAD_MB": "750",
    "NOTIFY_WEBHOOK_URL": SECRET_HOOK,
    "NOTIFY_SNS_TOPIC_ARN": TOPIC_ARN,
    "PUBLIC_URL": "https://triage.example.com/plant/",
    "REKOGNITION_BUCKET": "my-bucket",
    "REKOGNITION_PREFIX": "/plant/sounds/",
    "REKOGNITION_PROJECT": "fans",
    "REKOGNITION_REGION": "eu-west-1",
    "REKOGNITION_PROFILE": "ops",
    "REKOGNITION_INFERENCE_UNITS": "3",
    "REKOGNITION_COST_PER_UNIT_HOUR": "4.5",
    "AWS_REGION": "us-east-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
    "S3_CACHE_DIR": "/srv/plant/s3",
    "S3_CACHE_MB": "0.25",
    "TF_CPP_MIN_LOG_LEVEL": "0",
    "RAY_ADDRESS": "ray://ray-head.plant.svc:10001",
    "INGEST_ROOTS": os.pathsep.join(["/srv/plant/incoming", " /mnt/recorder/ ", ""]),
    "AUTH": "oidc",
    "AUTH_ROLE_CLAIM": "groups",
    "BLIND_REVIEW": "no",
    "OVERLAP_FRACTION": "0.25",
    "TRAIN_FROM_VERDICTS": "Any",
}


def test_the_table_names_each_variable_once_with_a_default_and_a_meaning():
    assert len(set(NAMES)) == len(NAMES) == len(VARIABLES)
    assert set(FULL_ENV) == set(NAMES)  # the test below sets every variable
    for variable in VARIABLES:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", variable.name)
        assert variable.default and len(variable.description) > 10


def test_defaults_when_nothing_is_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    current = Settings.from_env({})
    assert current == Settings(data_dir=(tmp_path / "data").resolve())
    assert current.data_dir == (tmp_path / "data").resolve() and current.data_dir.is_absolute()
    assert current.database_url is None
    assert current.demo_plant is True
    assert current.max_upload_mb == DEFAULT_MAX_UPLOAD_MB == 200 and current.max_upload_bytes == 200_000_000
    assert current.max_download_mb == 500
    assert current.max_clip_seconds == DEFAULT_MAX_CLIP_SECONDS == 600
    assert (current.notify_webhook_url, current.notify_sns_topic_arn, current.aws_region) == (None, None, None)
    assert current.public_url is None
    assert current.cloud == CloudConfig() == CloudConfig.from_env({})
    assert (current.cloud.prefix, current.cloud.project) == (DEFAULT_PREFIX, DEFAULT_PROJECT)
    assert current.cloud.cost_per_unit_hour == DEFAULT_COST_PER_UNIT_HOUR
    assert current.tensorflow_notices is False
    assert current.ray_address is None  # --engine ray starts Ray locally
    assert (current.auth, current.auth_role_claim, current.blind_review) == (AuthMode.NONE, "roles", True)
    assert current.ingest_roots == (current.data_dir,)  # the default follows DATA_DIR
    assert (current.overlap_fraction, current.train_from_verdicts) == (0.1, TrainFrom.TRUSTED)
    assert current.aws_endpoint_url is None
    assert (current.s3_cache_dir, current.s3_cache_bytes) == (current.data_dir / "s3-cache", 1_024_000_000)


def test_empty_or_blank_values_count_as_unset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({name: "" for name in NAMES}) == Settings.from_env({})
    assert Settings.from_env({name: "  " for name in NAMES}) == Settings.from_env({})


def test_every_variable_is_parsed():
    current = Settings.from_env(FULL_ENV)
    assert current.data_dir == Path("/srv/plant")
    assert current.database_url == FULL_ENV["DATABASE_URL"]
    assert current.demo_plant is False
    assert current.max_upload_mb == 0.5 and current.max_upload_bytes == 500_000 and current.max_download_mb == 750
    assert current.max_clip_seconds == 30.5 and current.max_sample_rate == 48_000
    assert current.notify_webhook_url == SECRET_HOOK
    assert current.notify_sns_topic_arn == TOPIC_ARN
    assert current.public_url == "https://triage.example.com/plant"  # links are built under it
    assert current.cloud == CloudConfig(bucket="my-bucket", prefix="plant/sounds", project="fans", region="eu-west-1",
                                        profile="ops", inference_units=3, cost_per_unit_hour=4.5)  # fmt: skip
    assert current.aws_region == "us-east-1"
    assert current.tensorflow_notices is True
    assert current.ray_address == "ray://ray-head.plant.svc:10001"
    assert (current.auth, current.auth_role_claim, current.blind_review) == (AuthMode.OIDC, "groups", False)
    assert current.ingest_roots == (Path("/srv/plant/incoming"), Path("/mnt/recorder"))
    assert (current.overlap_fraction, current.train_from_verdicts) == (0.25, TrainFrom.ANY)
    assert current.aws_endpoint_url == "http://127.0.0.1:5000"
    assert (current.s3_cache_dir, current.s3_cache_mb, current.s3_cache_bytes) == (Path("/srv/plant/s3"), 0.25, 250_000)


@pytest.mark.parametrize("value", ["ftp://127.0.0.1", "localhost:5000", "http://key:secret@127.0.0.1:5000"])
def test_an_endpoint_url_must_be_http_without_credentials_and_is_never_quoted(value):
    with pytest.raises(BadInputError) as caught:
        Settings.from_env({"AWS_ENDPOINT_URL": value})
    assert "AWS_ENDPOINT_URL" in caught.value.detail and value not in caught.value.detail
    assert "secret" not in caught.value.detail


@pytest.mark.parametrize("value", ["0", "-1", "lots"])
def test_the_s3_cache_size_must_be_positive(value):
    with pytest.raises(BadInputError, match="S3_CACHE_MB"):
        Settings.from_env({"S3_CACHE_MB": value})


@pytest.mark.parametrize(("value", "expected"), [("0", 0.0), ("1", 1.0), (" 0.5 ", 0.5), ("1e-1", 0.1)])
def test_overlap_fraction_takes_any_number_from_0_to_1(value, expected):
    assert Settings.from_env({"OVERLAP_FRACTION": value}).overlap_fraction == expected


@pytest.mark.parametrize("value", ["none", "local", "oidc", " LOCAL "])
def test_auth_modes(value):
    assert Settings.from_env({"AUTH": value}).auth == AuthMode(value.strip().lower())


def test_ingest_roots_are_made_absolute_and_default_to_data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    roots = Settings.from_env({"INGEST_ROOTS": os.pathsep.join(["incoming", "../elsewhere"])}).ingest_roots
    assert roots == ((tmp_path / "incoming").resolve(), (tmp_path.parent / "elsewhere").resolve())
    assert Settings.from_env({"DATA_DIR": "plant"}).ingest_roots == ((tmp_path / "plant").resolve(),)
    assert Settings.from_env({"INGEST_ROOTS": os.pathsep}).ingest_roots == ((tmp_path / "data").resolve(),)


def test_secrets_are_not_in_the_repr():
    shown = repr(Settings.from_env(FULL_ENV))
    assert "Zs3cr3t" not in shown and ":pw@" not in shown


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("YES", True), ("on", True), (" 0 ", False), ("False", False), ("no", False),
     ("off", False)],
)  # fmt: skip
def test_demo_plant_values(value, expected):
    assert Settings.from_env({"DEMO_PLANT": value}).demo_plant is expected


@pytest.mark.parametrize(("value", "shown"), [("3", False), ("2", True), ("1", True), ("0", True)])
def test_tensorflow_notices_follow_tensorflows_own_variable(value, shown):
    assert Settings.from_env({"TF_CPP_MIN_LOG_LEVEL": value}).tensorflow_notices is shown


BAD_VALUES = [
    ("DATABASE_URL", "/var/lib/anomaly.db"),
    ("MAX_CLIP_SECONDS", "long"),
    ("MAX_SAMPLE_RATE", "fast"),
    ("MAX_SAMPLE_RATE", "0"),
    ("MAX_CLIP_SECONDS", "0"),
    ("MAX_CLIP_SECONDS", "-5"),
    ("MAX_CLIP_SECONDS", "inf"),
    ("DEMO_PLANT", "maybe"),
    ("MAX_UPLOAD_MB", "abc"),
    ("MAX_DOWNLOAD_MB", "0"),
    ("MAX_UPLOAD_MB", "0"),
    ("MAX_UPLOAD_MB", "-1"),
    ("MAX_UPLOAD_MB", "nan"),
    ("NOTIFY_WEBHOOK_URL", "hooks.slack.com/services/T0001/B0002/Zs3cr3tT0k3n"),
    ("NOTIFY_WEBHOOK_URL", "ftp://example.com/hook"),
    ("NOTIFY_WEBHOOK_URL", "https://bot:Zs3cr3t@hooks.example.com/services/T0001"),
    ("NOTIFY_SNS_TOPIC_ARN", "machine-flags"),
    ("PUBLIC_URL", "triage.example.com"),
    ("PUBLIC_URL", "https://triage.example.com/?page=triage"),
    ("REKOGNITION_REGION", "Europe West"),
    ("REKOGNITION_INFERENCE_UNITS", "two"),
    ("REKOGNITION_INFERENCE_UNITS", "1.5"),
    ("REKOGNITION_INFERENCE_UNITS", "0"),
    ("REKOGNITION_COST_PER_UNIT_HOUR", "cheap"),
    ("REKOGNITION_COST_PER_UNIT_HOUR", "-1"),
    ("AWS_REGION", "us east 1"),
    ("TF_CPP_MIN_LOG_LEVEL", "quiet"),
    ("RAY_ADDRESS", "ray-head 10001"),
    ("AUTH", "ldap"),
    ("AUTH", "yes"),
    ("BLIND_REVIEW", "sometimes"),
    ("OVERLAP_FRACTION", "1.5"),
    ("OVERLAP_FRACTION", "-0.1"),
    ("OVERLAP_FRACTION", "nan"),
    ("OVERLAP_FRACTION", "a tenth"),
    ("TRAIN_FROM_VERDICTS", "all"),
    ("AWS_ENDPOINT_URL", "s3.local:9000"),
    ("S3_CACHE_MB", "0"),
    ("S3_CACHE_MB", "a gigabyte"),
]
SECRET_VARIABLES = {"DATABASE_URL", "NOTIFY_WEBHOOK_URL", "AWS_ENDPOINT_URL"}


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_a_bad_value_is_refused_naming_the_variable(name, value):
    with pytest.raises(BadInputError) as caught:
        Settings.from_env({name: value})
    assert caught.value.reason is Reason.INVALID_PARAMETER
    assert name in str(caught.value)
    if name in SECRET_VARIABLES:  # may hold a password or a token: never echoed
        assert value not in str(caught.value) and "Zs3cr3t" not in str(caught.value)
    else:
        assert repr(value) in str(caught.value)


def test_every_variable_with_a_rule_has_a_bad_value_tested():
    free_text = {"DATA_DIR", "REKOGNITION_BUCKET", "REKOGNITION_PREFIX", "REKOGNITION_PROJECT", "REKOGNITION_PROFILE",
                 "INGEST_ROOTS", "AUTH_ROLE_CLAIM", "S3_CACHE_DIR"}  # fmt: skip
    assert {name for name, _ in BAD_VALUES} == set(NAMES) - free_text


def test_a_public_url_with_a_password_is_refused_without_showing_it():
    with pytest.raises(BadInputError, match=r"^PUBLIC_URL must not carry a user name or password") as caught:
        Settings.from_env({"PUBLIC_URL": "https://ops:Zs3cr3t@triage.example.com"})
    assert "Zs3cr3t" not in str(caught.value)


def test_the_message_of_a_bad_upload_limit():
    with pytest.raises(BadInputError, match=r"MAX_UPLOAD_MB must be a positive number of megabytes, got 'abc'"):
        Settings.from_env({"MAX_UPLOAD_MB": "abc"})


@pytest.mark.parametrize(
    "url",
    [
        "https://bot:Zs3cr3t@hooks.example.com/x",
        "http://Zs3cr3t@127.0.0.1:8080/x",
        "https://:Zs3cr3t@hooks.example.com/x",
        "https://@hooks.example.com/x",
    ],
)
def test_a_webhook_url_with_a_user_name_or_password_is_refused(url):
    with pytest.raises(BadInputError, match="^NOTIFY_WEBHOOK_URL must not carry a user name or password") as caught:
        Settings.from_env({"NOTIFY_WEBHOOK_URL": url})
    assert "Zs3cr3t" not in str(caught.value)


def test_settings_follows_the_environment_of_the_moment(data_dir, monkeypatch):
    assert settings().data_dir == data_dir.resolve()  # conftest's DATA_DIR for this test
    assert settings().demo_plant is False  # conftest sets DEMO_PLANT=0
    monkeypatch.setenv("DEMO_PLANT", "1")
    monkeypatch.setenv("MAX_UPLOAD_MB", "7")
    monkeypatch.setenv("MAX_CLIP_SECONDS", "12")
    assert (settings().demo_plant, settings().max_upload_bytes, settings().max_clip_seconds) == (True, 7_000_000, 12)
    monkeypatch.setenv("MAX_UPLOAD_MB", "oops")
    with pytest.raises(BadInputError, match="MAX_UPLOAD_MB"):
        settings()
    monkeypatch.delenv("MAX_UPLOAD_MB")
    assert settings().max_upload_mb == DEFAULT_MAX_UPLOAD_MB


def test_the_database_layer_takes_its_settings_from_here(data_dir, monkeypatch, tmp_path):
    from db.session import data_dir as db_data_dir
    from db.session import database_url

    assert db_data_dir() == settings().data_dir == data_dir.resolve()
    assert database_url() == f"sqlite:///{data_dir.resolve() / 'anomaly.db'}"
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "elsewhere"))
    assert db_data_dir() == (tmp_path / "elsewhere").resolve()
    monkeypatch.setenv("DATABASE_URL", "sqlite:///other.db")
    assert database_url() == "sqlite:///other.db"


def test_workflows_take_their_settings_from_here(monkeypatch):
    from core.workflows.bootstrap import demo_enabled
    from core.workflows.notify import channels_from
    from core.workflows.uploads import max_upload_bytes

    monkeypatch.setenv("MAX_UPLOAD_MB", "3")
    monkeypatch.setenv("DEMO_PLANT", "yes")
    monkeypatch.setenv("NOTIFY_SNS_TOPIC_ARN", TOPIC_ARN)
    monkeypatch.delenv("NOTIFY_WEBHOOK_URL", raising=False)
    assert (max_upload_bytes(), demo_enabled()) == (3_000_000, True)
    assert [(c.kind, c.target) for c in channels_from()] == [("sns", TOPIC_ARN)]
    monkeypatch.setenv("NOTIFY_WEBHOOK_URL", "not a url/Zs3cr3t")
    with pytest.raises(BadInputError, match="NOTIFY_WEBHOOK_URL") as caught:
        channels_from()
    assert "Zs3cr3t" not in str(caught.value)


def test_ingest_refuses_clips_longer_than_max_clip_seconds(monkeypatch, tmp_path):
    from core.signal.audio import DEFAULT_MAX_DURATION_S
    from core.workflows.ingest import ingest
    from tests.conftest import tone, write_wav

    assert DEFAULT_MAX_DURATION_S == DEFAULT_MAX_CLIP_SECONDS  # the pure default and the setting's agree
    clip = write_wav(tmp_path / "in" / "fan" / "id_00" / "normal_00000000.wav", tone(2.0))
    monkeypatch.setenv("MAX_CLIP_SECONDS", "1.5")
    report = ingest([str(clip)])
    assert (report.ingested, [r["reason"] for r in report.rejected]) == (0, ["too_long"])
    monkeypatch.setenv("MAX_CLIP_SECONDS", "3")
    assert ingest([str(clip)]).ingested == 1


def test_cloud_config_is_reexported_where_it_was():
    from core.supervised.cloud import config

    assert config.CloudConfig is CloudConfig
    assert config.DEFAULT_COST_PER_UNIT_HOUR == DEFAULT_COST_PER_UNIT_HOUR


# --- the README lists exactly these variables -------------------------------------------------------------------


def readme_configuration() -> dict[str, str]:
    """``{variable: default}`` from the README's configuration table (backticks dropped from the default)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # past the header and the rule
    table: dict[str, str] = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        names = re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0])
        assert names, row
        for name in names:
            assert name not in table, f"{name} is listed twice"
            table[name] = cells[1].replace("`", "")
    return table


def test_the_readme_lists_exactly_the_variables_of_the_settings_module():
    table = readme_configuration()
    assert sorted(table) == sorted(NAMES)
    assert table == {v.name: v.default for v in VARIABLES}


# --- nobody else reads the environment ------------------------------------------------------------------------------

ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def environment_reads(path: Path) -> list[str]:
    """Where ``path`` mentions ``os.environ``, ``os.getenv`` and kin (as attributes, names or imports)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in ENV_NAMES:
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in ENV_NAMES:
            found.append(f"{path.name}:{node.lineno} {node.id}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"{path.name}:{node.lineno} from os import {a.name}"
                      for a in node.names if a.name in ENV_NAMES or a.name == "*"]  # fmt: skip
    return found


def product_modules() -> list[Path]:
    paths = [p for folder in ("core", "db", "dashboard") for p in sorted((ROOT / folder).rglob("*.py"))]
    return paths + [ROOT / "streamlit_app.py"]


def test_the_check_finds_environment_reads(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom os import getenv\na = os.environ.get('X')\nb = getenv('Y')\n")
    assert sorted(environment_reads(sample)) == sorted(
        ["sample.py:2 from os import getenv", "sample.py:3 .environ", "sample.py:4 getenv"]
    )


def test_only_the_settings_module_reads_the_environment():
    modules = [p for p in product_modules() if p.exists()]
    assert ROOT / "core" / "settings.py" in modules and len(modules) > 50
    offenders = {str(p.relative_to(ROOT)): environment_reads(p) for p in modules if p != ROOT / "core" / "settings.py"}
    assert {path: hits for path, hits in offenders.items() if hits} == {}


def test_the_settings_module_is_light():
    code = "import sys, core.settings; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in out.stdout.split()}
    assert not loaded & {"numpy", "boto3", "botocore", "tensorflow", "keras", "sqlalchemy", "streamlit", "db",
                         "dashboard"}  # fmt: skip

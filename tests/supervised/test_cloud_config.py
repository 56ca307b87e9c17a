"""core.supervised.cloud.config: REKOGNITION_* settings, overrides, the cost notice, and why training cannot start."""

from __future__ import annotations

import pytest

from core.errors import BadInputError, Reason
from core.supervised.cloud.config import (
    DEFAULT_COST_PER_UNIT_HOUR,
    DEFAULT_PREFIX,
    DEFAULT_PROJECT,
    CloudConfig,
    boto3_session,
    forget_credentials_check,
    unavailable_reason,
)


@pytest.fixture
def aws_env(no_aws):
    """No AWS settings from this machine (see conftest's ``no_aws``)."""
    return no_aws


def test_defaults_when_nothing_is_set():
    config = CloudConfig.from_env({})
    assert config == CloudConfig()
    assert (config.bucket, config.region, config.profile) == (None, None, None)
    assert (config.prefix, config.project) == (DEFAULT_PREFIX, DEFAULT_PROJECT)
    assert (config.inference_units, config.cost_per_unit_hour) == (1, DEFAULT_COST_PER_UNIT_HOUR)


def test_empty_values_count_as_unset():
    env = {f"REKOGNITION_{name}": "" for name in ("BUCKET", "PREFIX", "PROJECT", "REGION", "PROFILE")}
    env |= {"REKOGNITION_INFERENCE_UNITS": "", "REKOGNITION_COST_PER_UNIT_HOUR": ""}
    assert CloudConfig.from_env(env) == CloudConfig()


def test_every_rekognition_variable_is_read():
    config = CloudConfig.from_env(
        {
            "REKOGNITION_BUCKET": "my-bucket",
            "REKOGNITION_PREFIX": "/plant/sounds/",
            "REKOGNITION_PROJECT": "fans",
            "REKOGNITION_REGION": "eu-west-1",
            "REKOGNITION_PROFILE": "ops",
            "REKOGNITION_INFERENCE_UNITS": "3",
            "REKOGNITION_COST_PER_UNIT_HOUR": "4.5",
            "UNRELATED": "x",
        }
    )
    assert config == CloudConfig(
        bucket="my-bucket", prefix="plant/sounds", project="fans", region="eu-west-1", profile="ops",
        inference_units=3, cost_per_unit_hour=4.5,
    )  # fmt: skip
    assert config.hourly_cost == pytest.approx(13.5)


def test_from_env_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("REKOGNITION_BUCKET", "from-process")
    assert CloudConfig.from_env().bucket == "from-process"


@pytest.mark.parametrize(
    ("name", "value"),
    [("REKOGNITION_INFERENCE_UNITS", "two"), ("REKOGNITION_INFERENCE_UNITS", "1.5"),
     ("REKOGNITION_COST_PER_UNIT_HOUR", "cheap")],
)  # fmt: skip
def test_bad_numbers_are_bad_input(name, value):
    with pytest.raises(BadInputError) as caught:
        CloudConfig.from_env({name: value})
    assert caught.value.reason is Reason.INVALID_PARAMETER
    assert "REKOGNITION_" in str(caught.value) and value in str(caught.value)


def test_with_overrides_replaces_given_fields_and_keeps_the_rest():
    base = CloudConfig(bucket="a", prefix="p", project="proj", region="us-east-1", inference_units=2)
    changed = base.with_overrides(bucket="b", prefix="/new/prefix/", region=None, profile=None, inference_units=4)
    assert changed == CloudConfig(bucket="b", prefix="new/prefix", project="proj", region="us-east-1",
                                  inference_units=4)  # fmt: skip
    assert base.bucket == "a"  # frozen: the original is untouched
    assert base.with_overrides() == base


def test_cost_notice_states_the_price_per_inference_unit_hour():
    notice = CloudConfig(inference_units=2, cost_per_unit_hour=4.25).cost_notice()
    assert "$4.25 per inference-unit hour" in notice
    assert "2 inference unit(s)" in notice
    assert "$8.50/h" in notice
    assert "stopped" in notice
    assert f"${DEFAULT_COST_PER_UNIT_HOUR:.2f} per inference-unit hour" in CloudConfig().cost_notice()


def test_no_bucket_is_the_first_reason(aws_env):
    aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    aws_env.setenv("AWS_REGION", "us-east-1")
    reason = unavailable_reason(CloudConfig())
    assert reason and "REKOGNITION_BUCKET" in reason


def test_no_credentials_is_a_reason(aws_env):
    aws_env.setenv("AWS_REGION", "us-east-1")
    reason = unavailable_reason(CloudConfig(bucket="b"))
    assert reason and "credentials" in reason


def test_no_region_is_a_reason(aws_env):
    aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    reason = unavailable_reason(CloudConfig(bucket="b"))
    assert reason and "region" in reason


def test_credentials_and_region_from_the_environment_make_it_available(aws_env):
    aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    aws_env.setenv("AWS_REGION", "us-east-1")
    assert unavailable_reason(CloudConfig(bucket="b")) is None


def test_region_from_the_configuration_is_enough(aws_env):
    aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    assert unavailable_reason(CloudConfig(bucket="b", region="eu-central-1")) is None


def test_unknown_profile_is_a_configuration_problem(aws_env):
    reason = unavailable_reason(CloudConfig(bucket="b", profile="no-such-profile", region="us-east-1"))
    assert reason and "no-such-profile" in reason


def test_the_check_is_cached_until_forgotten(aws_env):
    config = CloudConfig(bucket="b", region="us-east-1")
    assert "credentials" in unavailable_reason(config)
    aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    assert "credentials" in unavailable_reason(config)  # cached: the lookup may wait on instance metadata
    forget_credentials_check()
    assert unavailable_reason(config) is None


def test_aws_default_region_is_also_a_region(aws_env):
    aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    aws_env.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert unavailable_reason(CloudConfig(bucket="b")) is None


def test_configured_region_wins_over_aws_region(aws_env):
    aws_env.setenv("AWS_REGION", "us-east-1")
    assert boto3_session(CloudConfig(region="eu-west-1")).region_name == "eu-west-1"
    assert boto3_session(CloudConfig()).region_name == "us-east-1"

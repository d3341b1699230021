"""A job's resource requests by the one shared rule (hub.shared.resources): what the hub
stores when it queues a job, and what the supervisor reads back from a stored job."""

import pytest

from hub.shared.resources import (
    DEFAULT_DISK_MB,
    DEFAULTS,
    ResourcesRefused,
    check_resources,
    with_defaults,
)

pytestmark = pytest.mark.unit


def test_every_key_gets_its_default_when_none_is_asked_for():
    assert check_resources(None, disk_mb=2048) == {**DEFAULTS, "disk_mb": 2048}


def test_every_problem_is_listed_at_once():
    with pytest.raises(ResourcesRefused) as e:
        check_resources({"gpus": 1.5, "cpus": 0, "colour": "red"})
    paths = sorted(p["path"] for p in e.value.details["errors"])
    assert e.value.code == "invalid_resources"
    assert paths == ["resources.colour", "resources.cpus", "resources.gpus"]


def test_the_disk_quota_maximum_is_the_callers():
    assert check_resources({"disk_mb": 500}, max_disk_mb=500)["disk_mb"] == 500
    with pytest.raises(ResourcesRefused):
        check_resources({"disk_mb": 501}, max_disk_mb=500)


def test_a_job_stored_before_disk_mb_existed_reads_with_the_default_quota():
    res = with_defaults({"gpus": 2, "memory_mb": 8192})
    assert res == {**DEFAULTS, "gpus": 2, "memory_mb": 8192, "disk_mb": DEFAULT_DISK_MB}
    assert with_defaults({"disk_mb": None})["disk_mb"] == DEFAULT_DISK_MB

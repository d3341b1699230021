"""A job's resource requests as the hub stores them: every limit explicit, with defaults."""

import pytest

pytestmark = pytest.mark.unit


def test_a_job_gets_the_default_disk_quota_unless_it_asks_for_one(settings):
    from hub.common.errors import InvalidInput
    from hub.jobs.services import _resources

    settings.HUB_JOB_DISK_MB = 2048
    settings.HUB_JOB_MAX_DISK_MB = 4096
    assert _resources({})["disk_mb"] == 2048
    assert _resources({"disk_mb": 100})["disk_mb"] == 100
    for bad in (4097, 0, "10", True):
        with pytest.raises(InvalidInput) as e:
            _resources({"disk_mb": bad})
        assert e.value.details["errors"][0]["path"] == "resources.disk_mb"

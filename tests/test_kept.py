"""How an owner's kept bytes are counted, against the real Redis (`common.kept`, `api.intake`, `records.finish`):
an upload of a type that keeps it is reserved when its record is written, its end counts what stays (the upload,
a preview, or nothing), a drawing is cached only within the cap, and the default cap leaves a normal client be."""

from __future__ import annotations

import secrets
import uuid

import pytest

from api import intake
from common import kept, records
from common.errors import Oversized, RateLimited
from common.records import JobStatus
from common.settings import Settings, get_settings
from common.store import get_redis

CAP = 1000


def capped(cap: int = CAP) -> Settings:
    return get_settings().model_copy(update={"upload_bytes_kept": cap})


def accept(owner: str, size: int, settings: Settings) -> str:
    """A detection-like job (its type keeps its upload) of `size` bytes, recorded as the API's intake does."""
    job_id = str(uuid.uuid4())
    intake.stage_upload(get_redis(), job_id, b"x" * size)
    assert intake.create(get_redis(), job_id, records.new_record("detection", owner), token="t", idem=None,
                         uploader=owner, upload_bytes=size, settings=settings, keeps=True) is None
    return job_id


def held(owner: str, settings: Settings) -> int:
    return kept.room(get_redis(), owner, 0, settings)[0]


def test_kept_bytes_are_reserved_at_intake_and_what_stays_counts_from_the_end(platform_env: dict[str, str]) -> None:
    settings, owner, r = capped(), f"owner-{secrets.token_hex(4)}", get_redis()
    kept_upload = accept(owner, 400, settings)
    assert held(owner, settings) == 400  # reserved while the job runs
    assert records.finish(r, kept_upload, JobStatus.SUCCESS, result={}, keep_upload=True)
    assert held(owner, settings) == 400  # the upload stays, as `source`
    failed = accept(owner, 400, settings)
    assert records.finish(r, failed, JobStatus.FAILURE, error={"code": "x", "message": "x"})
    assert held(owner, settings) == 400  # nothing stays: the reservation is given back
    with_preview = accept(owner, 400, settings)
    assert records.finish(r, with_preview, JobStatus.SUCCESS, result={}, kept_bytes=150)
    assert held(owner, settings) == 550  # a preview stays instead of the upload
    other = f"other-{secrets.token_hex(4)}"
    accept(other, 900, settings)

    staged = str(uuid.uuid4())
    intake.stage_upload(r, staged, b"x" * 500)
    with pytest.raises(RateLimited) as refused:
        intake.create(r, staged, records.new_record("detection", owner), token="t", idem=None, uploader=owner,
                      upload_bytes=500, settings=settings, keeps=True)
    assert refused.value.code == "uploads_kept"
    assert 0 < refused.value.retry_after_s <= kept.ttl_s(settings)
    assert "0.0 MB" in refused.value.message and "UPLOAD_BYTES_KEPT" in refused.value.message
    assert not r.exists(records.job_key(staged), records.blob_key(staged))  # refused: nothing left behind
    intake.stage_upload(r, staged, b"x" * 1001)
    with pytest.raises(Oversized):  # alone larger than the cap: no wait would make it fit
        intake.create(r, staged, records.new_record("detection", owner), token="t", idem=None, uploader=owner,
                      upload_bytes=1001, settings=settings, keeps=True)
    counters = [k for k in kept.counters(owner, settings) if r.exists(k)]
    assert counters and all(0 < r.ttl(k) <= kept.ttl_s(settings) for k in counters)


def test_a_drawing_is_cached_and_counted_only_within_the_cap(platform_env: dict[str, str]) -> None:
    settings, owner, r = capped(), f"owner-{secrets.token_hex(4)}", get_redis()
    job_id = accept(owner, 400, settings)
    records.finish(r, job_id, JobStatus.SUCCESS, result={}, keep_upload=True)
    job, drawing = records.job_key(job_id), records.annotated_key(job_id)
    assert not kept.cache(r, job, drawing, b"p" * 601, settings)  # 400 + 601 > 1000
    assert r.get(drawing) is None and held(owner, settings) == 400
    assert kept.cache(r, job, drawing, b"p" * 600, settings)
    assert r.get(drawing) == b"p" * 600 and held(owner, settings) == 1000
    assert 0 < r.pttl(drawing) <= r.pttl(job) + 10  # set to the record's, read a moment apart
    assert kept.cache(r, job, drawing, b"p" * 600, capped(0))  # 0: no cap


def test_the_default_cap_refuses_nothing_to_a_normal_client(platform_env: dict[str, str]) -> None:
    """A client that runs 10 detection jobs on 10 MB images (the largest a detection takes) and draws each one's
    annotated.png (a 4-megapixel photo as PNG: about 8 MB) in 48 h stays within the default."""
    settings, owner, r = get_settings(), f"owner-{secrets.token_hex(4)}", get_redis()
    assert Settings.model_fields["upload_bytes_kept"].default == settings.upload_bytes_kept
    size, drawing = settings.types["detection"].max_bytes, 8 * 1024 * 1024
    for _ in range(10):
        job_id = str(uuid.uuid4())
        intake.stage_upload(r, job_id, b"x")  # the counters count `upload_bytes`, not what was staged here
        assert intake.create(r, job_id, records.new_record("detection", owner), token="t", idem=None,
                             uploader=owner, upload_bytes=size, settings=settings, keeps=True) is None
        records.finish(r, job_id, JobStatus.SUCCESS, result={}, keep_upload=True)
        r.incrby(kept.counters(owner, settings)[0], drawing)  # its drawing, as `kept.cache` counts it
    assert held(owner, settings) == 10 * (size + drawing) <= settings.upload_bytes_kept

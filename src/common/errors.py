"""The platform's errors, each with its HTTP status and a stable snake_case code.

Workers raise `InputError` for bad input: the job fails at once, with no retry and no traceback.
The API renders every `PlatformError` as `{"error": {"code", "message"}}`.
"""

from __future__ import annotations


class PlatformError(Exception):
    status = 500
    code = "internal_error"
    retry_after_s: int | None = None  # sent as `Retry-After` when set

    def __init__(self, message: str, *, code: str | None = None, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class InputError(PlatformError):
    status = 400
    code = "invalid_input"


class Unauthorized(PlatformError):
    status = 401
    code = "unauthorized"


class NotFound(PlatformError):
    status = 404
    code = "not_found"


class Conflict(PlatformError):
    status = 409
    code = "conflict"


class Oversized(PlatformError):
    status = 413
    code = "too_large"


class UnsupportedMedia(PlatformError):
    status = 415
    code = "unsupported_media_type"


class RateLimited(PlatformError):
    status = 429
    code = "rate_limited"
    retry_after_s = 5


class Unavailable(PlatformError):
    status = 503
    code = "unavailable"
    retry_after_s = 5


__all__ = [
    "Conflict",
    "InputError",
    "NotFound",
    "Oversized",
    "PlatformError",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMedia",
]

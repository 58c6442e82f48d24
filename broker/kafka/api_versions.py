"""ApiVersions: the keys and versions this broker speaks; an unknown version gets them in v0's form."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.primitive import i32Timedelta
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.versions import API_VERSIONS, APIS

NO_THROTTLE = i32Timedelta.parse(datetime.timedelta(0))


def answer(version: int) -> Any:
    """The answer to ApiVersions `version`; for a version not served, the v0 answer with
    UNSUPPORTED_VERSION and the full key list, so the client retries with one it finds there (KIP-511)."""
    served = APIS[API_VERSIONS].serves(version)
    cls = response_type(API_VERSIONS, version if served else 0)
    key_cls = element(cls, "api_keys")
    keys = tuple(
        build(key_cls, api_key=key, min_version=api.advertised[0], max_version=api.advertised[1])
        for key, api in sorted(APIS.items())
    )
    return build(
        cls,
        error_code=ErrorCode.none if served else ErrorCode.unsupported_version,
        api_keys=keys,
        throttle_time=NO_THROTTLE,
    )

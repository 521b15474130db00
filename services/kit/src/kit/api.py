"""What every service's HTTP API shares: strict request bodies and the runtime dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict

from kit.service import Runtime


class StrictModel(BaseModel):
    """Request bodies refuse unknown fields: a typo is a 422, not a silently ignored key."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

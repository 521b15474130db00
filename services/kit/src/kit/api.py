"""What every service's HTTP API shares: strict request bodies and the runtime dependency."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, field_validator

from kit.service import Runtime


class StrictModel(BaseModel):
    """Request bodies refuse unknown fields: a typo is a 422, not a silently ignored key."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul_characters(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL (U+0000): a 422 naming the field, not a 500 later.
        if _holds_nul(value):
            raise ValueError("must not contain NUL characters")
        return value


NUL_FREE = r"^[^\x00]*$"
"""A `pattern=` for path and query strings that reach the database."""


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_holds_nul(item) for item in value)
    return False  # nested models check their own fields


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

"""The warehouse API: thin translation between HTTP and the returns use case."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from fulfillment.adapters.tables import ReturnAuthorization
from fulfillment.domain.returns import ReturnLine
from fulfillment.handlers.returns import (
    InvalidReturnLinesError,
    ReturnNotFoundError,
    receive_return,
)
from kit.api import RuntimeDep, StrictModel
from kit.problems import ProblemError
from kit.unit_of_work import UnitOfWork

router = APIRouter(prefix="/v1", tags=["returns"])


class ReturnLineIn(StrictModel):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1)


class ParcelIn(StrictModel):
    lines: list[ReturnLineIn] | None = Field(
        default=None,
        description="What was found in the parcel; omitted means exactly the authorized lines",
    )


class ReturnLineOut(BaseModel):
    sku: str
    quantity: int


class ReturnOut(BaseModel):
    return_id: str
    order_id: str
    status: str
    carrier: str
    label_reference: str
    lines: list[ReturnLineOut]
    received_lines: list[ReturnLineOut] | None
    issued_at: datetime
    received_at: datetime | None


@router.post(
    "/returns/{return_id}/received",
    status_code=202,
    response_model=ReturnOut,
    responses={200: {"model": ReturnOut, "description": "Already recorded; nothing changed"}},
)
async def receive_parcel(
    return_id: str, runtime: RuntimeDep, response: Response, body: ParcelIn | None = None
) -> ReturnOut:
    found = (
        None
        if body is None or body.lines is None
        else [ReturnLine(line.sku, line.quantity) for line in body.lines]
    )

    def receive(uow: UnitOfWork) -> tuple[ReturnOut, bool]:
        receipt = receive_return(uow, return_id, found)
        return _return_out(receipt.authorization), receipt.recorded_now

    try:
        # 202 only once the record and its ReturnReceived are committed.
        out, recorded_now = await runtime.committer.submit(receive)
    except ReturnNotFoundError as error:
        raise _not_found(return_id) from error
    except InvalidReturnLinesError as error:
        raise ProblemError(
            422,
            "invalid-return-lines",
            "The parcel does not match its return label",
            str(error),
            errors=[{"sku": p.sku, "message": p.message} for p in error.problems],
        ) from error
    if not recorded_now:
        response.status_code = 200
    return out


@router.get("/returns/{return_id}", response_model=ReturnOut)
def get_return(return_id: str, runtime: RuntimeDep) -> ReturnOut:
    with runtime.read_session_factory() as session:
        authorization = session.get(ReturnAuthorization, return_id)
        if authorization is None:
            raise _not_found(return_id)
        return _return_out(authorization)


def _not_found(return_id: str) -> ProblemError:
    return ProblemError(404, "return-not-found", "Return not found", f"no return {return_id}")


def _return_out(authorization: ReturnAuthorization) -> ReturnOut:
    received = authorization.received_lines
    return ReturnOut(
        return_id=authorization.return_id,
        order_id=authorization.order_id,
        status=authorization.status,
        carrier=authorization.carrier,
        label_reference=authorization.label_reference,
        lines=[ReturnLineOut.model_validate(line) for line in authorization.lines],
        received_lines=None
        if received is None
        else [ReturnLineOut.model_validate(line) for line in received],
        issued_at=authorization.issued_at,
        received_at=authorization.received_at,
    )

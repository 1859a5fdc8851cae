"""Probes, open to every caller and never rate limited. Both are `async` and neither waits for
the request thread pool, so they answer however busy the API is.

- Liveness (`/livez`, and `/healthz` as before): the process answers; no I/O at all.
- Readiness (`/readyz`): each dependency's state, from checks that cost the same whatever the
  index's size, run at most every couple of seconds (`rag_serving.readiness.ReadinessProbe`);
  503 when a required one (the index) is down, 200 while only optional ones (the cache, the
  LLM) are, as answers go on without them.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from rag_core.domain.schemas import ReadinessReport
from rag_serving.readiness import ReadinessProbe

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: str


async def get_readiness_probe(request: Request) -> ReadinessProbe:
    """`async`: a plain function would run on the request thread pool."""
    probe: ReadinessProbe = request.app.state.readiness
    return probe


@router.get("/livez", response_model=Liveness)
@router.get("/healthz", response_model=Liveness, description="The same as `/livez`.")
async def livez() -> Liveness:
    """The process is up and serving HTTP."""
    return Liveness(status="ok")


@router.get(
    "/readyz",
    response_model=ReadinessReport,
    responses={503: {"model": ReadinessReport, "description": "A required dependency is down."}},
)
async def readyz(
    probe: Annotated[ReadinessProbe, Depends(get_readiness_probe)],
) -> JSONResponse:
    """Whether this process can serve: the index, the response cache and the LLM (when one is
    configured), each reachable or not."""
    report = await probe.report()
    code = status.HTTP_503_SERVICE_UNAVAILABLE if report.status == "unavailable" else 200
    return JSONResponse(report.model_dump(mode="json"), status_code=code)

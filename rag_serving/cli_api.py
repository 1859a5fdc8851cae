"""How `ragctl`'s read commands (`search`, `ask`, `status`, `documents`) reach a running API
instead of loading the index and the model: the API has them loaded, so a command answers in
about a second rather than the ten it takes to load them.

Which API, by RAG_CLI_USE_API: `true` the one at RAG_API_URL, `false` none, and unset (the
default) the one `ragctl dev` runs for the same RAG_HOME, which it announces in
`RAG_HOME/api.url` while it runs. Only an API that reads as the local operator (the dev
identity) is announced: the CLI sends no token.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console

from rag_core.settings import Settings

console = Console(stderr=True)


class ApiRefused(RuntimeError):
    """The API answered a request of the CLI with an error."""

    def __init__(self, url: str, status_code: int, text: str):
        super().__init__(f"{url} answered {status_code}: {text[:300]}")
        self.status_code = status_code


def _announcement(settings: Settings) -> Path:
    return settings.home / "api.url"


@contextmanager
def announcing_api(settings: Settings, url: str) -> Iterator[None]:
    """Tell the read commands of this RAG_HOME where its API is, while it runs."""
    if settings.auth_mode != "dev":
        yield
        return
    announcement = _announcement(settings)
    announcement.write_text(url)
    try:
        yield
    finally:
        announcement.unlink(missing_ok=True)


def running_api(settings: Settings) -> str | None:
    """The API the read commands ask, if any (see the module's docstring)."""
    if settings.cli_use_api is not None:
        return settings.api_url if settings.cli_use_api else None
    try:
        return _announcement(settings).read_text().strip() or None
    except FileNotFoundError:
        return None


def from_api(
    settings: Settings,
    path: str,
    request: BaseModel | None = None,
    params: Mapping[str, str | int] | None = None,
) -> bytes | None:
    """The API's answer (JSON) to a read request (POSTed, or a GET without one); None when
    no API is to be asked or none answers there: then the command runs in this process.
    Raises `ApiRefused` when the API answers with an error."""
    base = running_api(settings)
    if base is None:
        return None
    import httpx

    url = base.rstrip("/") + path
    method, body = (
        ("GET", None)
        if request is None
        # Only what the command was given: the API applies its own defaults to the rest.
        else ("POST", request.model_dump(mode="json", exclude_none=True, exclude_unset=True))
    )
    timeout = httpx.Timeout(settings.llm_timeout_seconds + 30, connect=2.0)
    try:
        response = httpx.request(method, url, json=body, params=params, timeout=timeout)
    except httpx.ConnectError:
        console.print(f"no API answers at {base}: running in this process",
                      style="dim", markup=False, highlight=False)  # fmt: skip
        return None
    if response.is_error:
        raise ApiRefused(url, response.status_code, response.text)
    return response.content

"""A running Dagster webserver, reached through its GraphQL API over plain HTTP: the caller
(the API, `ragctl`) launches runs in the webserver's instance without importing Dagster.

The runs it launches are the instance's like any other: queued there (the daemon dequeues
them, or they start at once under the default run coordinator), shown in the UI, and carried
on by the webserver's run workers whatever becomes of the caller.
"""

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

FINISHED_RUN_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})

_ERRORS = "... on Error { message }"  # what most failures a result can be implement
_REPOSITORIES = """query Repositories {
  repositoriesOrError { __typename
    ... on RepositoryConnection { nodes { name location { name } jobs { name } } }
    ... on Error { message } } }"""
_LAUNCH_RUN = f"""mutation LaunchRun($executionParams: ExecutionParams!) {{
  launchRun(executionParams: $executionParams) {{ __typename
    ... on LaunchRunSuccess {{ run {{ runId }} }}
    ... on RunConfigValidationInvalid {{ errors {{ message }} }} {_ERRORS} }} }}"""
_RUN_STATUS = f"""query RunStatus($runId: ID!) {{
  runOrError(runId: $runId) {{ __typename ... on Run {{ status }} {_ERRORS} }} }}"""
_PARTITION_KEYS = f"""query PartitionKeys($params: PipelineSelector!) {{
  pipelineOrError(params: $params) {{ __typename
    ... on Pipeline {{ partitionKeysOrError {{ partitionKeys }} }} {_ERRORS} }} }}"""
_ADD_PARTITION = f"""mutation AddPartition(
    $repositorySelector: RepositorySelector!, $partitionsDefName: String!, $partitionKey: String!
) {{
  addDynamicPartition(repositorySelector: $repositorySelector,
                      partitionsDefName: $partitionsDefName, partitionKey: $partitionKey) {{
    __typename {_ERRORS} }} }}"""
_DELETE_PARTITIONS = f"""mutation DeletePartitions(
    $repositorySelector: RepositorySelector!, $partitionsDefName: String!,
    $partitionKeys: [String!]!
) {{
  deleteDynamicPartitions(repositorySelector: $repositorySelector,
                          partitionsDefName: $partitionsDefName, partitionKeys: $partitionKeys) {{
    __typename {_ERRORS} }} }}"""


class DagsterRequestFailed(RuntimeError):
    """The webserver could not be reached, or refused the request (in its own words)."""


@dataclass(frozen=True)
class JobAddress:
    """Where a job lives in the webserver's workspace."""

    location: str
    repository: str
    job: str

    def repository_selector(self) -> dict[str, str]:
        return {"repositoryLocationName": self.location, "repositoryName": self.repository}


def _failure(result: Mapping[str, Any]) -> str:
    reasons = [result.get("message"), *(e["message"] for e in result.get("errors", []))]
    return f"{result['__typename']}: " + "; ".join(r for r in reasons if r)


class DagsterWebserver:
    def __init__(self, url: str, timeout_seconds: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_seconds = timeout_seconds

    def _ask(self, document: str, expected: str, **variables: Any) -> dict[str, Any]:
        """The one result the document asks for, which must be of the `expected` type."""
        try:
            response = httpx.post(
                f"{self.url}/graphql",
                json={"query": document, "variables": variables},
                timeout=self.timeout_seconds,
            )
        except httpx.HTTPError as unreachable:
            raise DagsterRequestFailed(f"{self.url}: {unreachable}") from unreachable
        json_body = response.headers.get("content-type", "").startswith("application/json")
        body = response.json() if json_body else {}
        if body.get("errors"):  # the document or its variables did not validate
            raise DagsterRequestFailed("; ".join(error["message"] for error in body["errors"]))
        if not response.is_success:
            raise DagsterRequestFailed(f"{self.url}: HTTP {response.status_code}")
        [result] = body["data"].values()
        if result["__typename"] != expected:
            raise DagsterRequestFailed(_failure(result))
        return dict(result)

    def find_job(self, name: str) -> JobAddress:
        """The job of that name, which exactly one repository of the workspace must hold."""
        repositories = self._ask(_REPOSITORIES, "RepositoryConnection")["nodes"]
        found = [
            JobAddress(repository["location"]["name"], repository["name"], name)
            for repository in repositories
            if name in {job["name"] for job in repository["jobs"]}
        ]
        if len(found) != 1:
            raise DagsterRequestFailed(f"{len(found)} code locations on {self.url} have job {name}")
        return found[0]

    def launch_run(
        self,
        job: JobAddress,
        run_config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Launch a run of the job; returns its id once the instance holds it."""
        params = {
            "selector": job.repository_selector() | {"jobName": job.job},
            "runConfigData": dict(run_config or {}),
            "executionMetadata": {
                "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]
            },
        }
        launched = self._ask(_LAUNCH_RUN, "LaunchRunSuccess", executionParams=params)
        run_id: str = launched["run"]["runId"]
        return run_id

    def run_status(self, run_id: str) -> str:
        status: str = self._ask(_RUN_STATUS, "Run", runId=run_id)["status"]
        return status

    def wait_for_run(self, run_id: str, poll_seconds: float = 1.0) -> str:
        """The run's status once it has finished (succeeded, failed or was canceled)."""
        while (status := self.run_status(run_id)) not in FINISHED_RUN_STATUSES:
            time.sleep(poll_seconds)
        return status

    def partition_keys(self, job: JobAddress) -> list[str]:
        """The job's partitions, in their order."""
        params = job.repository_selector() | {"pipelineName": job.job}
        pipeline = self._ask(_PARTITION_KEYS, "Pipeline", params=params)
        keys: list[str] = pipeline["partitionKeysOrError"]["partitionKeys"]
        return keys

    def add_partitions(self, job: JobAddress, partitions: str, keys: Iterable[str]) -> list[str]:
        """Add the keys the dynamic partitions lack, in order; returns those added."""
        known = set(self.partition_keys(job))
        added = [key for key in dict.fromkeys(keys) if key not in known]
        for key in added:
            self._ask(
                _ADD_PARTITION,
                "AddDynamicPartitionSuccess",
                repositorySelector=job.repository_selector(),
                partitionsDefName=partitions,
                partitionKey=key,
            )
        return added

    def delete_partitions(self, job: JobAddress, partitions: str, keys: list[str]) -> None:
        if keys:
            self._ask(
                _DELETE_PARTITIONS,
                "DeleteDynamicPartitionsSuccess",
                repositorySelector=job.repository_selector(),
                partitionsDefName=partitions,
                partitionKeys=keys,
            )

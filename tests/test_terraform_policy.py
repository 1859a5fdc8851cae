"""Policy checks on the dev environment's Terraform plan (terraform/envs/dev).

The plan is made offline: a copy of terraform/ with an override file that swaps the S3
backend for a local one and gives the AWS provider fake credentials and its skip flags,
planned with -refresh=false and rendered by `terraform show -json`. The platform's IAM
policies spell every ARN from names (terraform/modules/iam), so the plan holds them in
full and these tests read the real documents that would be sent to AWS.
"""

import fnmatch
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# AWS defines ecr:GetAuthorizationToken on no resource; "*" is the only form it accepts.
RESOURCELESS_ACTIONS = {"ecr:GetAuthorizationToken"}
PROVIDER_MIRROR = Path(os.environ.get("TF_PROVIDER_MIRROR", "/opt/tf-plugins"))
MIRROR_CONFIG = """
provider_installation {{
  filesystem_mirror {{
    path = "{path}"
  }}
}}
"""
PLAN_OVERRIDE = """
terraform {
  backend "local" {}
}

provider "aws" {
  access_key                  = "AKIAIOSFODNN7EXAMPLE"
  secret_key                  = "offline-plan-only"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  allowed_account_ids         = null
}
"""

PUBLIC_ACCESS_BLOCKS = (
    "block_public_acls",
    "block_public_policy",
    "ignore_public_acls",
    "restrict_public_buckets",
)


def _terraform(env: Path, config: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        ["terraform", *args],
        cwd=env,
        env=os.environ | config,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"terraform {args[0]} failed:\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if shutil.which("terraform") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("terraform is not installed (CI=true: the plan test must run)")
        pytest.skip("terraform is not installed")
    work = tmp_path_factory.mktemp("tf")
    shutil.copytree(
        ROOT / "terraform", work / "terraform", ignore=shutil.ignore_patterns(".terraform")
    )
    shutil.copytree(ROOT / "dashboards", work / "dashboards")
    env = work / "terraform" / "envs" / "dev"
    (env / "plan_override.tf").write_text(PLAN_OVERRIDE)
    config: dict[str, str] = {"TF_IN_AUTOMATION": "1"}
    if PROVIDER_MIRROR.is_dir():
        # The pinned provider from the local mirror: this machine reaches no registry.
        cli_config = work / "terraformrc"
        cli_config.write_text(MIRROR_CONFIG.format(path=PROVIDER_MIRROR))
        config["TF_CLI_CONFIG_FILE"] = str(cli_config)
    _terraform(env, config, "init", "-input=false", "-no-color")
    _terraform(env, config, "plan", "-refresh=false", "-input=false", "-no-color",
               "-var-file=dev.tfvars", "-out=plan.bin")  # fmt: skip
    rendered = _terraform(env, config, "show", "-json", "plan.bin")
    if keep := os.environ.get("TF_PLAN_JSON"):  # the terraform workflow keeps it for review
        Path(keep).write_text(rendered)
    return json.loads(rendered)


def _resources(module: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from module.get("resources", [])
    for child in module.get("child_modules", []):
        yield from _resources(child)


def resources(plan: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in _resources(plan["planned_values"]["root_module"]) if r["type"] == kind]


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def role_statements(plan: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every Allow statement of every inline role policy, by role name."""
    by_role: dict[str, list[dict[str, Any]]] = {}
    for policy in resources(plan, "aws_iam_role_policy"):
        document = policy["values"].get("policy")
        assert document is not None, f"{policy['address']}: policy unknown until apply"
        statements = [s for s in json.loads(document)["Statement"] if s["Effect"] == "Allow"]
        by_role.setdefault(policy["values"]["role"], []).extend(statements)
    return by_role


def allows(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    return any(
        any(fnmatch.fnmatchcase(action, pattern) for pattern in _listed(s["Action"]))
        and any(fnmatch.fnmatchcase(resource, pattern) for pattern in _listed(s["Resource"]))
        for s in statements
    )


def bucket_arn(plan: dict[str, Any], suffix: str) -> str:
    (name,) = [
        bucket["values"]["bucket"]
        for bucket in resources(plan, "aws_s3_bucket")
        if bucket["values"]["bucket"].endswith(suffix)
    ]
    return f"arn:aws:s3:::{name}"


def test_only_the_erasure_role_deletes_object_versions(plan: dict[str, Any]) -> None:
    documents = bucket_arn(plan, "-documents") + "/documents/handbook.pdf"
    index = bucket_arn(plan, "-index") + "/chunks.lance/data/0.lance"
    deleters = {
        role
        for role, statements in role_statements(plan).items()
        for target in (documents, index)
        if allows(statements, "s3:DeleteObjectVersion", target)
    }
    assert deleters == {"rag-dev-erasure"}


def test_every_bucket_blocks_public_access_and_is_encrypted_with_the_key(
    plan: dict[str, Any],
) -> None:
    buckets = resources(plan, "aws_s3_bucket")
    assert len(buckets) == 2
    blocks = resources(plan, "aws_s3_bucket_public_access_block")
    encryption = resources(plan, "aws_s3_bucket_server_side_encryption_configuration")
    assert len(blocks) == len(encryption) == len(buckets)
    for block in blocks:
        assert all(block["values"][flag] is True for flag in PUBLIC_ACCESS_BLOCKS), block["address"]
    for config in encryption:
        (rule,) = config["values"]["rule"]
        (default,) = rule["apply_server_side_encryption_by_default"]
        assert default["sse_algorithm"] == "aws:kms", config["address"]
    for bucket in resources(plan, "aws_s3_bucket"):
        # Object lock would stop erasure from deleting every version.
        assert not bucket["values"].get("object_lock_enabled"), bucket["address"]


def test_no_policy_grants_a_wildcard_action_or_resource(plan: dict[str, Any]) -> None:
    for role, statements in role_statements(plan).items():
        for statement in statements:
            actions = _listed(statement["Action"])
            assert not [a for a in actions if "*" in a], (role, statement)
            if set(actions) - RESOURCELESS_ACTIONS:
                assert "*" not in _listed(statement["Resource"]), (role, statement)


def test_the_waf_guards_the_load_balancer(plan: dict[str, Any]) -> None:
    (acl,) = resources(plan, "aws_wafv2_web_acl")
    (association,) = resources(plan, "aws_wafv2_web_acl_association")
    # Both ARNs exist only after apply; the association is the one that ties them.
    references = {
        ref
        for item in _configuration_resources(plan["configuration"]["root_module"])
        if item["type"] == "aws_wafv2_web_acl_association"
        for expression in item["expressions"].values()
        for ref in expression.get("references", [])
    }
    assert "var.load_balancer_arn" in references and "aws_wafv2_web_acl.this.arn" in references
    rules = {rule["name"]: rule for rule in acl["values"]["rule"]}
    assert "AWSManagedRulesCommonRuleSet" in rules
    assert rules["rate-limit-per-ip"]["statement"][0]["rate_based_statement"]
    assert rules["body-size-limit"]["action"][0]["block"]
    assert association["address"].startswith("module.platform.module.waf")


def _configuration_resources(module: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from module.get("resources", [])
    for call in module.get("module_calls", {}).values():
        yield from _configuration_resources(call["module"])


def test_the_api_cannot_write_the_index(plan: dict[str, Any]) -> None:
    statements = role_statements(plan)["rag-dev-api"]
    index_object = bucket_arn(plan, "-index") + "/chunks.lance/data/0.lance"
    for action in ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"):
        assert not allows(statements, action, index_object), action
    assert allows(statements, "s3:GetObject", index_object)
    # The worker is who writes it.
    assert allows(role_statements(plan)["rag-dev-worker"], "s3:PutObject", index_object)


def task_roles(plan: dict[str, Any]) -> dict[str, str]:
    """The task role of each ECS task definition, by family."""
    return {
        task["values"]["family"]: task["values"]["task_role_arn"].rpartition(":role/")[2]
        for task in resources(plan, "aws_ecs_task_definition")
    }


def service_connect_names(plan: dict[str, Any]) -> dict[tuple[str, int], str]:
    """The ECS service answering at each Service Connect name and port."""
    return {
        (alias["dns_name"], alias["port"]): service["values"]["name"]
        for service in resources(plan, "aws_ecs_service")
        for connect in service["values"]["service_connect_configuration"]
        for offered in connect["service"]
        for alias in offered["client_alias"]
    }


def test_erasure_runs_in_its_own_code_location_with_the_erasure_role(
    plan: dict[str, Any],
) -> None:
    """Dagster runs each run in its code location's container: the location serving `rtbf`
    (docker/dagster-workspace.yaml's `rag-governance`) runs with the erasure role, and the
    indexing location with a role that cannot delete object versions."""
    workspace = yaml.safe_load((ROOT / "docker" / "dagster-workspace.yaml").read_text())
    servers = [entry["grpc_server"] for entry in workspace["load_from"]]
    services = service_connect_names(plan)
    # Each service runs the task definition of its name (terraform/modules/compute).
    location_roles = {
        server["location_name"]: task_roles(plan)[services[server["host"], server["port"]]]
        for server in servers
    }
    assert location_roles == {"rag": "rag-dev-dagster-code", "rag-governance": "rag-dev-erasure"}
    documents = bucket_arn(plan, "-documents") + "/documents/handbook.pdf"
    statements = role_statements(plan)
    assert allows(statements["rag-dev-erasure"], "s3:DeleteObjectVersion", documents)
    assert not allows(statements["rag-dev-dagster-code"], "s3:DeleteObjectVersion", documents)
    # The one-off erasure task stays, as the fallback, with the same role.
    assert task_roles(plan)["rag-dev-erasure"] == "rag-dev-erasure"

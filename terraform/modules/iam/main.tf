# One IAM role per service, each allowed what its process does and nothing more.
#
# | role              | documents bucket                         | index bucket | other                      |
# | ----------------- | ---------------------------------------- | ------------ | -------------------------- |
# | api               | read; write sources, erasure requests,   | read         | its secrets                |
# |                   | consents, audit records; lift tombstones |              |                            |
# | worker            | read; write and retire artifacts         | read, write  | consume/dead-letter Kafka  |
# | dagster-code      | read; write and retire artifacts         | read, write  | Kafka, warehouse secrets   |
# | dagster-webserver | none                                     | none         | none (PostgreSQL only)     |
# | dagster-daemon    | none                                     | none         | none (PostgreSQL only)     |
# | erasure           | everything, incl. every object version   | read, write  | cache, LLM, warehouse      |
# |                   |                                          |              | secrets                    |
#
# The erasure role is the task role of the `dagster-erasure` service, the governance code
# location whose container runs the `rtbf` job's runs, and of the one-off `erasure` task, the
# fallback that finishes a request with `ragctl forget --resume ID` (modules/compute).
# `dagster-code` serves every other job and keeps no erasure power.
# Only the erasure role may s3:DeleteObjectVersion. No policy holds a wildcard action or a
# "*" resource, but for ecr:GetAuthorizationToken, which AWS defines on no resource.
# Every ARN is spelled from names (not read from resources) so that `terraform plan`
# shows the policies in full and tests/test_terraform_policy.py can check them.
# KMS use is granted by the key policy (modules/kms), naming these roles.
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

locals {
  arn        = "arn:${var.partition}"
  documents  = "${local.arn}:s3:::${var.documents_bucket}"
  index      = "${local.arn}:s3:::${var.index_bucket}"
  secret_arn = { for key, name in var.secret_names : key => "${local.arn}:secretsmanager:${var.region}:${var.account_id}:secret:${name}-??????" }
  # MSK names clusters, topics and groups by cluster name and a generated id.
  kafka_cluster = "${local.arn}:kafka:${var.region}:${var.account_id}:cluster/${var.kafka_cluster_name}/*"
  kafka_topic   = "${local.arn}:kafka:${var.region}:${var.account_id}:topic/${var.kafka_cluster_name}/*"
  kafka_group   = "${local.arn}:kafka:${var.region}:${var.account_id}:group/${var.kafka_cluster_name}/*"
  topics = {
    changes = ["${local.kafka_topic}/${var.topic_prefix}.document-changes", "${local.kafka_topic}/${var.topic_prefix}.table-row-changes"]
    dlq     = ["${local.kafka_topic}/${var.topic_prefix}.dlq"]
  }
  # What the indexing pipeline writes and retires in the documents bucket (rag_core/domain/layout.py).
  artifact_objects = [for prefix in var.artifact_prefixes : "${local.documents}/${prefix}/*"]

  statements = {
    read_documents = [
      { Sid = "ListDocuments", Effect = "Allow", Action = ["s3:ListBucket"], Resource = [local.documents] },
      { Sid = "ReadDocuments", Effect = "Allow", Action = ["s3:GetObject"], Resource = ["${local.documents}/*"] },
    ]
    read_index = [
      { Sid = "ListIndex", Effect = "Allow", Action = ["s3:ListBucket"], Resource = [local.index] },
      { Sid = "ReadIndex", Effect = "Allow", Action = ["s3:GetObject"], Resource = ["${local.index}/*"] },
    ]
    write_index = [
      { Sid = "WriteIndex", Effect = "Allow", Action = ["s3:PutObject", "s3:DeleteObject"], Resource = ["${local.index}/*"] },
    ]
    write_artifacts = [
      { Sid = "WriteArtifacts", Effect = "Allow", Action = ["s3:PutObject", "s3:DeleteObject"], Resource = local.artifact_objects },
    ]
    consume_changes = [
      { Sid = "ConnectToKafka", Effect = "Allow", Action = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"], Resource = [local.kafka_cluster] },
      { Sid = "ReadChanges", Effect = "Allow", Action = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"], Resource = local.topics.changes },
      { Sid = "DeadLetter", Effect = "Allow", Action = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"], Resource = local.topics.dlq },
      { Sid = "JoinGroup", Effect = "Allow", Action = ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"], Resource = ["${local.kafka_group}/${var.kafka_group_id}", "${local.kafka_group}/${var.kafka_group_id}-*"] },
    ]
    produce_changes = [
      { Sid = "AnnounceChanges", Effect = "Allow", Action = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"], Resource = local.topics.changes },
    ]
  }

  ecs_tasks_trust = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = var.account_id } }
    }]
  })

  secrets_statement = { for role, keys in var.role_secrets : role => [{
    Sid      = "ReadOwnSecrets"
    Effect   = "Allow"
    Action   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    Resource = [for key in keys : local.secret_arn[key]]
  }] if length(keys) > 0 }

  task_policies = {
    api = concat(
      local.statements.read_index,
      local.statements.read_documents,
      [
        # POST /v1/documents stores a source; erasure requests, readmissions and their
        # audit records are written by the API before a run acts on them.
        { Sid = "StoreSourcesAndRequests", Effect = "Allow", Action = ["s3:PutObject"], Resource = [for prefix in var.api_write_prefixes : "${local.documents}/${prefix}/*"] },
        # Readmissions lift tombstones; an erasure's confirmation token is used up once.
        { Sid = "LiftTombstonesUseUpConsents", Effect = "Allow", Action = ["s3:DeleteObject"], Resource = ["${local.documents}/tombstones/*", "${local.documents}/consents/*"] },
      ],
    )
    worker = concat(
      local.statements.read_documents,
      local.statements.write_artifacts,
      local.statements.read_index,
      local.statements.write_index,
      local.statements.consume_changes,
    )
    dagster-code = concat(
      local.statements.read_documents,
      local.statements.write_artifacts,
      local.statements.read_index,
      local.statements.write_index,
      local.statements.consume_changes,
      local.statements.produce_changes,
    )
    erasure = concat(
      local.statements.read_index,
      local.statements.write_index,
      [
        { Sid = "ListDocumentsAndVersions", Effect = "Allow", Action = ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketVersioning"], Resource = [local.documents] },
        { Sid = "EraseEveryVersion", Effect = "Allow", Action = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"], Resource = ["${local.documents}/*"] },
      ],
    )
  }
  # Roles whose processes need no AWS API at all (they speak to PostgreSQL and the code location).
  bare_task_roles = toset(["dagster-webserver", "dagster-daemon"])
}

resource "aws_iam_role" "task" {
  for_each           = merge(local.task_policies, { for role in local.bare_task_roles : role => [] })
  name               = "${var.name}-${each.key}"
  description        = "Task role of the ${each.key} service"
  assume_role_policy = local.ecs_tasks_trust
}

resource "aws_iam_role_policy" "task" {
  for_each = local.task_policies
  name     = "${each.key}-least-privilege"
  role     = aws_iam_role.task[each.key].name
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = concat(each.value, lookup(local.secrets_statement, each.key, []))
  })
}

# The execution role: ECS itself pulls the images, writes the logs and injects the
# database password into the Dagster containers (DAGSTER_PG_PASSWORD).
resource "aws_iam_role" "execution" {
  name               = "${var.name}-task-execution"
  description        = "ECS task execution role: image pulls, logs, injected secrets"
  assume_role_policy = local.ecs_tasks_trust
}

resource "aws_iam_role_policy" "execution" {
  name = "pull-log-inject"
  role = aws_iam_role.execution.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      # AWS defines GetAuthorizationToken on no resource: "*" is the only form it accepts.
      { Sid = "EcrLogin", Effect = "Allow", Action = ["ecr:GetAuthorizationToken"], Resource = ["*"] },
      { Sid = "PullImages", Effect = "Allow", Action = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"], Resource = [for repo in var.repositories : "${local.arn}:ecr:${var.region}:${var.account_id}:repository/${var.name}/${repo}"] },
      { Sid = "WriteLogs", Effect = "Allow", Action = ["logs:CreateLogStream", "logs:PutLogEvents"], Resource = ["${local.arn}:logs:${var.region}:${var.account_id}:log-group:/rag/${var.name}/services:*"] },
      { Sid = "InjectDatabasePassword", Effect = "Allow", Action = ["secretsmanager:GetSecretValue"], Resource = [local.secret_arn["dagster_db"]] },
    ]
  })
}

# GitHub Actions deploys through OIDC: no long-lived keys. The role trusts only this
# repository's runs in the matching GitHub environment (dev, or prod behind its approval).
resource "aws_iam_openid_connect_provider" "github" {
  count           = var.create_github_oidc_provider ? 1 : 0
  url             = "https://token.actions.githubusercontent.com"
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = ["6938fd4d98bab03faadb97b34396831e3780aea1"]
}

resource "aws_iam_role" "release" {
  #checkov:skip=CKV_AWS_393:The sub claim is exactly repo:<owner>/<name>:environment:<env>; checkov cannot resolve var.github_repository to see the owner/name shape
  name        = "${var.name}-github-release"
  description = "GitHub Actions release: push images, roll the ECS services"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = "${local.arn}:iam::${var.account_id}:oidc-provider/token.actions.githubusercontent.com" }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "token.actions.githubusercontent.com:aud" = "sts.amazonaws.com"
          "token.actions.githubusercontent.com:sub" = "repo:${var.github_repository}:environment:${var.github_environment}"
        }
      }
    }]
  })
}

resource "aws_iam_role_policy" "release" {
  name = "push-and-roll"
  role = aws_iam_role.release.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      # AWS defines GetAuthorizationToken on no resource: "*" is the only form it accepts.
      { Sid = "EcrLogin", Effect = "Allow", Action = ["ecr:GetAuthorizationToken"], Resource = ["*"] },
      {
        Sid    = "PushImages"
        Effect = "Allow"
        Action = [
          "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
          "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage",
          "ecr:DescribeImages",
        ]
        Resource = [for repo in var.repositories : "${local.arn}:ecr:${var.region}:${var.account_id}:repository/${var.name}/${repo}"]
      },
      {
        Sid      = "RollServices"
        Effect   = "Allow"
        Action   = ["ecs:UpdateService", "ecs:DescribeServices"]
        Resource = [for service in var.services : "${local.arn}:ecs:${var.region}:${var.account_id}:service/${var.name}/${var.name}-${service}"]
      },
      ], length(var.promote_from_repository_arns) == 0 ? [] : [{
        # Promotion: prod copies the image dev tested instead of building it again.
        Sid      = "PullPromotedImages"
        Effect   = "Allow"
        Action   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability", "ecr:DescribeImages"]
        Resource = var.promote_from_repository_arns
    }])
  })
}

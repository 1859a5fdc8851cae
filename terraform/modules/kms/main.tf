# The platform's customer managed key: buckets, logs, the database, Redis, Kafka's
# secrets, ECR and Managed Prometheus are all encrypted with it. In a key policy `Resource`
# is the key itself, so "*" there names this key and nothing else.
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_root = "arn:${data.aws_partition.current.partition}:iam::${var.account_id}:root"
  # Administration is spelled out rather than kms:*, so no policy of the platform holds a
  # wildcard action; use (Encrypt, Decrypt, ...) is granted to each role by IAM, per role.
  admin_actions = [
    "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:CreateGrant", "kms:DeleteAlias",
    "kms:DescribeKey", "kms:DisableKey", "kms:EnableKey", "kms:EnableKeyRotation",
    "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListAliases", "kms:ListGrants",
    "kms:ListResourceTags", "kms:PutKeyPolicy", "kms:RetireGrant", "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion", "kms:TagResource", "kms:UntagResource", "kms:UpdateAlias",
    "kms:UpdateKeyDescription", "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo",
  ]
}

resource "aws_kms_key" "this" {
  description             = "${var.name}: documents, index, logs, database, cache, secrets"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersThroughIAM"
        Effect    = "Allow"
        Principal = { AWS = local.account_root }
        Action    = local.admin_actions
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncryptsPlatformLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${data.aws_region.current.name}.amazonaws.com" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${var.account_id}:log-group:*"
          }
        }
      },
      {
        Sid       = "ManagedPrometheusPublishesAlertsToTheEncryptedTopic"
        Effect    = "Allow"
        Principal = { Service = "aps.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = var.account_id } }
      },
      {
        Sid       = "PlatformRolesUseTheKeyThroughS3AndSecretsManager"
        Effect    = "Allow"
        Principal = { AWS = var.user_role_arns }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          StringEquals = {
            "kms:ViaService" = ["s3.${data.aws_region.current.name}.amazonaws.com", "secretsmanager.${data.aws_region.current.name}.amazonaws.com"]
          }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

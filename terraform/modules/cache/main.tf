# Redis for the shared response cache and the rate limits (RAG_CACHE_URL): TLS in transit,
# encrypted at rest with the customer key, an auth token kept in Secrets Manager.
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

resource "aws_security_group" "redis" {
  name        = "${var.name}-redis"
  description = "Redis (TLS) from the API, the worker and the Dagster runs"
  vpc_id      = var.vpc_id
  ingress {
    description     = "Redis TLS from the services"
    from_port       = 6379
    to_port         = 6379
    protocol        = "tcp"
    security_groups = var.client_security_group_ids
  }
}

resource "aws_elasticache_subnet_group" "this" {
  name       = "${var.name}-redis"
  subnet_ids = var.subnet_ids
}

resource "aws_elasticache_replication_group" "this" {
  #checkov:skip=CKV2_AWS_50:Failover follows var.replicas: on in prod (one replica across zones), off in dev's single node
  replication_group_id       = "${var.name}-cache"
  description                = "${var.name}: response cache and rate limits"
  engine                     = "redis"
  engine_version             = "7.1"
  node_type                  = var.node_type
  num_cache_clusters         = var.replicas + 1
  automatic_failover_enabled = var.replicas > 0
  multi_az_enabled           = var.replicas > 0
  port                       = 6379
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [aws_security_group.redis.id]
  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  transit_encryption_enabled = true
  auth_token                 = var.auth_token
  auto_minor_version_upgrade = true
  snapshot_retention_limit   = var.snapshot_retention_days
  lifecycle {
    ignore_changes = [auth_token]
  }
}

# Amazon Managed Prometheus: the workspace, the recording rules and alerts that
# `make dashboards` generates from dashboards/slos.yaml (the same files the local
# Prometheus loads), and Alertmanager's routing. Grafana reads the workspace with the
# dashboards in dashboards/*.json.
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

locals {
  rule_files = merge(
    { for file in fileset(var.dashboards_dir, "rules/*.yml") : "rules-${trimsuffix(basename(file), ".yml")}" => file },
    { for file in fileset(var.dashboards_dir, "alerts/*.yml") : "alerts-${trimsuffix(basename(file), ".yml")}" => file },
  )
}

resource "aws_cloudwatch_log_group" "prometheus" {
  name              = "/rag/${var.name}/prometheus"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_prometheus_workspace" "this" {
  alias       = var.name
  kms_key_arn = var.kms_key_arn
  logging_configuration {
    log_group_arn = "${aws_cloudwatch_log_group.prometheus.arn}:*"
  }
}

resource "aws_prometheus_rule_group_namespace" "this" {
  for_each     = local.rule_files
  name         = each.key
  workspace_id = aws_prometheus_workspace.this.id
  data         = file("${var.dashboards_dir}/${each.value}")
}

resource "aws_sns_topic" "alerts" {
  name              = "${var.name}-alerts"
  kms_master_key_id = var.kms_key_arn
}

resource "aws_sns_topic_policy" "alerts" {
  arn = aws_sns_topic.alerts.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "ManagedPrometheusPublishes"
      Effect    = "Allow"
      Principal = { Service = "aps.amazonaws.com" }
      Action    = ["sns:Publish", "sns:GetTopicAttributes"]
      Resource  = aws_sns_topic.alerts.arn
      Condition = { ArnEquals = { "aws:SourceArn" = aws_prometheus_workspace.this.arn } }
    }]
  })
}

resource "aws_prometheus_alert_manager_definition" "this" {
  workspace_id = aws_prometheus_workspace.this.id
  definition = yamlencode({
    alertmanager_config = yamlencode({
      route = { receiver = "oncall", group_by = ["alertname", "severity"] }
      receivers = [{
        name = "oncall"
        sns_configs = [{
          topic_arn = aws_sns_topic.alerts.arn
          sigv4     = { region = var.region }
        }]
      }]
    })
  })
}

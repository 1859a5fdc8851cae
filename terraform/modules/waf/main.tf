# WAF on the load balancer: AWS's common and known-bad-inputs rule sets, a rate limit per
# client address, and a body size limit.
#
# On an ALB, WAF sees the first 8 KB of a body. The common set's own 8 KB body rule would
# refuse document uploads, so it only counts; our rule blocks bodies over 8 KB everywhere
# but the upload route (POST /v1/documents), whose size the API limits itself
# (RAG_MAX_UPLOAD_BYTES; RAG_MAX_REQUEST_BYTES for every other body).
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

locals {
  managed_rule_sets = {
    AWSManagedRulesCommonRuleSet          = { priority = 10, count_only = ["SizeRestrictions_BODY"] }
    AWSManagedRulesKnownBadInputsRuleSet  = { priority = 20, count_only = [] }
    AWSManagedRulesAmazonIpReputationList = { priority = 30, count_only = [] }
  }
}

resource "aws_wafv2_web_acl" "this" {
  #checkov:skip=CKV_AWS_192:AWSManagedRulesKnownBadInputsRuleSet (Log4j included) is applied through the dynamic rule block over local.managed_rule_sets, which checkov does not expand
  name  = var.name
  scope = "REGIONAL"
  default_action {
    allow {}
  }

  dynamic "rule" {
    for_each = local.managed_rule_sets
    content {
      name     = rule.key
      priority = rule.value.priority
      override_action {
        none {}
      }
      statement {
        managed_rule_group_statement {
          vendor_name = "AWS"
          name        = rule.key
          dynamic "rule_action_override" {
            for_each = rule.value.count_only
            content {
              name = rule_action_override.value
              action_to_use {
                count {}
              }
            }
          }
        }
      }
      visibility_config {
        cloudwatch_metrics_enabled = true
        metric_name                = rule.key
        sampled_requests_enabled   = true
      }
    }
  }

  rule {
    name     = "rate-limit-per-ip"
    priority = 40
    action {
      block {}
    }
    statement {
      rate_based_statement {
        limit              = var.requests_per_5_minutes_per_ip
        aggregate_key_type = "IP"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "rate-limit-per-ip"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "body-size-limit"
    priority = 50
    action {
      block {}
    }
    statement {
      and_statement {
        statement {
          size_constraint_statement {
            comparison_operator = "GT"
            size                = 8192
            field_to_match {
              body {
                oversize_handling = "MATCH"
              }
            }
            text_transformation {
              priority = 0
              type     = "NONE"
            }
          }
        }
        statement {
          not_statement {
            statement {
              byte_match_statement {
                positional_constraint = "STARTS_WITH"
                search_string         = "/v1/documents"
                field_to_match {
                  uri_path {}
                }
                text_transformation {
                  priority = 0
                  type     = "NONE"
                }
              }
            }
          }
        }
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "body-size-limit"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = var.name
    sampled_requests_enabled   = true
  }
}

resource "aws_wafv2_web_acl_association" "alb" {
  resource_arn = var.load_balancer_arn
  web_acl_arn  = aws_wafv2_web_acl.this.arn
}

# WAF's log group name must start with aws-waf-logs-.
resource "aws_cloudwatch_log_group" "waf" {
  name              = "aws-waf-logs-${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_wafv2_web_acl_logging_configuration" "this" {
  resource_arn            = aws_wafv2_web_acl.this.arn
  log_destination_configs = [aws_cloudwatch_log_group.waf.arn]
  redacted_fields {
    single_header {
      name = "authorization"
    }
  }
}

# Kafka: MSK Serverless, IAM authentication only (SASL/OAUTHBEARER over TLS on 9098).
# Topics: <prefix>.document-changes, .table-row-changes and .dlq (docs/events.md).
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

resource "aws_security_group" "kafka" {
  #checkov:skip=CKV2_AWS_5:Attached to the MSK Serverless cluster's vpc_config below, which checkov does not count as an attachment
  name        = "${var.name}-kafka"
  description = "MSK Serverless: IAM-authenticated TLS from the platform's services"
  vpc_id      = var.vpc_id
  ingress {
    description     = "Kafka IAM/TLS from the services"
    from_port       = 9098
    to_port         = 9098
    protocol        = "tcp"
    security_groups = var.client_security_group_ids
  }
}

resource "aws_msk_serverless_cluster" "this" {
  cluster_name = var.name
  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [aws_security_group.kafka.id]
  }
  client_authentication {
    sasl {
      iam {
        enabled = true
      }
    }
  }
}

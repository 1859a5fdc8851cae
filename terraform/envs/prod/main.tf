# The prod environment. Plan and apply from this folder (docs/deployment.md):
#   terraform init && terraform plan -var-file=prod.tfvars
terraform {
  required_version = ">= 1.10"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }
  # State in S3, locked with an S3 lock file (no DynamoDB table needed since Terraform 1.10).
  backend "s3" {
    bucket       = "rag-terraform-state"
    key          = "rag/prod/terraform.tfstate"
    region       = "eu-west-2"
    encrypt      = true
    use_lockfile = true
  }
}

provider "aws" {
  region              = var.region
  allowed_account_ids = [var.account_id]
  default_tags {
    tags = {
      Project     = "rag-platform"
      Environment = "prod"
      ManagedBy   = "terraform"
    }
  }
}

module "platform" {
  source                            = "../../modules/platform"
  name                              = "rag-prod"
  environment                       = "prod"
  region                            = var.region
  account_id                        = var.account_id
  vpc_cidr                          = "10.50.0.0/16"
  availability_zones                = ["eu-west-2a", "eu-west-2b", "eu-west-2c"]
  allowed_client_cidrs              = var.allowed_client_cidrs
  certificate_arn                   = var.certificate_arn
  api_host                          = var.api_host
  dagster_host                      = var.dagster_host
  deletion_protection               = true
  log_retention_days                = 731
  noncurrent_version_days           = 30
  secret_recovery_window_days       = 30
  github_repository                 = var.github_repository
  create_github_oidc_provider       = false
  promote_from_repository_arns      = [for repo in ["api", "worker", "dagster"] : "arn:aws:ecr:${var.region}:${var.account_id}:repository/rag-dev/${repo}"]
  profile                           = var.profile
  llm_base_url                      = var.llm_base_url
  snowflake                         = var.snowflake
  database                          = { instance_class = "db.m7g.large", storage_gb = 100, multi_az = true, backup_retention_days = 30 }
  redis                             = { node_type = "cache.m7g.large", replicas = 1, snapshot_retention_days = 7 }
  api                               = { cpu = 2048, memory = 8192, min = 2, max = 10, requests_per_target = 200 }
  worker                            = { cpu = 2048, memory = 8192, min = 1, max = 6 }
  dagster_code                      = { cpu = 2048, memory = 8192 }
  waf_requests_per_5_minutes_per_ip = 2000
  dashboards_dir                    = "${path.root}/../../../dashboards"
}

# The dev environment. Plan and apply from this folder (docs/deployment.md):
#   terraform init && terraform plan -var-file=dev.tfvars
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
    key          = "rag/dev/terraform.tfstate"
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
      Environment = "dev"
      ManagedBy   = "terraform"
    }
  }
}

module "platform" {
  source                            = "../../modules/platform"
  name                              = "rag-dev"
  environment                       = "dev"
  region                            = var.region
  account_id                        = var.account_id
  vpc_cidr                          = "10.40.0.0/16"
  availability_zones                = ["eu-west-2a", "eu-west-2b"]
  allowed_client_cidrs              = var.allowed_client_cidrs
  certificate_arn                   = var.certificate_arn
  api_host                          = var.api_host
  dagster_host                      = var.dagster_host
  deletion_protection               = false
  log_retention_days                = 365
  noncurrent_version_days           = 30
  secret_recovery_window_days       = 7
  github_repository                 = var.github_repository
  create_github_oidc_provider       = true
  promote_from_repository_arns      = []
  profile                           = var.profile
  llm_base_url                      = var.llm_base_url
  snowflake                         = var.snowflake
  database                          = { instance_class = "db.t4g.small", storage_gb = 20, multi_az = false, backup_retention_days = 7 }
  redis                             = { node_type = "cache.t4g.small", replicas = 0, snapshot_retention_days = 1 }
  api                               = { cpu = 1024, memory = 4096, min = 1, max = 3, requests_per_target = 200 }
  worker                            = { cpu = 1024, memory = 4096, min = 1, max = 2 }
  dagster_code                      = { cpu = 2048, memory = 8192 }
  waf_requests_per_5_minutes_per_ip = 2000
  dashboards_dir                    = "${path.root}/../../../dashboards"
}

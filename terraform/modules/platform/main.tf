# The whole production shape, wired once; envs/dev and envs/prod call it with their sizes.
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

locals {
  repositories = ["api", "worker", "dagster"]
  services     = ["api", "worker", "dagster-webserver", "dagster-daemon", "dagster-code", "dagster-erasure"]
  # Which secrets each task role reads through aws-sm:// (modules/secrets names them). The
  # erasure role runs the governance code location on the platform's settings, whose every
  # aws-sm:// reference is resolved at start-up: the LLM key among them, when there is one.
  role_secrets = {
    api          = ["cache", "llm", "cohere"]
    worker       = ["cache", "snowflake"]
    dagster-code = ["cache", "llm", "snowflake"]
    erasure      = ["cache", "llm", "snowflake"]
  }
  secret_names = {
    for key in ["dagster_db", "redis_auth", "cache", "llm", "snowflake", "cohere"] :
    key => "${var.name}/${replace(key, "_", "-")}"
  }
}

module "iam" {
  source                       = "../iam"
  name                         = var.name
  region                       = var.region
  account_id                   = var.account_id
  documents_bucket             = "${var.name}-documents"
  index_bucket                 = "${var.name}-index"
  kafka_cluster_name           = var.name
  secret_names                 = local.secret_names
  role_secrets                 = local.role_secrets
  repositories                 = local.repositories
  services                     = local.services
  github_repository            = var.github_repository
  github_environment           = var.environment
  create_github_oidc_provider  = var.create_github_oidc_provider
  promote_from_repository_arns = var.promote_from_repository_arns
}

module "kms" {
  source         = "../kms"
  name           = var.name
  account_id     = var.account_id
  user_role_arns = concat(values(module.iam.task_role_arns), [module.iam.execution_role_arn])
}

module "network" {
  source             = "../network"
  name               = var.name
  cidr_block         = var.vpc_cidr
  availability_zones = var.availability_zones
  kms_key_arn        = module.kms.key_arn
  log_retention_days = var.log_retention_days
  account_id         = var.account_id
}

module "storage" {
  source                  = "../storage"
  name                    = var.name
  kms_key_arn             = module.kms.key_arn
  noncurrent_version_days = var.noncurrent_version_days
}

module "secrets" {
  source               = "../secrets"
  name                 = var.name
  kms_key_arn          = module.kms.key_arn
  recovery_window_days = var.secret_recovery_window_days
  redis_endpoint       = module.cache.primary_endpoint
}

module "registry" {
  source       = "../registry"
  name         = var.name
  repositories = local.repositories
  kms_key_arn  = module.kms.key_arn
}

module "kafka" {
  source                    = "../kafka"
  name                      = var.name
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  client_security_group_ids = [for key in ["worker", "dagster-code"] : module.compute.service_security_group_ids[key]]
}

module "database" {
  source                    = "../database"
  name                      = var.name
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  client_security_group_ids = concat([for key in ["dagster-webserver", "dagster-daemon", "dagster-code", "dagster-erasure"] : module.compute.service_security_group_ids[key]], [module.compute.erasure_security_group_id])
  kms_key_arn               = module.kms.key_arn
  password                  = module.secrets.dagster_db_password
  instance_class            = var.database.instance_class
  allocated_storage_gb      = var.database.storage_gb
  multi_az                  = var.database.multi_az
  deletion_protection       = var.deletion_protection
  backup_retention_days     = var.database.backup_retention_days
}

module "cache" {
  source                    = "../cache"
  name                      = var.name
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  client_security_group_ids = concat([for key in ["api", "worker", "dagster-code", "dagster-erasure"] : module.compute.service_security_group_ids[key]], [module.compute.erasure_security_group_id])
  kms_key_arn               = module.kms.key_arn
  auth_token                = module.secrets.redis_auth_token
  node_type                 = var.redis.node_type
  replicas                  = var.redis.replicas
  snapshot_retention_days   = var.redis.snapshot_retention_days
}

module "identity" {
  source              = "../identity"
  name                = var.name
  domain_prefix       = var.name
  api_identifier      = "https://${var.api_host}"
  dagster_host        = var.dagster_host
  deletion_protection = var.deletion_protection
}

module "compute" {
  source                  = "../compute"
  name                    = var.name
  region                  = var.region
  vpc_id                  = module.network.vpc_id
  vpc_cidr                = module.network.cidr_block
  private_subnet_ids      = module.network.private_subnet_ids
  public_subnet_ids       = module.network.public_subnet_ids
  s3_prefix_list_id       = module.network.s3_prefix_list_id
  allowed_client_cidrs    = var.allowed_client_cidrs
  certificate_arn         = var.certificate_arn
  api_host                = var.api_host
  dagster_host            = var.dagster_host
  deletion_protection     = var.deletion_protection
  registry                = "${var.account_id}.dkr.ecr.${var.region}.amazonaws.com"
  image_tag               = var.environment
  kms_key_arn             = module.kms.key_arn
  log_retention_days      = var.log_retention_days
  execution_role_arn      = module.iam.execution_role_arn
  task_role_arns          = module.iam.task_role_arns
  documents_bucket        = module.storage.documents_bucket
  index_bucket            = module.storage.index_bucket
  kafka_bootstrap_servers = module.kafka.bootstrap_brokers
  secret_names            = module.secrets.names
  secret_arns             = module.secrets.arns
  dagster_db              = { host = module.database.address, name = module.database.db_name, username = module.database.username }
  oidc_issuer             = module.identity.issuer
  oidc_audience           = module.identity.machine_client_id
  cognito = {
    user_pool_arn = module.identity.user_pool_arn
    client_id     = module.identity.dagster_ui_client_id
    domain        = module.identity.domain
  }
  profile      = var.profile
  llm_base_url = var.llm_base_url
  snowflake    = var.snowflake
  api          = var.api
  worker       = var.worker
  dagster_code = var.dagster_code
}

module "waf" {
  source                        = "../waf"
  name                          = var.name
  load_balancer_arn             = module.compute.load_balancer_arn
  requests_per_5_minutes_per_ip = var.waf_requests_per_5_minutes_per_ip
  kms_key_arn                   = module.kms.key_arn
  log_retention_days            = var.log_retention_days
}

module "observability" {
  source             = "../observability"
  name               = var.name
  region             = var.region
  kms_key_arn        = module.kms.key_arn
  dashboards_dir     = var.dashboards_dir
  log_retention_days = var.log_retention_days
}

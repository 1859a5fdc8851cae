variable "name" {
  description = "Prefix of every resource name (rag-dev, rag-prod); buckets take it too."
  type        = string
}

variable "environment" {
  description = "dev or prod: the GitHub environment that deploys here and the image tag the services run."
  type        = string
}

variable "region" {
  type = string
}

variable "account_id" {
  type = string
}

variable "vpc_cidr" {
  type = string
}

variable "availability_zones" {
  type = list(string)
}

variable "allowed_client_cidrs" {
  type = list(string)
}

variable "certificate_arn" {
  type = string
}

variable "api_host" {
  type = string
}

variable "dagster_host" {
  type = string
}

variable "deletion_protection" {
  type = bool
}

variable "log_retention_days" {
  type = number
}

variable "noncurrent_version_days" {
  type = number
}

variable "secret_recovery_window_days" {
  type = number
}

variable "github_repository" {
  type = string
}

variable "create_github_oidc_provider" {
  type = bool
}

variable "promote_from_repository_arns" {
  type    = list(string)
  default = []
}

variable "profile" {
  type = string
}

variable "llm_base_url" {
  type = string
}

variable "snowflake" {
  type = object({
    account = string, user = string, database = string, schema = string, warehouse = string, role = string
  })
  default = null
}

variable "database" {
  type = object({ instance_class = string, storage_gb = number, multi_az = bool, backup_retention_days = number })
}

variable "redis" {
  type = object({ node_type = string, replicas = number, snapshot_retention_days = number })
}

variable "api" {
  type = object({ cpu = number, memory = number, min = number, max = number, requests_per_target = number })
}

variable "worker" {
  type = object({ cpu = number, memory = number, min = number, max = number })
}

variable "dagster_code" {
  type = object({ cpu = number, memory = number })
}

variable "waf_requests_per_5_minutes_per_ip" {
  type = number
}

variable "dashboards_dir" {
  type = string
}

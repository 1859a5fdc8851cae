variable "name" {
  type = string
}

variable "region" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "vpc_cidr" {
  type = string
}

variable "private_subnet_ids" {
  type = list(string)
}

variable "public_subnet_ids" {
  type = list(string)
}

variable "s3_prefix_list_id" {
  description = "Prefix list of the S3 gateway endpoint (egress to S3 without a NAT)."
  type        = string
}

variable "allowed_client_cidrs" {
  description = "Who may reach the load balancer."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate for api_host and dagster_host."
  type        = string
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

variable "registry" {
  description = "ECR registry host (<account>.dkr.ecr.<region>.amazonaws.com)."
  type        = string
}

variable "image_tag" {
  description = "Tag the services run; the release workflow moves it (docs/deployment.md)."
  type        = string
}

variable "kms_key_arn" {
  type = string
}

variable "log_retention_days" {
  type = number
}

variable "execution_role_arn" {
  type = string
}

variable "task_role_arns" {
  description = "Task role per task definition (modules/iam)."
  type        = map(string)
}

variable "documents_bucket" {
  type = string
}

variable "index_bucket" {
  type = string
}

variable "kafka_bootstrap_servers" {
  type = string
}

variable "secret_names" {
  description = "Secrets Manager names by key, read through aws-sm://."
  type        = map(string)
}

variable "secret_arns" {
  description = "Secrets ECS injects (the database password)."
  type        = map(string)
}

variable "dagster_db" {
  type = object({ host = string, name = string, username = string })
}

variable "oidc_issuer" {
  type = string
}

variable "oidc_audience" {
  type = string
}

variable "cognito" {
  description = "User pool the load balancer signs Dagster UI users in with."
  type        = object({ user_pool_arn = string, client_id = string, domain = string })
}

variable "profile" {
  description = "RAG_PROFILE."
  type        = string
}

variable "llm_base_url" {
  description = "RAG_LLM_BASE_URL; empty for extractive answers."
  type        = string
}

variable "snowflake" {
  description = "Snowflake connection (RAG_SNOWFLAKE_*); null keeps the warehouse off."
  type = object({
    account = string, user = string, database = string, schema = string, warehouse = string, role = string
  })
  default = null
}

variable "api" {
  type = object({ cpu = number, memory = number, min = number, max = number, requests_per_target = number })
}

variable "worker" {
  description = "The streaming worker: at most one replica per topic partition is useful."
  type        = object({ cpu = number, memory = number, min = number, max = number })
}

variable "dagster_code" {
  description = "Each code location (dagster-code, dagster-erasure) runs its Dagster runs (default run launcher); the erasure task gets the same size."
  type        = object({ cpu = number, memory = number })
}

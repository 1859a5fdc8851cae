variable "region" {
  type    = string
  default = "eu-west-2"
}

variable "account_id" {
  description = "AWS account the environment lives in (the provider refuses any other)."
  type        = string
}

variable "allowed_client_cidrs" {
  description = "Who may reach the load balancer."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate covering api_host and dagster_host."
  type        = string
}

variable "api_host" {
  type = string
}

variable "dagster_host" {
  type = string
}

variable "github_repository" {
  description = "owner/name whose release workflow deploys here."
  type        = string
}

variable "profile" {
  description = "RAG_PROFILE of the services."
  type        = string
  default     = "extractive"
}

variable "llm_base_url" {
  description = "RAG_LLM_BASE_URL (its key goes into the <name>/llm secret); empty for extractive answers."
  type        = string
  default     = ""
}

variable "snowflake" {
  description = "RAG_SNOWFLAKE_* (the password or key goes into the <name>/snowflake secret); null: no warehouse."
  type = object({
    account = string, user = string, database = string, schema = string, warehouse = string, role = string
  })
  default = null
}

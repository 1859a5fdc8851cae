variable "name" {
  description = "Prefix of every resource name, e.g. rag-dev."
  type        = string
}

variable "partition" {
  description = "AWS partition of the ARNs."
  type        = string
  default     = "aws"
}

variable "region" {
  type = string
}

variable "account_id" {
  description = "The account the platform runs in (given, not looked up, so a plan needs no credentials)."
  type        = string
}

variable "documents_bucket" {
  type = string
}

variable "index_bucket" {
  type = string
}

variable "artifact_prefixes" {
  description = "Prefixes of the documents bucket the pipeline writes and retires (rag_core/domain/layout.py)."
  type        = list(string)
  default     = ["manifests", "raw", "parsed", "failures", "chunks", "embeddings", "announced", "freshness", "state", "documents/warehouse"]
}

variable "api_write_prefixes" {
  description = "Prefixes the API writes: uploaded sources, erasure requests and their confirmations, audit records."
  type        = list(string)
  default     = ["documents", "erasure", "consents", "audit"]
}

variable "kafka_cluster_name" {
  type = string
}

variable "topic_prefix" {
  description = "RAG_KAFKA_TOPIC_PREFIX."
  type        = string
  default     = "rag"
}

variable "kafka_group_id" {
  description = "RAG_KAFKA_GROUP_ID: the streaming worker's and the Kafka sensor's consumer group."
  type        = string
  default     = "rag-indexer"
}

variable "secret_names" {
  description = "Secrets Manager names by key (modules/secrets)."
  type        = map(string)
}

variable "role_secrets" {
  description = "Which secrets (keys of secret_names) each task role reads through aws-sm://."
  type        = map(list(string))
}

variable "repositories" {
  description = "ECR repositories (under <name>/) the services run."
  type        = list(string)
}

variable "services" {
  description = "ECS services the release rolls."
  type        = list(string)
}

variable "github_repository" {
  description = "owner/name of the repository whose release workflow deploys here."
  type        = string
}

variable "github_environment" {
  description = "GitHub environment whose jobs may assume the release role."
  type        = string
}

variable "create_github_oidc_provider" {
  description = "Create GitHub's OIDC provider (once per account)."
  type        = bool
}

variable "promote_from_repository_arns" {
  description = "Repositories the release may pull from to promote an image (prod: dev's)."
  type        = list(string)
  default     = []
}

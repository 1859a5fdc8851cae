variable "name" {
  description = "Prefix of every secret name, e.g. rag-dev."
  type        = string
}

variable "kms_key_arn" {
  type = string
}

variable "recovery_window_days" {
  description = "Days a deleted secret can be restored."
  type        = number
}

variable "redis_endpoint" {
  description = "ElastiCache primary endpoint the cache URL points at."
  type        = string
}

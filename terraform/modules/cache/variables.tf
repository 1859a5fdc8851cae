variable "name" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  type = list(string)
}

variable "client_security_group_ids" {
  type = list(string)
}

variable "kms_key_arn" {
  type = string
}

variable "auth_token" {
  description = "Redis AUTH token (from modules/secrets)."
  type        = string
  sensitive   = true
}

variable "node_type" {
  type = string
}

variable "replicas" {
  description = "Read replicas; one or more turns on automatic failover across zones."
  type        = number
}

variable "snapshot_retention_days" {
  type = number
}

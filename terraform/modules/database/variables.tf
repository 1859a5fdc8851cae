variable "name" {
  type = string
}

variable "partition" {
  type    = string
  default = "aws"
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  type = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups of the Dagster webserver, daemon and code location."
  type        = list(string)
}

variable "kms_key_arn" {
  type = string
}

variable "password" {
  description = "Master password (from modules/secrets)."
  type        = string
  sensitive   = true
}

variable "instance_class" {
  type = string
}

variable "allocated_storage_gb" {
  type = number
}

variable "multi_az" {
  type = bool
}

variable "deletion_protection" {
  type = bool
}

variable "backup_retention_days" {
  type = number
}

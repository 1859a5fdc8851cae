variable "name" {
  type = string
}

variable "region" {
  type = string
}

variable "kms_key_arn" {
  type = string
}

variable "dashboards_dir" {
  description = "The repository's dashboards/ folder (generated rules and alerts)."
  type        = string
}

variable "log_retention_days" {
  type = number
}

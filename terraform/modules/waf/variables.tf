variable "name" {
  type = string
}

variable "load_balancer_arn" {
  description = "The ALB the web ACL protects."
  type        = string
}

variable "requests_per_5_minutes_per_ip" {
  description = "Requests one client address may send in five minutes before it is blocked."
  type        = number
}

variable "kms_key_arn" {
  type = string
}

variable "log_retention_days" {
  type = number
}

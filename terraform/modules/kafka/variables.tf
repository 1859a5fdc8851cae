variable "name" {
  description = "Cluster name (the IAM policies name it too)."
  type        = string
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  type = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups of the services that produce or consume."
  type        = list(string)
}

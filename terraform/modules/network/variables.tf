variable "name" {
  description = "Prefix of every resource name, e.g. rag-dev."
  type        = string
}

variable "cidr_block" {
  description = "The VPC's address range (a /16 or /20; split into sixteen subnets)."
  type        = string
}

variable "availability_zones" {
  description = "One private and one public subnet per zone."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "Customer key encrypting the flow logs."
  type        = string
}

variable "log_retention_days" {
  description = "Days the flow logs are kept."
  type        = number
}

variable "account_id" {
  type = string
}

variable "partition" {
  type    = string
  default = "aws"
}

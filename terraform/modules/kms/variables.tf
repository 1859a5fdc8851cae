variable "name" {
  description = "Prefix of every resource name, e.g. rag-dev."
  type        = string
}

variable "account_id" {
  type = string
}

variable "user_role_arns" {
  description = "Roles that decrypt the buckets' objects and the secrets (modules/iam)."
  type        = list(string)
}

variable "name" {
  description = "Prefix of every resource name; bucket names must be globally unique."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer key encrypting both buckets."
  type        = string
}

variable "noncurrent_version_days" {
  description = "Days a noncurrent version of a document is kept before it expires."
  type        = number
}

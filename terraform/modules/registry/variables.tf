variable "name" {
  type = string
}

variable "repositories" {
  type = list(string)
}

variable "kms_key_arn" {
  type = string
}

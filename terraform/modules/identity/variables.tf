variable "name" {
  type = string
}

variable "domain_prefix" {
  description = "Cognito hosted domain prefix (globally unique)."
  type        = string
}

variable "api_identifier" {
  description = "The resource server's identifier, the prefix of its scopes in access tokens."
  type        = string
}

variable "dagster_host" {
  description = "Host name of the Dagster UI behind the load balancer."
  type        = string
}

variable "deletion_protection" {
  type = bool
}

output "issuer" {
  description = "RAG_OIDC_ISSUER."
  value       = "https://${aws_cognito_user_pool.this.endpoint}"
}

output "user_pool_arn" {
  value = aws_cognito_user_pool.this.arn
}

output "domain" {
  value = aws_cognito_user_pool_domain.this.domain
}

output "dagster_ui_client_id" {
  value = aws_cognito_user_pool_client.dagster_ui.id
}

output "machine_client_id" {
  description = "RAG_OIDC_AUDIENCE: the client its access tokens name in client_id (RAG_OIDC_AUDIENCE_CLAIM)."
  value       = aws_cognito_user_pool_client.machine.id
}

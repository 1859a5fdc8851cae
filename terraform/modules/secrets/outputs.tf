output "arns" {
  value = { for key, secret in aws_secretsmanager_secret.this : key => secret.arn }
}

output "dagster_db_password" {
  value     = jsondecode(aws_secretsmanager_secret_version.generated["dagster_db"].secret_string).password
  sensitive = true
}

output "redis_auth_token" {
  value     = jsondecode(aws_secretsmanager_secret_version.generated["redis_auth"].secret_string).password
  sensitive = true
}

output "names" {
  value = local.names
}

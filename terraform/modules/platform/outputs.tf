output "load_balancer_dns_name" {
  value = module.compute.load_balancer_dns_name
}

output "oidc_issuer" {
  value = module.identity.issuer
}

output "release_role_arn" {
  description = "AWS_RELEASE_ROLE_ARN of the GitHub environment."
  value       = module.iam.release_role_arn
}

output "repository_arns" {
  value = module.registry.repository_arns
}

output "alert_topic_arn" {
  value = module.observability.alert_topic_arn
}

output "prometheus_remote_write_url" {
  value = module.observability.remote_write_url
}

output "cluster_name" {
  value = module.compute.cluster_name
}

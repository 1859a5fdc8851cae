output "load_balancer_dns_name" {
  value = module.platform.load_balancer_dns_name
}

output "oidc_issuer" {
  description = "RAG_OIDC_ISSUER of API clients."
  value       = module.platform.oidc_issuer
}

output "release_role_arn" {
  description = "Set as AWS_RELEASE_ROLE_ARN in this GitHub environment."
  value       = module.platform.release_role_arn
}

output "alert_topic_arn" {
  value = module.platform.alert_topic_arn
}

output "prometheus_remote_write_url" {
  value = module.platform.prometheus_remote_write_url
}

output "cluster_name" {
  value = module.platform.cluster_name
}

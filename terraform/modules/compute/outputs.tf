output "load_balancer_arn" {
  value = aws_lb.this.arn
}

output "load_balancer_dns_name" {
  description = "Point api_host and dagster_host here (CNAME or alias)."
  value       = aws_lb.this.dns_name
}

output "service_security_group_ids" {
  value = { for key, group in aws_security_group.service : key => group.id }
}

output "erasure_security_group_id" {
  value = aws_security_group.erasure.id
}

output "cluster_name" {
  value = aws_ecs_cluster.this.name
}

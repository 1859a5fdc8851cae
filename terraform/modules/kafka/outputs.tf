output "cluster_arn" {
  value = aws_msk_serverless_cluster.this.arn
}

output "bootstrap_brokers" {
  description = "RAG_KAFKA_BOOTSTRAP_SERVERS (SASL/IAM)."
  value       = aws_msk_serverless_cluster.this.bootstrap_brokers_sasl_iam
}

output "workspace_arn" {
  value = aws_prometheus_workspace.this.arn
}

output "remote_write_url" {
  value = "${aws_prometheus_workspace.this.prometheus_endpoint}api/v1/remote_write"
}

output "alert_topic_arn" {
  description = "Subscribe the on-call's paging integration here."
  value       = aws_sns_topic.alerts.arn
}

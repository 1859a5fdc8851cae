output "task_role_arns" {
  # Spelled from the names, so that the plan shows which role each task runs with; naming
  # the role resources still orders the tasks after them.
  value = { for key, role in aws_iam_role.task : key => "${local.arn}:iam::${var.account_id}:role/${role.name}" }
}

output "task_role_names" {
  value = { for key, role in aws_iam_role.task : key => role.name }
}

output "execution_role_arn" {
  value = aws_iam_role.execution.arn
}

output "release_role_arn" {
  value = aws_iam_role.release.arn
}

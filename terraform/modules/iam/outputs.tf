output "task_role_arns" {
  value = { for key, role in aws_iam_role.task : key => role.arn }
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

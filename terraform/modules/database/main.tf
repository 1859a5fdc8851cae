# PostgreSQL for Dagster's runs, events, schedules and sensor cursors (deploy/dagster.yaml).
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

resource "aws_security_group" "db" {
  name        = "${var.name}-dagster-db"
  description = "PostgreSQL from the Dagster services"
  vpc_id      = var.vpc_id
  ingress {
    description     = "PostgreSQL from Dagster"
    from_port       = 5432
    to_port         = 5432
    protocol        = "tcp"
    security_groups = var.client_security_group_ids
  }
}

resource "aws_db_subnet_group" "this" {
  name       = "${var.name}-dagster"
  subnet_ids = var.subnet_ids
}

resource "aws_db_parameter_group" "this" {
  name   = "${var.name}-dagster-pg16"
  family = "postgres16"
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
}

resource "aws_iam_role" "monitoring" {
  name = "${var.name}-rds-monitoring"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:${var.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "this" {
  #checkov:skip=CKV_AWS_161:Dagster's storage connects with a password (dagster-postgres has no IAM token support); the password lives in Secrets Manager
  identifier                            = "${var.name}-dagster"
  engine                                = "postgres"
  engine_version                        = "16.4"
  instance_class                        = var.instance_class
  allocated_storage                     = var.allocated_storage_gb
  max_allocated_storage                 = var.allocated_storage_gb * 4
  db_name                               = "dagster"
  username                              = "dagster"
  password                              = var.password
  db_subnet_group_name                  = aws_db_subnet_group.this.name
  vpc_security_group_ids                = [aws_security_group.db.id]
  parameter_group_name                  = aws_db_parameter_group.this.name
  storage_encrypted                     = true
  kms_key_id                            = var.kms_key_arn
  multi_az                              = var.multi_az
  publicly_accessible                   = false
  deletion_protection                   = var.deletion_protection
  skip_final_snapshot                   = !var.deletion_protection
  final_snapshot_identifier             = var.deletion_protection ? "${var.name}-dagster-final" : null
  backup_retention_period               = var.backup_retention_days
  copy_tags_to_snapshot                 = true
  auto_minor_version_upgrade            = true
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = var.kms_key_arn
  performance_insights_retention_period = 7
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.monitoring.arn
  lifecycle {
    ignore_changes = [password]
  }
}
